import { randomBytes } from 'node:crypto';
import { header, type EventContext, type Headers } from './incoming.ts';

/**
 * The W3C trace context an event arrived with, as drop logs it and passes it on in its reply.
 * No tracing SDK: drop records no spans of its own, it only keeps the trace id flowing.
 */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** The sender's span (the traceparent's parent-id): 16 lowercase hex digits, not all zero. */
  readonly spanId: string;
  /** Whether the sender sampled (recorded) the trace: the one flag trace context version 00 defines. */
  readonly sampled: boolean;
  /** The vendor entries that came with that traceparent, normalised; undefined when absent or invalid. */
  readonly tracestate: string | undefined;
}

// version "-" trace-id "-" parent-id "-" trace-flags, then (only in a later version) "-" and more.
const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const allZero = /^0+$/;

/**
 * Reads a `traceparent` value; undefined when it is not one (W3C Trace Context: an invalid
 * traceparent is ignored). Version 00 is exactly four fields; a later version is read for its
 * first four fields, as the spec asks of a version 00 reader; version ff is forbidden.
 */
export function parseTraceparent(value: unknown): Omit<TraceContext, 'tracestate'> | undefined {
  if (typeof value !== 'string') return undefined;
  const found = traceparentPattern.exec(value);
  if (!found) return undefined;
  const [, version, traceId, spanId, flags, rest] = found as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (allZero.test(traceId) || allZero.test(spanId)) return undefined;
  return { traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

// key "=" value (W3C Trace Context, tracestate list-member): a simple or tenant@system key; a
// value of printable ASCII but "," and "=", at most 256 characters, not ending in a space.
const member = /^[a-z0-9][a-z0-9_\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/** At most 32 list members; 512 characters is what every tracer must pass on. */
const maxMembers = 32;
const maxTracestateChars = 512;

/**
 * Reads a `tracestate` value: its members with the optional whitespace around them and the
 * empty ones dropped. Anything that is not a valid list (or too long to be sure to pass on)
 * is dropped whole, and never affects the traceparent it came with.
 */
export function parseTracestate(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const members = value.split(',').map((m) => m.trim()).filter((m) => m !== '');
  if (members.length === 0 || members.length > maxMembers || !members.every((m) => member.test(m))) return undefined;
  const list = members.join(',');
  return list.length > maxTracestateChars ? undefined : list;
}

/**
 * The trace context of one event. The CloudEvents distributed-tracing extension (`traceparent`
 * and `tracestate` attributes: `ce-traceparent` in binary mode, members in structured mode and
 * in a batch) wins over the HTTP `traceparent`/`tracestate` headers: the extension is the
 * trace the event started in and stays with the event across hops, while the headers are this
 * one hop's (the Broker's delivery to drop). A valid header is used when the event carries no
 * valid extension. Its tracestate goes with the traceparent it came with.
 */
export function traceContextOf(headers: Headers, context: EventContext | undefined): TraceContext | undefined {
  const extensions = context?.extensions;
  const fromEvent = parseTraceparent(extensions?.traceparent);
  if (fromEvent) return { ...fromEvent, tracestate: parseTracestate(extensions?.tracestate) };
  const fromHop = parseTraceparent(header(headers, 'traceparent'));
  if (fromHop) return { ...fromHop, tracestate: parseTracestate(header(headers, 'tracestate')) };
  return undefined;
}

/** The log fields of a trace context: its trace id and the sender's span id; none without one. */
export function traceFields(trace: TraceContext | undefined): { traceId?: string; spanId?: string } {
  return trace ? { traceId: trace.traceId, spanId: trace.spanId } : {};
}

/** A new span id: 8 random bytes; all zero is invalid, so that one (1 in 2^64) becomes 1. */
export function newSpanId(bytes: Buffer = randomBytes(8)): string {
  return bytes.toString('hex').replace(allZero, '0000000000000001');
}

/**
 * The `traceparent` of drop's reply: the same trace, a new span id as the parent of what
 * follows, and the sampled flag as received (version 00 defines no other flag).
 */
export function childTraceparent(trace: TraceContext, spanId: string = newSpanId()): string {
  return `00-${trace.traceId}-${spanId}-${trace.sampled ? '01' : '00'}`;
}

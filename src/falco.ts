import type { Json } from './json.ts';
import { parseTimestamp, timestampFormat } from './timestamp.ts';

/** Falco priorities, highest first (Falco writes the capitalised long names). */
export const priorities = ['Emergency', 'Alert', 'Critical', 'Error', 'Warning', 'Notice', 'Informational', 'Debug'] as const;
export type Priority = (typeof priorities)[number];

/**
 * Rank of a priority name, higher is more severe: Emergency 7 … Debug 0. Case-insensitive.
 * An unknown name ranks lowest (-1), as contract.md §1.2 asks for events.
 */
export function priorityRank(name: string): number {
  const lower = name.toLowerCase();
  const index = priorities.findIndex((p) => p.toLowerCase() === lower);
  return index === -1 ? -1 : priorities.length - 1 - index;
}

/** Exact (case-insensitive) lookup of a priority name; undefined when unknown. */
export function parsePriority(name: string): Priority | undefined {
  const lower = name.toLowerCase();
  return priorities.find((p) => p.toLowerCase() === lower);
}

export type OutputFieldValue = string | number | bigint | boolean | null;

/** A Falco alert as Falco's http_output, Falcosidekick's webhook and its CloudEvents send it. */
export interface FalcoAlert {
  readonly uuid: string | undefined;
  readonly rule: string;
  readonly priority: string;
  readonly output: string;
  readonly time: string | undefined;
  /** Event source: syscall, k8s_audit, aws_cloudtrail, … (Falco's `source`; default syscall). */
  readonly source: string;
  readonly tags: readonly string[];
  readonly hostname: string | undefined;
  readonly outputFields: Readonly<Record<string, OutputFieldValue>>;
}

/** The CloudEvent type Falcosidekick gives Falco alerts: whatever it carries must be a valid alert. */
export const falcoEventType = 'falco.rule.output.v1';

/**
 * How far an alert's time may be ahead of drop's clock: the clocks of the node (Falco) and of
 * drop's pod differ by a few seconds at most under NTP. Further ahead is a forged or broken time,
 * which would keep the alert "young" for the age guard for as long as it likes.
 */
export const maxClockAheadSeconds = 60;

/** Why an alert without a usable time is invalid. */
export const noAlertTime = `it has no valid time (neither its own "time" nor its CloudEvent's): ${timestampFormat} is required`;

/** When the alert happened: its own `time`, else its CloudEvent's; undefined when there is none. */
export function alertTimeMs(alert: FalcoAlert, eventTime: string | undefined): number | undefined {
  // The alert's own time is never passed over for the CloudEvent's: a bad one is no time at all.
  const text = alert.time ?? eventTime;
  return text === undefined ? undefined : parseTimestamp(text);
}

/**
 * The alert's time in milliseconds, or why the alert is invalid: it has no time (neither its
 * own nor its CloudEvent's), or its time is more than `maxClockAheadSeconds` ahead of `now`.
 * Falco always writes `time`: without one the age guard and the pod's creation-time check
 * could not be applied, so such an alert is refused rather than acted on blind.
 */
export function checkAlertTime(alert: FalcoAlert, eventTime: string | undefined, now: Date): number | string {
  const ms = alertTimeMs(alert, eventTime);
  if (ms === undefined) return noAlertTime;
  const ahead = (ms - now.getTime()) / 1000;
  if (ahead > maxClockAheadSeconds) {
    return `its time ${new Date(ms).toISOString()} is ${Math.round(ahead)} s ahead of drop's clock (at most ${maxClockAheadSeconds} s is taken as clock skew)`;
  }
  return ms;
}

function isObject(value: Json | undefined): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What a JSON value is, for a message saying it is the wrong thing. */
function kindOf(value: Json | undefined): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value === 'bigint' ? 'number' : typeof value}`;
}

/** The three members every Falco payload has; an object with two of them is trying to be one. */
const alertKeys = ['rule', 'priority', 'output_fields'] as const;

/**
 * Reads a Falco payload. Returns undefined for what is not trying to be an alert (not an error:
 * a valid CloudEvent of another type is acknowledged and ignored); returns a string naming the
 * problem for what should be an alert but is not a valid one. Should be one: the data of a
 * `falco.rule.output.v1` event (`eventType`), whatever it is, and any object with at least two
 * of `rule`, `priority` and `output_fields`. Answering those 202 "not an alert" would lose them;
 * a problem is answered 400, which the Broker dead-letters.
 */
export function parseFalcoAlert(value: Json | undefined, eventType?: string): FalcoAlert | string | undefined {
  const claimed = eventType === falcoEventType;
  if (!isObject(value)) {
    if (!claimed) return undefined;
    return value === undefined ? `a ${falcoEventType} event must carry a Falco payload; it has no data` : `a ${falcoEventType} event's data must be a JSON object`;
  }
  if (!claimed && alertKeys.filter((key) => value[key] !== undefined).length < 2) return undefined;
  const { rule, priority, output_fields: fields } = value;
  if (typeof rule !== 'string') return `rule must be a string; it is ${kindOf(rule)}`;
  if (typeof priority !== 'string') return `priority must be a string; it is ${kindOf(priority)}`;
  if (!isObject(fields)) return `output_fields must be an object; it is ${kindOf(fields)}`;
  const outputFields: Record<string, OutputFieldValue> = {};
  for (const [key, v] of Object.entries(fields)) {
    if (typeof v === 'object' && v !== null) return `output_fields.${key} must be a string, number, boolean or null`;
    outputFields[key] = v;
  }
  const tags = value.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t): t is string => typeof t === 'string')) return 'tags must be an array of strings';
  for (const key of ['uuid', 'output', 'time', 'source', 'hostname'] as const) {
    const v = value[key];
    if (v !== undefined && v !== null && typeof v !== 'string') return `${key} must be a string`;
  }
  const text = (key: string): string | undefined => (typeof value[key] === 'string' ? (value[key] as string) : undefined);
  const time = text('time');
  if (time !== undefined && parseTimestamp(time) === undefined) return `time ${JSON.stringify(time)} is not ${timestampFormat}`;
  return {
    uuid: text('uuid'),
    rule,
    priority,
    output: text('output') ?? '',
    time,
    source: text('source') ?? 'syscall',
    tags,
    hostname: text('hostname'),
    outputFields,
  };
}

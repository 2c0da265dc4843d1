import { createHash } from 'node:crypto';
import { CloudEvent, HTTP } from 'cloudevents';
import { captured } from './actions/action.ts';
import { clipStrings, clipText } from './clip.ts';
import type { FalcoAlert } from './falco.ts';
import type { EventContext } from './incoming.ts';
import { stringifyJson } from './json.ts';
import type { ActResponse } from './responder.ts';
import type { PodCapture } from './state/evidence.ts';
import { childTraceparent, type TraceContext } from './trace.ts';

/**
 * The type of drop's reply events. A reply goes back into the Broker and through every Trigger:
 * the project's Triggers match `falco.rule.output.v1`, never this.
 */
export const replyType = 'dev.falcodrop.response.v1';

export interface Reply {
  readonly headers: Record<string, string>;
  readonly body: string;
}

/**
 * Where the reply's data holds what `capture` collected: a symbol key, so that the copies made
 * of the data for a failed response's error body and its log line (Object.entries, JSON) leave
 * the logs out; only buildReply writes them, as `captures`.
 */
const replyCaptures: unique symbol = Symbol('captures');

/**
 * The record a reply carries: what was done to which pod, because of which alert, and how it
 * ended. Text from the alert and its sender (and reasons that quote it) is clipped to
 * `maxEchoedChars` and marked, so a hostile alert cannot make the reply, or the answer
 * remembered for its redeliveries, large. What `capture` collected goes with it, bounded by the
 * capture itself (src/actions/capture.ts), for the reply event alone.
 */
export function buildReplyData(response: ActResponse, alert: FalcoAlert, context: EventContext | undefined): Record<string, unknown> {
  const evtTime = alert.outputFields['evt.time'];
  const text = (value: string | undefined): string | null => (value === undefined ? null : clipText(value));
  const captures = response.outcomes.flatMap((o) => (o[captured] ? [o[captured]] : []));
  const data: Record<string, unknown> & { [replyCaptures]?: PodCapture[] } = {
    result: response.result,
    dryRun: response.dryRun,
    reason: clipText(response.reason),
    target: { namespace: response.target.namespace, pod: response.target.name, uid: response.podUid ?? null },
    rules: response.rules,
    actions: clipStrings(response.outcomes),
    alert: {
      rule: clipText(alert.rule),
      priority: clipText(alert.priority),
      source: clipText(alert.source),
      uuid: text(alert.uuid),
      time: text(alert.time),
      evtTime: typeof evtTime === 'string' ? clipText(evtTime) : (evtTime ?? null),
      hostname: text(alert.hostname),
      cloudEvent: context ? { id: clipText(context.id), source: clipText(context.source), type: clipText(context.type) } : null,
    },
  };
  if (captures.length > 0) data[replyCaptures] = captures;
  return data;
}

/**
 * The id of the reply to the alert delivered as `key` (its source and id, or its body's hash):
 * a UUID-shaped SHA-256 of it. Every replica answering a copy of one alert replies with the same
 * id, so the Broker's consumers see one reply event, as CloudEvents' source + id promise.
 */
export function replyId(key: string): string {
  const hex = createHash('sha256').update(key).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * The HTTP binding's percent-encoding of a header value, for the characters a tracestate may
 * hold that need it (space, double quote, percent); it holds no others outside printable ASCII.
 */
function encodeTracestate(value: string): string {
  return value.replace(/[ "%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * A binary-mode CloudEvent reply. The SDK builds and validates the headers; the body is written
 * with lossless JSON so `evt.time` (above 2^53) keeps every digit. With the alert's trace
 * context, the reply carries the CloudEvents distributed-tracing extension: the same trace id
 * with a new span id (`ce-traceparent`), and the tracestate as received (`ce-tracestate`).
 */
export function buildReply(data: Record<string, unknown>, source: string, subject: string, id: string, trace?: TraceContext): Reply {
  const event = new CloudEvent({
    id,
    type: replyType,
    source,
    subject,
    datacontenttype: 'application/json',
    ...(trace ? { traceparent: childTraceparent(trace) } : {}),
    ...(trace?.tracestate ? { tracestate: trace.tracestate } : {}),
  });
  const message = HTTP.binary(event);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) headers[name.toLowerCase()] = String(value);
  if (headers['ce-tracestate'] !== undefined) headers['ce-tracestate'] = encodeTracestate(headers['ce-tracestate']);
  const captures = (data as { [replyCaptures]?: PodCapture[] })[replyCaptures];
  return { headers, body: stringifyJson(captures ? { ...data, captures } : data) };
}

import { randomUUID } from 'node:crypto';
import { CloudEvent, HTTP } from 'cloudevents';
import type { FalcoAlert } from './falco.ts';
import type { EventContext } from './incoming.ts';
import { stringifyJson } from './json.ts';
import type { ActResponse } from './responder.ts';

/**
 * The type of drop's reply events. A reply goes back into the Broker and through every Trigger:
 * the project's Triggers match `falco.rule.output.v1`, never this.
 */
export const replyType = 'dev.falcodrop.response.v1';

export interface Reply {
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** The record a reply carries: what was done to which pod, because of which alert, and how it ended. */
export function buildReplyData(response: ActResponse, alert: FalcoAlert, context: EventContext | undefined): Record<string, unknown> {
  const evtTime = alert.outputFields['evt.time'];
  return {
    result: response.result,
    dryRun: response.dryRun,
    reason: response.reason,
    target: { namespace: response.target.namespace, pod: response.target.name, uid: response.podUid ?? null },
    rules: response.rules,
    actions: response.outcomes,
    alert: {
      rule: alert.rule,
      priority: alert.priority,
      source: alert.source,
      uuid: alert.uuid ?? null,
      time: alert.time ?? null,
      evtTime: evtTime ?? null,
      hostname: alert.hostname ?? null,
      cloudEvent: context ? { id: context.id, source: context.source, type: context.type } : null,
    },
  };
}

/**
 * A binary-mode CloudEvent reply. The SDK builds and validates the headers; the body is written
 * with lossless JSON so `evt.time` (above 2^53) keeps every digit.
 */
export function buildReply(data: Record<string, unknown>, source: string, subject: string): Reply {
  const event = new CloudEvent({
    id: randomUUID(),
    type: replyType,
    source,
    subject,
    datacontenttype: 'application/json',
  });
  const message = HTTP.binary(event);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) headers[name.toLowerCase()] = String(value);
  return { headers, body: stringifyJson(data) };
}

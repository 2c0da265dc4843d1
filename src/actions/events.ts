import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { V1MicroTime, type EventsV1Event, type V1Pod } from '@kubernetes/client-node';
import type { FalcoAlert } from '../falco.ts';
import { errorMessage, type KubeClient } from '../kube.ts';
import type { ActionOutcome } from './action.ts';

/** The Events' reportingController: a qualified name, as events.k8s.io/v1 requires. */
export const reportingController = 'falco-drop.dev/drop';

export interface EventContext {
  /** The response rule that ran the action. */
  readonly ruleName: string;
  readonly alert: FalcoAlert;
  readonly dryRun: boolean;
  /** This replica's name (default: the host name, which is the pod name in Kubernetes). */
  readonly reportingInstance?: string;
  readonly now?: () => Date;
}

export type EventRecord = { readonly recorded: true; readonly name: string } | { readonly recorded: false; readonly error: string };

const reasonSuffix: Record<ActionOutcome['status'], string> = { done: '', 'dry-run': 'DryRun', skipped: 'Skipped', failed: 'Failed' };
const statusWord: Record<ActionOutcome['status'], string> = { done: 'Done', 'dry-run': 'Dry run', skipped: 'Skipped', failed: 'Failed' };

/** `delete` → `FalcoDropDelete`, `isolate` (skipped) → `FalcoDropIsolateSkipped`. */
export function eventReason(outcome: ActionOutcome): string {
  const action = outcome.action.replace(/(^|[-_])([a-z])/g, (_m, _sep: string, c: string) => c.toUpperCase());
  return `FalcoDrop${action}${reasonSuffix[outcome.status]}`;
}

/** At most `limit` UTF-8 bytes, cut on a character boundary (the API server caps `note` at 1 KiB). */
function truncateBytes(text: string, limit: number): string {
  if (Buffer.byteLength(text) <= limit) return text;
  let cut = text.slice(0, limit - 1);
  while (Buffer.byteLength(cut) > limit - 3) cut = cut.slice(0, -1);
  return `${cut}…`;
}

/** The events.k8s.io/v1 Event about what an action did to the pod, and why. */
export function buildEvent(pod: V1Pod, outcome: ActionOutcome, context: EventContext): EventsV1Event {
  const name = pod.metadata?.name as string;
  const now = (context.now ?? (() => new Date()))();
  const why = `response rule "${context.ruleName}", Falco rule "${context.alert.rule}" (priority ${context.alert.priority})`;
  return {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    // As Kubernetes names them: the object's name and a unique suffix (253 characters at most).
    metadata: { name: `${name.slice(0, 236)}.${randomBytes(8).toString('hex')}`, namespace: pod.metadata?.namespace },
    eventTime: new V1MicroTime(now.getTime()),
    type: outcome.status === 'failed' ? 'Warning' : 'Normal',
    reason: eventReason(outcome),
    action: outcome.action,
    note: truncateBytes(`${statusWord[outcome.status]}${context.dryRun ? ' (dry run)' : ''}: ${outcome.reason}; ${why}`, 1024),
    reportingController,
    reportingInstance: (context.reportingInstance ?? hostname()).slice(0, 128),
    regarding: { apiVersion: 'v1', kind: 'Pod', name, namespace: pod.metadata?.namespace, uid: pod.metadata?.uid },
  };
}

/**
 * Leaves an Event on the pod (`kubectl describe pod` lists it) for one action's outcome: Normal,
 * or Warning when the action failed. It never fails the response: errors are returned, not
 * thrown, and nothing is logged here (the responder logs).
 */
export async function recordEvent(kube: KubeClient, pod: V1Pod, outcome: ActionOutcome, context: EventContext): Promise<EventRecord> {
  const event = buildEvent(pod, outcome, context);
  try {
    await kube.events.createNamespacedEvent({ namespace: event.metadata?.namespace as string, body: event });
    return { recorded: true, name: event.metadata?.name as string };
  } catch (error) {
    // The client throws ApiException (an Error) for an answer and fetch's Error for no answer.
    return { recorded: false, error: errorMessage(error) };
  }
}

import type { V1Pod } from '@kubernetes/client-node';
import type { FalcoAlert } from '../falco.ts';
import type { KubeClient } from '../kube.ts';
import type { EventRef } from '../state/claims.ts';
import type { EvidenceStore, PodCapture } from '../state/evidence.ts';
import type { PodTarget } from '../target.ts';
import type { Permission } from './permission.ts';

/**
 * Where an outcome carries what `capture` collected (the pod's manifest and logs): a symbol key,
 * which every copy made with Object.entries or JSON (the log line, the claim's record, an error's
 * details) leaves out. Only the reply event writes it (src/reply.ts), so the logs, which may hold
 * secrets, never reach drop's own log or the 4 KiB record on a claim.
 */
export const captured: unique symbol = Symbol('captured');

/** What an action did: a value, not an exception (only retryable failures are thrown). */
export interface ActionOutcome {
  readonly action: string;
  /** done; skipped (with reason); failed (final, with reason); dry-run (what it would do). */
  readonly status: 'done' | 'skipped' | 'failed' | 'dry-run';
  readonly reason: string;
  /** What `capture` collected, for the reply event only (see `captured`). */
  readonly [captured]?: PodCapture;
}

export interface ActionContext {
  /** Undefined in dry-run with no cluster: the action only says what it would do. */
  readonly kube: KubeClient | undefined;
  readonly target: PodTarget;
  /** The pod as read just before acting (its UID is the one every mutation is bound to). */
  readonly pod: V1Pod | undefined;
  readonly alert: FalcoAlert;
  /** The response rule that asked for this action (for Events, names and logs). */
  readonly ruleName: string;
  readonly dryRun: boolean;
  /** Seconds for Retry-After on retryable failures. */
  readonly retryAfterSeconds: number;
  readonly defaults: { readonly gracePeriodSeconds: number };
  /** The CloudEvent being answered (source + id): `capture` names what it keeps after it. */
  readonly event?: EventRef;
  /** Where `capture` keeps what it collected: Secrets in drop's own namespace (none: not kept). */
  readonly evidence?: EvidenceStore;
}

/**
 * One response action (Talon's actionners): its parameters as a JSON schema (checked when the
 * policy loads), the RBAC it needs (the ClusterRole is checked against the union), and `run`,
 * which must be idempotent: the Broker delivers at least once.
 */
export interface ActionModule {
  readonly name: string;
  readonly description: string;
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly permissions: readonly Permission[];
  /** Counts against the service-wide budget of destructive actions per minute. */
  readonly destructive: boolean;
  run(context: ActionContext, parameters: Readonly<Record<string, unknown>>): Promise<ActionOutcome>;
}

export function podRef(target: PodTarget): string {
  return `${target.namespace}/${target.name}`;
}

import type { V1Pod } from '@kubernetes/client-node';
import type { FalcoAlert } from '../falco.ts';
import type { KubeClient } from '../kube.ts';
import type { PodTarget } from '../target.ts';
import type { Permission } from './permission.ts';

/** What an action did: a value, not an exception (only retryable failures are thrown). */
export interface ActionOutcome {
  readonly action: string;
  /** done; skipped (with reason); failed (final, with reason); dry-run (what it would do). */
  readonly status: 'done' | 'skipped' | 'failed' | 'dry-run';
  readonly reason: string;
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

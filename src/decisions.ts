/** The guard rail that stopped a response (a skip), as the log line's `guard` field names it. */
export type Guard = 'no-rule' | 'no-target' | 'protected' | 'too-old' | 'gone' | 'not-same-pod' | 'opted-out' | 'cooldown';

/**
 * What drop decided about one delivered event, as the operator's views (metrics, the live page)
 * see it: one record per event answered, built once from what the event's log line says.
 * Text from the alert in it is clipped (src/clip.ts): it is attacker-controlled, and a record
 * is kept in bounded memory.
 */
export interface Decision {
  /** When the answer was sent (ISO 8601, this replica's clock). */
  readonly time: string;
  /** How the event arrived: binary, structured, batch or plain (a bare Falco payload). */
  readonly mode: string;
  /** The HTTP status of the answer (for a batch, this event's own). */
  readonly status: number;
  /** Answered from the memory of an earlier delivery of the same event. */
  readonly replayed: boolean;
  /** act, skip, ignore (not a Falco alert), or reject (refused: a DROP_* code). */
  readonly decision: 'act' | 'skip' | 'ignore' | 'reject';
  /** done, dry-run, failed, skipped (act), skipped (skip, ignore), retry or refused (reject). */
  readonly outcome: string;
  /** For a skip: the guard that stopped it (no-rule, no-target, protected, too-old, gone, not-same-pod, opted-out, cooldown). */
  readonly guard?: Guard;
  /** For a rejection: its DROP_* code. */
  readonly code?: string;
  /** The Falco rule and priority, when the event was a Falco alert. */
  readonly falco?: { readonly rule: string; readonly priority: string };
  /** The target pod, `namespace/name`, and its namespace alone, when there was one. */
  readonly target?: string;
  readonly namespace?: string;
  /** The response rules that matched (names from the policy). */
  readonly rules: readonly string[];
  /**
   * Response rules answered from the record of the replica that acted on this same event (it
   * counts their actions, not this replica); absent when none was.
   */
  readonly fromRecord?: readonly string[];
  /** Each action's outcome, in order. */
  readonly actions: readonly { readonly action: string; readonly status: string; readonly reason: string }[];
  /** The reason in words: the log line's message. */
  readonly reason: string;
  readonly traceId?: string;
  readonly dryRun: boolean;
  /** From the request's arrival to the answer, in milliseconds. */
  readonly durationMs: number;
}

/** Called once per event answered. It must not throw, and must not wait: the answer does not wait for it. */
export type DecisionObserver = (decision: Decision) => void;

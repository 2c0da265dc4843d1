/**
 * The safety state the responder consults before acting: a claim per (response rule, pod), which
 * holds for the rule's cooldown, and the destructive budget. Two homes, one contract:
 * - ClusterSafety: Leases in drop's own namespace (src/state/), shared by every replica,
 *   restart and revision. What drop uses whenever it acts on a cluster.
 * - MemorySafety: this process's memory. Used under the global dry-run, which promises to write
 *   nothing to the cluster, claims included: each replica then keeps its own cooldowns and budget.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { ActionOutcome } from './actions/action.ts';
import { clipText } from './clip.ts';
import type { Logger } from 'pino';
import { Cooldowns, DestructiveBudget, type Clock } from './guards.ts';
import type { KubeClient } from './kube.ts';
import type { ResponseRule } from './policy.ts';
import { BudgetStore, type BudgetAnswer } from './state/budget.ts';
import { scheduleSweep } from './state/common.ts';
import { ClaimStore, maxOutcomeBytes, workingUntil, type Claim, type ClaimedPod, type ClaimRecord, type EventRef } from './state/claims.ts';
import { pause } from './background.ts';
import { DropError } from './errors.ts';

/** How many times an outcome record is tried, and the backoff between tries (doubling). */
export const recordAttempts = 10;
const recordRetryFirstMs = 100;
const recordRetryMaxMs = 5000;

/** What a claim records once its response is done: the outcomes of the rule's actions. */
export interface RecordedOutcome {
  readonly outcomes: readonly ActionOutcome[];
}

/** The claim of one response rule on one pod, for one event. */
export type RuleClaim =
  /** This replica acts. `finish` records what came of it; `release` gives the claim up (the Broker will retry). */
  | {
      readonly state: 'won';
      readonly rule: ResponseRule;
      /** True when it took over a claim whose holder stopped before recording (it may have acted in part). */
      readonly resumed: boolean;
      /**
       * Records the outcome, trying again after a failure that may pass (with backoff, while the
       * claim's working time lasts, until `signal` aborts); what went wrong when it could not.
       */
      finish(outcome: RecordedOutcome, signal: AbortSignal): Promise<string | undefined>;
      release(): Promise<void>;
    }
  /** The same event was already responded to (here or by another replica): its recorded outcome. */
  | { readonly state: 'done'; readonly rule: ResponseRule; readonly holder: string; readonly outcome: RecordedOutcome }
  /** The same event is being responded to right now, by a holder working until `until`. */
  | { readonly state: 'busy'; readonly rule: ResponseRule; readonly holder: string; readonly until: Date }
  /** Another event about this pod was responded to: the rule's cooldown has this long to run. */
  | { readonly state: 'cooling'; readonly rule: ResponseRule; readonly remainingSeconds: number };

export interface SafetyState {
  /** Where the state lives, as the startup log says it. */
  readonly home: 'cluster' | 'memory';
  claim(rule: ResponseRule, pod: ClaimedPod, event: EventRef): Promise<RuleClaim>;
  /**
   * True when a claim of this rule on this pod for this event is known, without asking the API,
   * to be lost (a cooldown seen recorded, or a claim this replica holds for another event). A
   * hint, for what to prepare in parallel with the claim; claim() alone decides.
   */
  expectsLoss(rule: ResponseRule, pod: ClaimedPod, event: EventRef): boolean;
  /** Takes `count` slots of the destructive budget, or says in how many seconds they free up. */
  take(count: number): Promise<BudgetAnswer>;
}

/**
 * The longest `source` or `id` a claim stores as it is; a longer one (a CloudEvent id may be
 * 500 KB) is stored, and compared, as `sha256:` and its hex digest. 253 keeps every real one as
 * it is, readable in `kubectl describe lease`.
 */
const maxRefChars = 253;

/** The event's reference as claims store it: short enough for an annotation, equal for equal events. */
export function claimEventRef(event: EventRef): EventRef {
  const fit = (text: string): string => (text.length <= maxRefChars ? text : `sha256:${createHash('sha256').update(text).digest('hex')}`);
  return { source: fit(event.source), id: fit(event.id) };
}

/**
 * The outcome as a claim records it: JSON within the claim's 4096 bytes. The reasons are cut
 * (to 512 characters, then 128) until it fits; a rule with more actions than that allows keeps
 * the first ones and says how many it left out.
 */
export function recordable(outcome: RecordedOutcome): RecordedOutcome {
  for (const chars of [512, 128]) {
    const cut = { outcomes: outcome.outcomes.map((o) => ({ action: o.action, status: o.status, reason: clipText(o.reason, chars) })) };
    if (Buffer.byteLength(JSON.stringify(cut)) <= maxOutcomeBytes) return cut;
  }
  const kept: ActionOutcome[] = [];
  for (const o of outcome.outcomes) {
    const next = [...kept, { action: clipText(o.action, 64), status: o.status, reason: clipText(o.reason, 64) }];
    // Room for the note below.
    if (Buffer.byteLength(JSON.stringify({ outcomes: next })) > maxOutcomeBytes - 200) break;
    kept.push(next.at(-1)!);
  }
  const left = outcome.outcomes.length - kept.length;
  if (left === 0) return { outcomes: kept };
  return { outcomes: [...kept, { action: 'record', status: 'skipped', reason: `${left} more outcomes were not recorded (a claim holds ${maxOutcomeBytes} bytes)` }] };
}

const statuses = new Set(['done', 'skipped', 'failed', 'dry-run']);

/**
 * A recorded outcome as read back from a claim, written by this revision or another. Anything
 * that is not the shape this revision writes still means "done" (the holder finished): it is
 * reported as such, never acted on again.
 */
export function readRecorded(value: unknown, holder: string): RecordedOutcome {
  const outcomes = (value as { outcomes?: unknown } | null)?.outcomes;
  const valid =
    Array.isArray(outcomes) &&
    outcomes.every((o: Partial<ActionOutcome> | null) => typeof o?.action === 'string' && statuses.has(o.status as string) && typeof o.reason === 'string');
  if (valid) return { outcomes: outcomes as ActionOutcome[] };
  return { outcomes: [{ action: 'record', status: 'done', reason: `responded to by ${holder || 'another replica'}; its record is not readable by this revision` }] };
}

export interface ClusterSafetyOptions {
  readonly claims: ClaimStore;
  readonly budget: BudgetStore;
  readonly clock: Clock;
  /** (rule, pod) cooldowns this replica has seen recorded and remembers (default 10,000). */
  readonly cacheMax?: number;
}

/** A cooldown seen recorded: until when, and for which event. */
interface Seen {
  readonly until: number;
  readonly event: string;
}

/**
 * The safety state in Leases (src/state/). A claim this replica has seen recorded for another
 * event is remembered until it expires, so a flood of alerts about one pod costs the API one
 * claim, not one per alert. Correctness does not depend on that memory: a recorded claim is
 * never released, only swept once expired, so what it remembers stays true (unless someone
 * deletes the Lease by hand: then this replica alone keeps the cooldown until it ends).
 */
export class ClusterSafety implements SafetyState {
  readonly home = 'cluster' as const;
  private readonly seen: LRUCache<string, Seen>;
  /** Claims this replica has won and not yet recorded or given back: (rule, pod) → event. */
  private readonly held = new Map<string, string>();
  /** Claims this replica is asking the API for: (rule, pod) → the events asking, how many times each. */
  private readonly claiming = new Map<string, Map<string, number>>();
  constructor(private readonly options: ClusterSafetyOptions) {
    this.seen = new LRUCache({ max: options.cacheMax ?? 10_000 });
  }

  async claim(rule: ResponseRule, pod: ClaimedPod, event: EventRef): Promise<RuleClaim> {
    const ref = claimEventRef(event);
    const key = `${rule.name}\u0000${pod.uid}`;
    const eventKey = `${ref.source}\u0000${ref.id}`;
    const now = this.options.clock.now().getTime();
    const seen = this.seen.get(key);
    if (seen && seen.until > now && seen.event !== eventKey) return { state: 'cooling', rule, remainingSeconds: Math.ceil((seen.until - now) / 1000) };
    const result = await this.asking(key, eventKey, () => this.options.claims.claim({ rule: rule.name, pod, event: ref, cooldownSeconds: rule.cooldownSeconds }));
    if (result.won) {
      let claim = result.claim;
      const until = now + rule.cooldownSeconds * 1000;
      this.held.set(key, eventKey);
      return {
        state: 'won',
        rule,
        resumed: result.resumed,
        finish: async (outcome, signal) => {
          const problem = await this.record(claim, recordable(outcome), signal);
          this.held.delete(key);
          if (typeof problem === 'string') return problem;
          claim = problem;
          this.seen.set(key, { until, event: eventKey });
          return undefined;
        },
        release: async () => {
          this.held.delete(key);
          // A claim that cannot be released is left to expire or to be taken over once its
          // working time is over: the Broker's retry acts then.
          await this.options.claims.release(claim).catch(() => false);
        },
      };
    }
    return this.lost(rule, key, eventKey, result.record, now);
  }

  expectsLoss(rule: ResponseRule, pod: ClaimedPod, event: EventRef): boolean {
    const ref = claimEventRef(event);
    const key = `${rule.name}\u0000${pod.uid}`;
    const eventKey = `${ref.source}\u0000${ref.id}`;
    const seen = this.seen.get(key);
    if (seen && seen.until > this.options.clock.now().getTime() && seen.event !== eventKey) return true;
    const held = this.held.get(key);
    if (held !== undefined && held !== eventKey) return true;
    // Another event about this pod is claiming it here now: at most one of them can win. Without
    // this, a flood's first alerts would each take the budget early and give it back, and two
    // replicas doing so ran the budget's Lease into five write conflicts in a row (a 503).
    const asking = this.claiming.get(key);
    return asking !== undefined && (asking.size > 1 || !asking.has(eventKey));
  }

  /** Runs the claim, noting meanwhile that this event is asking for (rule, pod). */
  private async asking<T>(key: string, eventKey: string, claim: () => Promise<T>): Promise<T> {
    const events = this.claiming.get(key) ?? new Map<string, number>();
    this.claiming.set(key, events.set(eventKey, (events.get(eventKey) ?? 0) + 1));
    try {
      return await claim();
    } finally {
      const left = events.get(eventKey)! - 1;
      if (left > 0) events.set(eventKey, left);
      else events.delete(eventKey);
      if (events.size === 0) this.claiming.delete(key);
    }
  }

  /**
   * Writes the outcome on the claim; a failure that may pass (the API unreachable, throttled,
   * 5xx) is tried again after 0.1 s, then twice as long each time (at most 5 s), as long as the
   * claim's working time lasts and `signal` has not aborted, at most `recordAttempts` times. The
   * claim as written, or why it was not.
   */
  private async record(claim: Claim, outcome: RecordedOutcome, signal: AbortSignal, attempt = 1): Promise<Claim | string> {
    try {
      const recorded = await this.options.claims.record(claim, outcome);
      return recorded.recorded ? recorded.claim : recorded.reason;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const delay = Math.min(recordRetryFirstMs * 2 ** (attempt - 1), recordRetryMaxMs);
      const again = error instanceof DropError && error.retryable && attempt < recordAttempts && this.options.clock.now().getTime() + delay < workingUntil(claim);
      if (!again) return attempt === 1 ? message : `${message} (tried ${attempt} times)`;
      if (!(await pause(delay, signal))) return `${message} (stopped trying: the service is stopping)`;
      return this.record(claim, outcome, signal, attempt + 1);
    }
  }

  private lost(rule: ResponseRule, key: string, eventKey: string, record: ClaimRecord, now: number): RuleClaim {
    if (record.sameEvent) {
      if (record.outcome === undefined) return { state: 'busy', rule, holder: record.holder, until: record.workingUntil as Date };
      return { state: 'done', rule, holder: record.holder, outcome: readRecorded(record.outcome, record.holder) };
    }
    const until = record.expiresAt.getTime();
    // Only a recorded claim is remembered: one still in progress may yet be released.
    if (record.outcome !== undefined) this.seen.set(key, { until, event: `${record.event.source}\u0000${record.event.id}` });
    return { state: 'cooling', rule, remainingSeconds: Math.max(1, Math.ceil((until - now) / 1000)) };
  }

  take(count: number): Promise<BudgetAnswer> {
    return this.options.budget.take(count);
  }

  /** Deletes the expired claims; how many. */
  sweep(): Promise<number> {
    return this.options.claims.sweep(this.options.clock.now());
  }
}

/** The safety state in this process's memory (the global dry-run, and `falco-drop check`). */
export class MemorySafety implements SafetyState {
  readonly home = 'memory' as const;
  constructor(
    private readonly cooldowns: Cooldowns,
    private readonly budget: DestructiveBudget,
  ) {}

  expectsLoss(rule: ResponseRule, pod: ClaimedPod): boolean {
    return this.cooldowns.remaining(rule.name, pod.uid) > 0;
  }

  async claim(rule: ResponseRule, pod: ClaimedPod): Promise<RuleClaim> {
    const remaining = this.cooldowns.remaining(rule.name, pod.uid);
    if (remaining > 0) return { state: 'cooling', rule, remainingSeconds: remaining };
    this.cooldowns.start(rule.name, pod.uid, rule.cooldownSeconds);
    return {
      state: 'won',
      rule,
      resumed: false,
      finish: async () => undefined,
      release: async () => this.cooldowns.cancel(rule.name, pod.uid),
    };
  }

  async take(count: number): Promise<BudgetAnswer> {
    const granted = this.budget.take(count);
    if (!granted.ok) return granted;
    return { ok: true, giveBack: async (n) => granted.giveBack(n) };
  }
}

export interface SafetyWiring {
  /** The API client; undefined without a cluster. */
  readonly kube: KubeClient | undefined;
  /** The global dry-run: nothing is written to the cluster, claims included. */
  readonly dryRun: boolean;
  /** drop's own namespace, where the state objects live. */
  readonly namespace: string;
  /** This replica, as claims name their holder (its pod name). */
  readonly identity: string;
  readonly clock: Clock;
  readonly retryAfterSeconds: number;
  readonly destructivePerMinute: number;
  /** The policy's alert age limit: claims are kept that long, so a late copy finds its record. */
  readonly maxAlertAgeSeconds: number;
}

/** The safety state drop runs with: in the cluster when it acts on one, else in memory. */
export function createSafety(wiring: SafetyWiring): ClusterSafety | MemorySafety {
  const { kube, clock } = wiring;
  if (!kube || wiring.dryRun) return new MemorySafety(new Cooldowns(clock), new DestructiveBudget(clock, wiring.destructivePerMinute));
  const common = { leases: kube.coordination, namespace: wiring.namespace, identity: wiring.identity, clock, retryAfterSeconds: wiring.retryAfterSeconds };
  const claims = new ClaimStore({ ...common, retainSeconds: wiring.maxAlertAgeSeconds });
  return new ClusterSafety({ claims, budget: new BudgetStore({ ...common, perMinute: wiring.destructivePerMinute }), clock });
}

/** How often each replica deletes the expired claims (with up to 50 % jitter, so replicas spread out). */
export const sweepIntervalMs = 60_000;

/**
 * Sweeps the expired claims every `everyMs` (plus jitter) until stopped; a sweep that fails is
 * logged and tried again next time. Nothing depends on a sweep for correctness: an expired claim
 * is taken over by the next claim of its (rule, pod); sweeping keeps their number bounded.
 */
export function scheduleSweeps(safety: ClusterSafety, log: Pick<Logger, 'info' | 'warn'>, everyMs = sweepIntervalMs, random = Math.random): () => void {
  return scheduleSweep(() => safety.sweep(), log, { deleted: (n) => `deleted ${n} expired claims`, failed: 'could not delete the expired claims; trying again later' }, everyMs, random);
}

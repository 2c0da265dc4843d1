/**
 * One destructive budget for the cluster, whatever the number of replicas: the times of the
 * destructive actions of the last minute live in one Lease, changed by compare-and-swap (read,
 * compute, update with the resourceVersion read; a 409 means another replica wrote first: read
 * again). Same contract as the in-memory DestructiveBudget (src/guards.ts), asynchronous.
 *
 * INTERFACE BETWEEN REVISIONS (keep stable; add, never rename):
 * - a coordination.k8s.io/v1 Lease named `drop-budget` in drop's own namespace, labels
 *   `app.kubernetes.io/managed-by: falco-drop` and `falco-drop/state: budget`;
 * - annotation `falco-drop/destructive-actions`: a JSON array of the times (milliseconds since
 *   the epoch, one entry per action) of the destructive actions taken in the last 60 seconds;
 * - spec.holderIdentity: the replica that wrote it last, spec.renewTime: when (MicroTime),
 *   spec.leaseDurationSeconds: 60 (the window).
 */
import type { V1Lease } from '@kubernetes/client-node';
import { DropError } from '../errors.ts';
import { apiCallOr, contended, managedByLabel, microTime, stateLabel, type StateStoreOptions } from './common.ts';

export const budgetName = 'drop-budget';
export const budgetAnnotation = 'falco-drop/destructive-actions';
const windowMs = 60_000;

/** Slots taken by one response; those of actions that did not happen can be given back. */
export interface SharedBudgetGrant {
  readonly ok: true;
  /** Gives back `count` of this grant's slots (at most as many as were taken). */
  giveBack(count: number): Promise<void>;
}

export type BudgetAnswer = SharedBudgetGrant | { readonly ok: false; readonly retryAfterSeconds: number };

export interface BudgetStoreOptions extends StateStoreOptions {
  /** Destructive actions allowed per minute, for the whole cluster. */
  readonly perMinute: number;
}

export class BudgetStore {
  private readonly attempts: number;
  /**
   * This replica's changes run one at a time: run at once, they would only race each other for
   * the Lease's version, and a burst of alerts about many pods at one replica lost its
   * compare-and-swap `attempts` times in a row (a spurious 503) against no other replica.
   */
  private queue: Promise<unknown> = Promise.resolve();
  /** The budget's Lease as this replica last read or wrote it. */
  private known: V1Lease | undefined;
  constructor(private readonly options: BudgetStoreOptions) {
    this.attempts = options.attempts ?? 5;
  }

  /** Takes `count` slots, or says in how many seconds that many will be free. */
  async take(count: number): Promise<BudgetAnswer> {
    if (count <= 0) return { ok: true, giveBack: async () => {} };
    const { perMinute } = this.options;
    return this.change<BudgetAnswer>(`take ${count} from the destructive budget`, (taken, now) => {
      if (taken.length + count > perMinute) {
        // The slot that must expire for `count` to fit; a chain longer than the budget never fits.
        const needed = taken.length + count - perMinute;
        const expiring = taken[Math.min(needed, taken.length) - 1] ?? now;
        return { result: { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((expiring + windowMs - now) / 1000)) } };
      }
      return { next: [...taken, ...Array<number>(count).fill(now)], result: this.grant(now, count) };
    });
  }

  private grant(at: number, count: number): SharedBudgetGrant {
    let left = count;
    return {
      ok: true,
      giveBack: async (n: number) => {
        const back = Math.min(n, left);
        left -= back;
        if (back <= 0) return;
        await this.change(`give ${back} back to the destructive budget`, (taken) => {
          const next = [...taken];
          let freed = 0;
          for (let i = next.length - 1; i >= 0 && freed < back; i--) {
            if (next[i] === at) {
              next.splice(i, 1);
              freed++;
            }
          }
          // Slots already expired have nothing left to free.
          return freed === 0 ? { result: undefined } : { next, result: undefined };
        });
      },
    };
  }

  /** One change, once this replica's earlier ones have ended (whether they succeeded or not). */
  private change<R>(what: string, compute: (taken: number[], now: number) => { next?: number[]; result: R }): Promise<R> {
    const run = this.queue.then(() => this.changeNow(what, compute));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Compute from the Lease as last read or written, write with its version; on a lost race read
   * it and go again, a bounded number of times. Starting from this replica's own last copy saves
   * the read when no other replica wrote since (the usual case): the write's version check makes
   * a stale copy lose, never count wrong. An answer that writes nothing (a refusal) is only
   * given from a fresh read.
   */
  private async changeNow<R>(what: string, compute: (taken: number[], now: number) => { next?: number[]; result: R }): Promise<R> {
    const { namespace, retryAfterSeconds, leases } = this.options;
    const name = budgetName;
    let cached = this.known;
    for (let attempt = 0; attempt < this.attempts; ) {
      const now = this.options.clock.now().getTime();
      const current = cached ?? (await apiCallOr(what, retryAfterSeconds, [404], () => leases.readNamespacedLease({ name, namespace })));
      this.known = undefined;
      const taken = current === 404 ? [] : readTaken(current, now);
      if (current !== 404) this.known = current;
      const { next, result } = compute(taken, now);
      if (!next) {
        if (cached === undefined) return result;
        cached = undefined;
        continue;
      }
      const body = this.build(next, now, current === 404 ? undefined : current);
      const written = await apiCallOr(what, retryAfterSeconds, [404, 409], () =>
        current === 404 ? leases.createNamespacedLease({ namespace, body }) : leases.replaceNamespacedLease({ name, namespace, body }),
      );
      if (written !== 404 && written !== 409) {
        this.known = written;
        return result;
      }
      // Another replica wrote first (or the Lease was deleted): read it and decide again.
      this.known = cached = undefined;
      attempt++;
    }
    throw contended(`${what} (Lease ${namespace}/${name})`, this.attempts, retryAfterSeconds);
  }

  private build(taken: number[], now: number, previous: V1Lease | undefined): V1Lease {
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: budgetName,
        namespace: this.options.namespace,
        labels: { ...managedByLabel, [stateLabel]: 'budget' },
        annotations: { [budgetAnnotation]: JSON.stringify(taken) },
        ...(previous ? { resourceVersion: previous.metadata?.resourceVersion } : {}),
      },
      spec: { holderIdentity: this.options.identity, renewTime: microTime(now), leaseDurationSeconds: windowMs / 1000 },
    };
  }
}

/**
 * The slots of the last minute, oldest first. A value drop did not write is refused (final):
 * guessing could exceed the budget; deleting the Lease resets it.
 */
function readTaken(lease: V1Lease, now: number): number[] {
  const text = lease.metadata?.annotations?.[budgetAnnotation] ?? '[]';
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new DropError('DROP_K8S_REJECTED', `the destructive budget's Lease ${lease.metadata?.namespace}/${budgetName} holds ${JSON.stringify(text.slice(0, 100))}, not a JSON array of times; delete it to reset the budget`);
  }
  return (parsed as number[]).filter((t) => t > now - windowMs).sort((a, b) => a - b);
}

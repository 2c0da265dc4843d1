import { LRUCache } from 'lru-cache';

export interface Clock {
  now(): Date;
}

/** The label or annotation (on a pod or its namespace) that opts it out of every response. */
export const optOutKey = 'falco-drop/ignore';

/** True when labels or annotations carry `falco-drop/ignore: "true"`. */
export function optedOut(...maps: (Record<string, string> | undefined)[]): boolean {
  return maps.some((m) => m?.[optOutKey]?.toLowerCase() === 'true');
}

/**
 * One response per (response rule, pod) within the rule's cooldown: a flood of alerts about one
 * pod makes one response. Bounded: the least recently used entries go first past `max`.
 */
export class Cooldowns {
  private readonly until: LRUCache<string, number>;
  constructor(
    private readonly clock: Clock,
    max = 10_000,
  ) {
    this.until = new LRUCache({ max });
  }

  /** Seconds left in the cooldown of this (rule, pod), or 0 when it may act. */
  remaining(rule: string, pod: string): number {
    const until = this.until.get(`${rule}\u0000${pod}`) ?? 0;
    return Math.max(0, Math.ceil((until - this.clock.now().getTime()) / 1000));
  }

  start(rule: string, pod: string, seconds: number): void {
    this.until.set(`${rule}\u0000${pod}`, this.clock.now().getTime() + seconds * 1000);
  }

  /** Ends a cooldown started for a response that did not happen (the Broker will retry it). */
  cancel(rule: string, pod: string): void {
    this.until.delete(`${rule}\u0000${pod}`);
  }
}

/** Slots taken from the budget by one response; those of actions that did not happen can be given back. */
export interface BudgetGrant {
  readonly ok: true;
  /** Gives back `count` of this grant's slots (at most as many as were taken). */
  giveBack(count: number): void;
}

/**
 * A service-wide budget of destructive actions per minute (a sliding window). Past it, alerts
 * are answered 429 with Retry-After: the Broker retries, then dead-letters; nothing is dropped,
 * and a flood of forged or real alerts cannot delete a namespace's worth of pods in seconds.
 */
export class DestructiveBudget {
  private readonly taken: number[] = [];
  constructor(
    private readonly clock: Clock,
    private readonly perMinute: number,
  ) {}

  /** Takes `count` slots, or says in how many seconds that many will be free. */
  take(count: number): BudgetGrant | { ok: false; retryAfterSeconds: number } {
    const now = this.clock.now().getTime();
    this.expire(now);
    if (this.taken.length + count <= this.perMinute) {
      for (let i = 0; i < count; i++) this.taken.push(now);
      let left = count;
      return {
        ok: true,
        giveBack: (n: number) => {
          const back = Math.min(n, left);
          left -= back;
          this.release(now, back);
        },
      };
    }
    // The slot that must expire for `count` to fit; a chain longer than the budget never fits.
    const needed = this.taken.length + count - this.perMinute;
    const expiring = this.taken[Math.min(needed, this.taken.length) - 1] ?? now;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((expiring + 60_000 - now) / 1000)) };
  }

  private expire(now: number): void {
    while (this.taken.length > 0 && (this.taken[0] as number) <= now - 60_000) this.taken.shift();
  }

  /** Frees `count` slots taken at `at`; slots already expired have nothing left to free. */
  private release(at: number, count: number): void {
    for (let i = this.taken.length - 1, n = count; i >= 0 && n > 0; i--) {
      if (this.taken[i] === at) {
        this.taken.splice(i, 1);
        n--;
      }
    }
  }
}

import { LRUCache } from 'lru-cache';

export interface RedeliveryOptions {
  /** Most remembered deliveries; the oldest are forgotten first. */
  readonly max: number;
  /** How long an outcome is remembered, in milliseconds. */
  readonly ttlMs: number;
  /** Decides whether a failure is remembered (final) or forgotten so a retry acts again. */
  readonly isFinalFailure: (error: unknown) => boolean;
}

/**
 * At-least-once delivery means the same event (source + id) arrives again, late or at the same
 * moment. The first delivery's work is shared by every copy: concurrent copies await the same
 * promise, later copies get the remembered outcome. A retryable failure is forgotten at once so
 * the Broker's retry does the work. Memory is bounded by `max` entries and `ttlMs`.
 */
export class RedeliveryMemory<T> {
  private readonly cache: LRUCache<string, { promise: Promise<T> }>;
  private readonly isFinalFailure: (error: unknown) => boolean;

  constructor(options: RedeliveryOptions) {
    this.cache = new LRUCache({ max: options.max, ttl: options.ttlMs });
    this.isFinalFailure = options.isFinalFailure;
  }

  /** Runs `work` once per key; `replayed` tells whether the result came from an earlier delivery. */
  async once(key: string, work: () => Promise<T>): Promise<{ result: T; replayed: boolean }> {
    const known = this.cache.get(key);
    if (known) return { result: await known.promise, replayed: true };
    const entry = { promise: work() };
    this.cache.set(key, entry);
    try {
      return { result: await entry.promise, replayed: false };
    } catch (error) {
      if (!this.isFinalFailure(error) && this.cache.get(key) === entry) this.cache.delete(key);
      throw error;
    }
  }

  get size(): number {
    return this.cache.size;
  }
}

import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

export interface RedeliveryOptions<T> {
  /** Most remembered deliveries; the least recently used are forgotten first. */
  readonly max: number;
  /** How long an outcome is remembered, in milliseconds. */
  readonly ttlMs: number;
  /** Most bytes the remembered deliveries may take, as `textOf` and the keys count them. */
  readonly maxBytes: number;
  /**
   * The outcome as text, called once when its work ends: its bytes (`stringBytes`) are what the
   * outcome counts, and outcomes of the same text are remembered as one object.
   */
  readonly textOf: (outcome: T) => string;
}

/**
 * The default byte budget: 16 MiB. Under the 256 Mi limit of the shipped pod, about 100 MiB of
 * which the process takes at rest, this keeps every remembered answer within a small, fixed
 * share of the heap. An answer counts about 0.6 KB when it is a skip and 1.8 KB when it carries
 * a reply event, so the default 10,000 deliveries (DROP_REDELIVERY_MAX) fit unless most of them
 * acted; an answer swollen by hostile text (each field still cut to 1 KB) only makes the oldest
 * be forgotten sooner.
 */
export const defaultRedeliveryMaxBytes = 16 * 1024 * 1024;

/** Bytes counted for a delivery besides its outcome: the entry, its promise, the cache's slots. */
export const entryOverheadBytes = 256;

/**
 * How many distinct recent outcomes are kept to be shared, and the longest text shared. A noisy
 * rule's alerts get the same answer thousands of times: remembered as one object, 10,000 of them
 * take the memory of their keys, not 10,000 copies of the answer. The bytes counted against
 * `maxBytes` stay those of a copy each, so the bound holds whatever is shared.
 */
const sharedOutcomes = 64;
const maxSharedChars = 4096;

/** A key longer than this is remembered by its SHA-256 (a CloudEvent id may be 500 KB). */
const maxKeyChars = 128;

/** The bytes V8 takes for a string's characters: one each when all are Latin-1, else two. */
export function stringBytes(text: string): number {
  return /[^\u0000-\u00ff]/.test(text) ? text.length * 2 : text.length;
}

interface Entry<T> {
  readonly promise: Promise<T>;
  /** The outcome's bytes, 0 while its work runs. */
  readonly bytes: number;
}

/**
 * At-least-once delivery means the same event (source + id) arrives again, late or at the same
 * moment. The first delivery's work is shared by every copy: concurrent copies await the same
 * promise, later copies get the remembered outcome. A failure is forgotten at once so the
 * Broker's retry does the work (an answer that must be replayed, such as a final refusal, is an
 * outcome, not a failure). Memory is bounded by `max` entries, `maxBytes` and `ttlMs`.
 */
export class RedeliveryMemory<T> {
  private readonly cache: LRUCache<string, Entry<T>>;
  private readonly textOf: (outcome: T) => string;
  private readonly shared = new LRUCache<string, { readonly outcome: T }>({ max: sharedOutcomes });

  constructor(options: RedeliveryOptions<T>) {
    this.cache = new LRUCache<string, Entry<T>>({
      max: options.max,
      ttl: options.ttlMs,
      maxSize: options.maxBytes,
      sizeCalculation: (entry, key) => entryOverheadBytes + stringBytes(key) + entry.bytes,
    });
    this.textOf = options.textOf;
  }

  /** Runs `work` once per key; `replayed` tells whether the result came from an earlier delivery. */
  async once(key: string, work: () => Promise<T>): Promise<{ result: T; replayed: boolean }> {
    const id = key.length > maxKeyChars ? `sha256\u0000${createHash('sha256').update(key).digest('hex')}` : key;
    const known = this.cache.get(id);
    if (known) return { result: await known.promise, replayed: true };
    const entry: Entry<T> = { promise: work(), bytes: 0 };
    this.cache.set(id, entry);
    let result: T;
    try {
      result = await entry.promise;
    } catch (error) {
      if (this.cache.peek(id) === entry) this.cache.delete(id);
      throw error;
    }
    // The outcome is known: count its bytes (an entry larger than the whole budget is dropped),
    // keeping the time to live from the first delivery, and remember one object for equal outcomes.
    if (this.cache.peek(id) === entry) {
      const text = this.textOf(result);
      const kept = this.share(text, result);
      this.cache.set(id, { promise: kept === result ? entry.promise : Promise.resolve(kept), bytes: stringBytes(text) }, { noUpdateTTL: true });
    }
    return { result, replayed: false };
  }

  /** The outcome remembered for this text: an equal one kept before, else this one. */
  private share(text: string, outcome: T): T {
    if (text.length > maxSharedChars) return outcome;
    const known = this.shared.get(text);
    if (known) return known.outcome;
    this.shared.set(text, { outcome });
    return outcome;
  }

  /** How many deliveries are remembered. */
  get size(): number {
    return this.cache.size;
  }

  /** The bytes counted for what is remembered; never above `maxBytes`. */
  get bytes(): number {
    return this.cache.calculatedSize;
  }
}

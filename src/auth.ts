/**
 * Who may ask drop to act. A Knative Service is not protected by Knative's EventPolicy, so with
 * sender authentication on, drop checks the caller itself (contract.md §4): the Broker, with
 * OIDC enabled and `spec.subscriber.audience` set on the Trigger, sends a service-account token
 * for that audience; drop asks the API server whether it is valid (a TokenReview with the
 * audience) and whether the account behind it is an allowed sender.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { DropError } from './errors.ts';
import type { Clock } from './guards.ts';
import { matchesName } from './match.ts';

/** What the API server said of a token (TokenReview status), reduced to what drop uses. */
export interface TokenReviewResult {
  readonly authenticated: boolean;
  readonly username: string | undefined;
  /** The audiences the token is valid for, among those asked about. */
  readonly audiences: readonly string[];
  readonly error: string | undefined;
}

/** Sends one TokenReview; throws a DropError when the API cannot answer. */
export type TokenReviewer = (token: string, audience: string) => Promise<TokenReviewResult>;

/**
 * The default senders: the service accounts Knative makes for the Triggers of `namespace` (of
 * any namespace when unknown), `<trigger>-oidc-eventing.knative.dev-trigger`. Knative uses that
 * name only for a Trigger name of up to 29 characters; a longer one is hashed (kmeta.ChildName)
 * and does not match: such accounts go in DROP_ALLOWED_SENDERS, as release.yaml does for its own
 * Triggers (hack/release/senders.mjs computes Knative's names).
 */
export function triggerSenders(namespace: string | undefined): string[] {
  return [`system:serviceaccount:${namespace ?? '*'}:*-oidc-eventing.knative.dev-trigger`];
}

export interface SenderAuthOptions {
  /** The audience the tokens must be issued for (the Trigger's `spec.subscriber.audience`). */
  readonly audience: string;
  /** Allowed usernames, globs with `*` and `?` (DROP_ALLOWED_SENDERS); unset: triggerSenders(namespace). */
  readonly allowedSenders: readonly string[] | undefined;
  /** drop's own namespace, whose Triggers are the default senders. */
  readonly namespace: string | undefined;
  readonly review: TokenReviewer;
  readonly clock: Clock;
}

/** How long an answer is trusted before the token is reviewed again (never past its exp). */
const reviewTrustMs = 60_000;

interface Remembered {
  readonly result: Promise<TokenReviewResult>;
  until: number;
}

/** A JWT's `exp` in milliseconds, read without checking the signature (the API server did). */
function expiresAtMs(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const exp = (claims as { exp?: unknown } | null)?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class SenderAuth {
  readonly audience: string;
  readonly allowedSenders: readonly string[];
  private readonly review: TokenReviewer;
  private readonly clock: Clock;
  /** Up to 1000 tokens, by their SHA-256, so no token is kept in memory longer than its request. */
  private readonly cache = new LRUCache<string, Remembered>({ max: 1000 });

  constructor(options: SenderAuthOptions) {
    this.audience = options.audience;
    this.allowedSenders = options.allowedSenders ?? triggerSenders(options.namespace);
    this.review = options.review;
    this.clock = options.clock;
  }

  /**
   * The sender's username when the Authorization header carries a token valid for the audience
   * from an allowed sender; otherwise a 401 or 403 DropError (final: the Broker dead-letters it),
   * or a retryable one when the API server could not be asked.
   */
  async check(authorization: string | undefined): Promise<string> {
    const match = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
    if (!match) {
      const why = authorization === undefined ? 'no Authorization header' : 'the Authorization header is not "Bearer <token>"';
      throw new DropError('DROP_UNAUTHENTICATED', `${why}: this service takes events only with a token for audience ${this.audience}`);
    }
    const token = match[1] as string;
    const result = await this.reviewed(token);
    if (!result.authenticated || !result.audiences.includes(this.audience)) {
      const why = !result.authenticated ? (result.error ?? 'the token is not valid') : `the token is not for audience ${this.audience}`;
      throw new DropError('DROP_UNAUTHENTICATED', `the token was refused: ${why}`);
    }
    const username = result.username ?? '';
    if (!matchesName(this.allowedSenders, username)) {
      const who = username === '' ? 'a token with no user name' : username;
      throw new DropError('DROP_FORBIDDEN', `${who} is not an allowed sender (allowed: ${this.allowedSenders.join(', ')})`, { details: { sender: username } });
    }
    return username;
  }

  private async reviewed(token: string): Promise<TokenReviewResult> {
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.clock.now().getTime();
    const known = this.cache.get(key);
    if (known && now < known.until) return known.result;
    // Concurrent deliveries with one token (a cold start) share one review.
    const remembered: Remembered = { result: this.review(token, this.audience), until: Number.POSITIVE_INFINITY };
    this.cache.set(key, remembered);
    try {
      const result = await remembered.result;
      const exp = expiresAtMs(token);
      remembered.until = Math.min(now + reviewTrustMs, exp ?? Number.POSITIVE_INFINITY);
      return result;
    } catch (error) {
      if (this.cache.get(key) === remembered) this.cache.delete(key);
      throw error;
    }
  }
}

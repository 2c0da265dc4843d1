/**
 * Every failure that reaches the sender has a stable code and one HTTP status, chosen by
 * Knative's retry rule (contract.md §2): the Broker retries 404, 408, 409, 429 and 5xx and
 * treats every other status as final. So a code that must be retried maps to 429/503, and a
 * code that retrying cannot fix maps to a final 4xx, which dead-letters the event.
 */
export const errorStatus = {
  /** The body is neither a CloudEvent nor a Falco payload. */
  DROP_NOT_AN_EVENT: 400,
  /** A CloudEvent that breaks the spec (missing or bad attribute). */
  DROP_INVALID_CLOUDEVENT: 400,
  /** The body or a part of it is not valid JSON where JSON was declared. */
  DROP_INVALID_JSON: 400,
  /** A Falco payload whose fields have the wrong types. */
  DROP_INVALID_ALERT: 400,
  /** Sender authentication is on and the request has no valid token for the audience. */
  DROP_UNAUTHENTICATED: 401,
  /** The token is valid, but its service account is not an allowed sender. */
  DROP_FORBIDDEN: 403,
  /** The body exceeds the 1 MiB limit. */
  DROP_BODY_TOO_LARGE: 413,
  /** Node refused the request before drop saw it: the request line and headers exceed its limit (16 KiB). */
  DROP_HEADERS_TOO_LARGE: 431,
  /** Node refused the request before drop saw it: it is not well-formed HTTP/1.1. */
  DROP_BAD_REQUEST: 400,
  /** Node gave up waiting for the whole request (its request timeout): retry. */
  DROP_REQUEST_TIMEOUT: 408,
  /** The Kubernetes API is unreachable, timed out or answered 5xx: retry. */
  DROP_K8S_UNAVAILABLE: 503,
  /** The Kubernetes API throttled us (429): retry. */
  DROP_K8S_THROTTLED: 429,
  /** The Kubernetes API refused in a way retrying cannot fix (403 RBAC, 422 invalid, 400). */
  DROP_K8S_REJECTED: 422,
  /** The service-wide budget of destructive actions per minute is spent: retry later. */
  DROP_BUDGET_EXCEEDED: 429,
  /** The same event is being responded to by another replica right now: retry for its outcome. */
  DROP_IN_PROGRESS: 503,
  /** An action failed in a way retrying cannot fix; the outcomes say which and why. */
  DROP_ACTION_FAILED: 422,
  /** The service is shutting down and takes no new work: retry elsewhere. */
  DROP_SHUTTING_DOWN: 503,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export interface DropErrorOptions {
  /** Seconds for the Retry-After header; set on every retryable error. */
  readonly retryAfterSeconds?: number;
  /** Extra facts for the log and the JSON error body (never secrets). */
  readonly details?: Record<string, unknown>;
  readonly cause?: unknown;
}

export class DropError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: DropErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = 'DropError';
    this.code = code;
    this.status = errorStatus[code];
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.details = options.details;
  }

  /** True when the Broker will redeliver on this status (contract.md §2). */
  get retryable(): boolean {
    return isRetryableStatus(this.status);
  }

  /** The JSON body sent with the error answer. */
  toBody(): { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

/** Knative's retry rule: 404, 408, 409, 429 and every 5xx are retried; the rest is final. */
export function isRetryableStatus(status: number): boolean {
  return status === 404 || status === 408 || status === 409 || status === 429 || status >= 500;
}

/**
 * What the state store's files share: where the objects live, how they are labelled, and how an
 * API failure becomes the answer the Broker needs.
 *
 * INTERFACE BETWEEN REVISIONS: during a rollout two revisions of drop read and write each
 * other's objects, so the label keys and values below are a stored format. Keep them stable;
 * add, never rename.
 */
import { V1MicroTime, type CoordinationV1Api } from '@kubernetes/client-node';
import type { Clock } from '../guards.ts';
import { DropError } from '../errors.ts';
import { isApiStatus, kubeFailure } from '../kube.ts';

/** Every state object carries this label: drop made it, and only drop writes it. */
export const managedByLabel = { 'app.kubernetes.io/managed-by': 'falco-drop' } as const;
/** Which kind of state an object holds: `claim` or `budget`. */
export const stateLabel = 'falco-drop/state';

export interface StateStoreOptions {
  /** The Leases API (KubeClient.coordination). */
  readonly leases: CoordinationV1Api;
  /** drop's own namespace: every state object lives there and nowhere else. */
  readonly namespace: string;
  /** This replica's identity (its pod name), written as the holder of what it takes. */
  readonly identity: string;
  readonly clock: Clock;
  /** Retry-After for a retryable failure (API down, throttled, a conflict that kept coming). */
  readonly retryAfterSeconds: number;
  /** How many times a lost compare-and-swap is re-read and tried again (default 5). */
  readonly attempts?: number;
}

/** A time as metav1.MicroTime: the client library writes it with six fraction digits. */
export function microTime(ms: number): V1MicroTime {
  return new V1MicroTime(ms);
}

/**
 * A MicroTime or Time as read back: the client library leaves MicroTime fields as the strings it
 * received (it has no decoder for them), whatever the types say. NaN when absent or unreadable.
 */
export function timeMs(value: unknown): number {
  return value === undefined || value === null ? Number.NaN : new Date(value as string).getTime();
}

/** Runs one API call; a failure becomes a DropError (retryable or final), never swallowed. */
export function apiCall<T>(what: string, retryAfterSeconds: number, call: () => Promise<T>): Promise<T> {
  return apiCallOr<T, never>(what, retryAfterSeconds, [], call);
}

/** Runs one API call whose 404 and/or 409 the caller handles: those come back as the status code. */
export async function apiCallOr<T, C extends 404 | 409>(what: string, retryAfterSeconds: number, handled: readonly C[], call: () => Promise<T>): Promise<T | C> {
  try {
    return await call();
  } catch (error) {
    for (const code of handled) if (isApiStatus(error, code)) return code;
    throw kubeFailure(error, what, retryAfterSeconds);
  }
}

/** A compare-and-swap lost more times than the store tries: retry later, nothing is lost. */
export function contended(what: string, attempts: number, retryAfterSeconds: number): DropError {
  return new DropError('DROP_K8S_UNAVAILABLE', `${what}: another replica changed it ${attempts} times in a row; try again`, {
    retryAfterSeconds,
    details: { conflicts: attempts },
  });
}

/**
 * Runs `sweep` every `everyMs` plus up to 50 % jitter (so replicas spread out) until the
 * returned function stops it; what it deleted is logged at info, a failure at warn, and the
 * next sweep comes all the same.
 */
export function scheduleSweep(
  sweep: () => Promise<number>,
  log: { info(fields: object, msg: string): void; warn(fields: object, msg: string): void },
  messages: { readonly deleted: (count: number) => string; readonly failed: string },
  everyMs: number,
  random: () => number,
): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const next = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      sweep()
        .then(
          (deleted) => {
            if (deleted > 0) log.info({ deleted }, messages.deleted(deleted));
          },
          (error: unknown) => log.warn({ err: error }, messages.failed),
        )
        .finally(next);
    }, everyMs + Math.floor(random() * everyMs * 0.5));
    timer.unref();
  };
  next();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** What a claim and a capture both say they are about: the response rule, the pod and the event. */
export const subjectAnnotations = {
  rule: 'falco-drop/rule',
  podNamespace: 'falco-drop/pod-namespace',
  podName: 'falco-drop/pod-name',
  podUid: 'falco-drop/pod-uid',
  eventSource: 'falco-drop/event-source',
  eventId: 'falco-drop/event-id',
} as const;

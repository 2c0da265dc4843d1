/**
 * Evidence: what `capture` (src/actions/capture.ts) collected before the actions after it
 * destroyed it, kept in drop's own namespace so that a reply event that is lost, or a redelivery
 * answered later from a claim's record, still leads to it.
 *
 * INTERFACE BETWEEN REVISIONS (keep every name and format below stable, add and never rename):
 * - a v1 Secret (logs may hold secrets) in drop's own namespace, named
 *   `drop-capture-<first 40 hex digits of sha256(event source + "\0" + event id + "\0" + rule)>`,
 *   so every delivery of one event, at any replica, names the same one;
 * - labels `app.kubernetes.io/managed-by: falco-drop` and `falco-drop/state: capture`;
 * - annotations `falco-drop/rule`, `falco-drop/pod-namespace`, `falco-drop/pod-name`,
 *   `falco-drop/pod-uid`, `falco-drop/event-source`, `falco-drop/event-id`,
 *   `falco-drop/captured-at` (RFC 3339, UTC);
 * - data `capture.json` (what was captured, and how much of each log), `pod.json` (the pod's
 *   manifest) and `<container>.log` (the tail of each container's log).
 * At most `max` (100) are kept, the oldest deleted first, and none past `ttlSeconds` (24 h).
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { setHeaderOptions, type CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import type { Clock } from '../guards.ts';
import { claimEventRef } from '../safety.ts';
import type { EventRef } from './claims.ts';
import { apiCall, apiCallOr, managedByLabel, scheduleSweep, stateLabel, subjectAnnotations } from './common.ts';

export const capturePrefix = 'drop-capture-';
export const captureAnnotations = {
  ...subjectAnnotations,
  capturedAt: 'falco-drop/captured-at',
} as const;

/** The most captures kept; past it the oldest are deleted. */
export const defaultMaxCaptures = 100;
/** How long a capture is kept: 24 hours, time enough for an operator or a sink to take it. */
export const defaultCaptureTtlSeconds = 24 * 60 * 60;

/** The capture's Secret name for an event and the response rule that captured. */
export function captureName(event: EventRef, rule: string): string {
  return capturePrefix + createHash('sha256').update(`${event.source}\u0000${event.id}\u0000${rule}`).digest('hex').slice(0, 40);
}

/** The pod a capture is about. */
export interface CapturedPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

/** One container's log as captured. */
export interface ContainerLog {
  readonly container: string;
  readonly type: 'container' | 'initContainer' | 'ephemeralContainer';
  /** The tail of the log, as text (bytes that are no UTF-8 read as U+FFFD). */
  readonly log: string;
  /** Its length in UTF-8 bytes. */
  readonly bytes: number;
  /** True when older lines were left out (the log is longer than what was kept). */
  readonly truncated: boolean;
  /** Why there is no log, or not all of it (the container has not started, the limits). */
  readonly note?: string;
}

/** What `capture` collected about a pod: what a reply event carries and a Secret keeps. */
export interface PodCapture {
  readonly pod: CapturedPod;
  readonly capturedAt: string;
  /** `namespace/name` of the Secret that keeps it; null when it is not kept (dry run, no store). */
  readonly secret: string | null;
  /** The pod as read just before, without managedFields. */
  readonly manifest: Readonly<Record<string, unknown>>;
  readonly logs: readonly ContainerLog[];
}

export interface EvidenceStoreOptions {
  /** The core API (KubeClient.core): Secrets. */
  readonly core: CoreV1Api;
  /** drop's own namespace. */
  readonly namespace: string;
  readonly clock: Clock;
  readonly retryAfterSeconds: number;
  readonly max?: number;
  readonly ttlSeconds?: number;
}

/** A list of Secrets' metadata only: the API server leaves their data out (kubectl asks the same way). */
const metadataOnly = setHeaderOptions('Accept', 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1');

export class EvidenceStore {
  readonly namespace: string;
  readonly max: number;
  readonly ttlSeconds: number;
  constructor(private readonly options: EvidenceStoreOptions) {
    this.namespace = options.namespace;
    this.max = options.max ?? defaultMaxCaptures;
    this.ttlSeconds = options.ttlSeconds ?? defaultCaptureTtlSeconds;
  }

  /**
   * Keeps a capture under `name`: `created`, or `kept` when a Secret of that name exists already
   * (an earlier delivery of the same event captured first, before anything was destroyed: that
   * one stays).
   */
  async keep(name: string, capture: PodCapture, about: { readonly rule: string; readonly event: EventRef }): Promise<'created' | 'kept'> {
    const { core, namespace, retryAfterSeconds } = this.options;
    const a = captureAnnotations;
    const event = claimEventRef(about.event);
    const files: Record<string, string> = {
      'capture.json': JSON.stringify({ pod: capture.pod, capturedAt: capture.capturedAt, rule: about.rule, logs: capture.logs.map(({ log: _log, ...rest }) => rest) }),
      'pod.json': JSON.stringify(capture.manifest),
      ...Object.fromEntries(capture.logs.map((l) => [`${l.container}.log`, l.log])),
    };
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name,
        namespace,
        labels: { ...managedByLabel, [stateLabel]: 'capture' },
        annotations: {
          [a.rule]: about.rule,
          [a.podNamespace]: capture.pod.namespace,
          [a.podName]: capture.pod.name,
          [a.podUid]: capture.pod.uid,
          [a.eventSource]: event.source,
          [a.eventId]: event.id,
          [a.capturedAt]: capture.capturedAt,
        },
      },
      data: Object.fromEntries(Object.entries(files).map(([key, text]) => [key, Buffer.from(text, 'utf8').toString('base64')])),
    };
    const created = await apiCallOr(`keep the capture in Secret ${namespace}/${name}`, retryAfterSeconds, [409], () => core.createNamespacedSecret({ namespace, body }));
    return created === 409 ? 'kept' : 'created';
  }

  /**
   * Deletes the captures past their time and the oldest past `max - room` (room for captures
   * about to be made). Each delete names the UID listed; one already gone is not counted.
   * Returns how many were deleted.
   */
  async sweep(room = 0): Promise<number> {
    const { core, namespace, retryAfterSeconds } = this.options;
    const selector = `app.kubernetes.io/managed-by=${managedByLabel['app.kubernetes.io/managed-by']},${stateLabel}=capture`;
    const list = await apiCall(`list the captures in ${namespace}`, retryAfterSeconds, () => core.listNamespacedSecret({ namespace, labelSelector: selector }, metadataOnly));
    // The API server stamps every object with its creation time (whole seconds) and a name.
    const born = (s: V1Secret): number => new Date(s.metadata?.creationTimestamp as Date).getTime();
    const oldestFirst = [...list.items].sort((x, y) => born(x) - born(y) || (x.metadata?.name as string).localeCompare(y.metadata?.name as string));
    const expiredBefore = this.options.clock.now().getTime() - this.ttlSeconds * 1000;
    const excess = Math.max(0, oldestFirst.length - Math.max(0, this.max - room));
    const doomed = oldestFirst.filter((s, i) => i < excess || born(s) < expiredBefore);
    let deleted = 0;
    for (const secret of doomed) {
      const name = secret.metadata?.name as string;
      const answer = await apiCallOr(`delete capture ${namespace}/${name}`, retryAfterSeconds, [404, 409], () =>
        core.deleteNamespacedSecret({ name, namespace, body: { preconditions: { uid: secret.metadata?.uid } } }),
      );
      if (answer !== 404 && answer !== 409) deleted++;
    }
    return deleted;
  }
}

/** How often each replica sweeps the captures (with up to 50 % jitter), besides at each capture. */
export const evidenceSweepIntervalMs = 10 * 60_000;

/**
 * Sweeps the captures every `everyMs` (plus jitter) until stopped, so that they expire on time
 * even when no capture comes to sweep them; a sweep that fails is logged and tried again later.
 */
export function scheduleEvidenceSweeps(store: EvidenceStore, log: Pick<Logger, 'info' | 'warn'>, everyMs = evidenceSweepIntervalMs, random = Math.random): () => void {
  return scheduleSweep(() => store.sweep(), log, { deleted: (n) => `deleted ${n} captures past their time or their number`, failed: 'could not delete the old captures; trying again later' }, everyMs, random);
}

/**
 * Claims: one response per (response rule, pod) per cooldown, across replicas, restarts and
 * revisions. Creating the claim is the claim: the API server lets one create of a name succeed
 * and answers every other 409 AlreadyExists; a takeover is an update with the resourceVersion
 * read, which the server lets one replica win (409 Conflict for the rest).
 *
 * INTERFACE BETWEEN REVISIONS (two revisions read each other's claims during a rollout; keep
 * every name and format below stable, add and never rename):
 * - a coordination.k8s.io/v1 Lease in drop's own namespace, named
 *   `drop-claim-<first 40 hex digits of sha256(rule + "\0" + pod UID)>`;
 * - labels `app.kubernetes.io/managed-by: falco-drop` and `falco-drop/state: claim`;
 * - annotations `falco-drop/rule`, `falco-drop/pod-namespace`, `falco-drop/pod-name`,
 *   `falco-drop/pod-uid`, `falco-drop/event-source`, `falco-drop/event-id` (the CloudEvent that
 *   caused the claim), `falco-drop/working-until` (RFC 3339 with milliseconds, UTC: until when
 *   the holder is acting; past it with no outcome, another replica resumes the response) and,
 *   once the response is done, `falco-drop/outcome` (compact JSON, at most 4096 bytes);
 * - spec.holderIdentity (the replica that holds it), spec.acquireTime = spec.renewTime (when it
 *   was claimed, MicroTime), spec.leaseDurationSeconds (the cooldown), spec.leaseTransitions
 *   (how many times it was taken over). It is expired from renewTime + leaseDurationSeconds on.
 */
import { createHash } from 'node:crypto';
import type { V1Lease } from '@kubernetes/client-node';
import { apiCall, apiCallOr, contended, managedByLabel, microTime, stateLabel, subjectAnnotations, timeMs, type StateStoreOptions } from './common.ts';

export const claimPrefix = 'drop-claim-';
export const claimAnnotations = {
  ...subjectAnnotations,
  workingUntil: 'falco-drop/working-until',
  outcome: 'falco-drop/outcome',
} as const;
/** The largest outcome a claim records (its JSON, in bytes). */
export const maxOutcomeBytes = 4096;

export interface ClaimedPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

/** The CloudEvent a claim was made for (`source` + `id` name one event). */
export interface EventRef {
  readonly source: string;
  readonly id: string;
}

export interface ClaimRequest {
  readonly rule: string;
  readonly pod: ClaimedPod;
  readonly event: EventRef;
  /** The rule's cooldown: the claim holds that long (at least one second: a Lease's minimum). */
  readonly cooldownSeconds: number;
}

/** A claim this replica holds: what record() and release() need. */
export interface Claim {
  readonly name: string;
  readonly request: ClaimRequest;
  /** The Lease as the API server stored it (its resourceVersion is what this replica holds). */
  readonly lease: V1Lease;
}

/** What another replica's (or an earlier) claim says, for a claim that was not won. */
export interface ClaimRecord {
  /** True when the claim was made for the same CloudEvent (a redelivery or a copy). */
  readonly sameEvent: boolean;
  readonly event: EventRef;
  readonly holder: string;
  readonly claimedAt: Date;
  readonly expiresAt: Date;
  /** The outcome the holder recorded; absent while the response is in progress. */
  readonly outcome?: unknown;
  /** While in progress: until when the holder is acting. */
  readonly workingUntil?: Date;
}

export type ClaimResult =
  /**
   * Won: this replica acts. `resumed` when it took over a claim whose holder recorded no outcome
   * (it crashed or stalled; it may have acted in part, so actions must be safe to repeat);
   * `previous` is that claim.
   */
  | { readonly won: true; readonly claim: Claim; readonly resumed: boolean; readonly previous?: ClaimRecord }
  | { readonly won: false; readonly record: ClaimRecord };

export type RecordResult = { readonly recorded: true; readonly claim: Claim } | { readonly recorded: false; readonly reason: string };

export interface ClaimStoreOptions extends StateStoreOptions {
  /** How long a holder may act before another replica resumes its response (default 30 s). */
  readonly workingSeconds?: number;
  /**
   * How long after it was made a claim is kept, even once its cooldown is over (default 0): the
   * alert age limit, so a late copy of its event still finds it and is answered from it.
   */
  readonly retainSeconds?: number;
}

/** The claim's Lease name for a (rule, pod UID): fixed length, a valid name whatever the rule. */
export function claimName(rule: string, podUid: string): string {
  return claimPrefix + createHash('sha256').update(`${rule}\u0000${podUid}`).digest('hex').slice(0, 40);
}

export class ClaimStore {
  private readonly attempts: number;
  private readonly workingMs: number;
  private readonly retainMs: number;
  constructor(private readonly options: ClaimStoreOptions) {
    this.attempts = options.attempts ?? 5;
    this.workingMs = (options.workingSeconds ?? 30) * 1000;
    this.retainMs = (options.retainSeconds ?? 0) * 1000;
  }

  /** Claims the (rule, pod) for this event, or tells what the claim that holds it says. */
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const { namespace, retryAfterSeconds, leases } = this.options;
    const name = claimName(request.rule, request.pod.uid);
    const what = `claim ${request.rule} for pod ${request.pod.namespace}/${request.pod.name} (Lease ${namespace}/${name})`;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      const now = this.options.clock.now().getTime();
      const created = await apiCallOr(what, retryAfterSeconds, [409], () => leases.createNamespacedLease({ namespace, body: this.build(name, request, now) }));
      if (created !== 409) return { won: true, claim: { name, request, lease: created }, resumed: false };
      const current = await apiCallOr(what, retryAfterSeconds, [404], () => leases.readNamespacedLease({ name, namespace }));
      if (current === 404) continue; // deleted since: create again
      const record = describe(current, request.event);
      // A claim answers for its own event for as long as it exists, past its cooldown too: a
      // copy of an answered event is never a new response (the sweep keeps claims until the
      // alert would be too old to act on anyway, `retainSeconds`).
      if (record.sameEvent && record.outcome !== undefined) return { won: false, record };
      const stalled = record.outcome === undefined && !(now < (record.workingUntil as Date).getTime());
      if (now < record.expiresAt.getTime() && !stalled) return { won: false, record };
      const body = this.build(name, request, now, current);
      const replaced = await apiCallOr(what, retryAfterSeconds, [409], () => leases.replaceNamespacedLease({ name, namespace, body }));
      if (replaced === 409) continue; // another replica took it over first: read again
      return { won: true, claim: { name, request, lease: replaced }, resumed: record.outcome === undefined, previous: record };
    }
    throw contended(what, this.attempts, retryAfterSeconds);
  }

  /**
   * Records the outcome on the claim (an update with the resourceVersion held). When another
   * replica took the claim over meanwhile, nothing is written and the answer says so.
   */
  async record(claim: Claim, outcome: unknown): Promise<RecordResult> {
    const text = JSON.stringify(outcome);
    if (text === undefined || Buffer.byteLength(text) > maxOutcomeBytes) {
      throw new RangeError(`an outcome is JSON of at most ${maxOutcomeBytes} bytes; got ${text === undefined ? 'no JSON' : `${Buffer.byteLength(text)} bytes`}`);
    }
    const { namespace, retryAfterSeconds, leases } = this.options;
    const { metadata } = claim.lease;
    const body: V1Lease = { ...claim.lease, metadata: { ...metadata, annotations: { ...metadata?.annotations, [claimAnnotations.outcome]: text } } };
    const what = `record the outcome of claim ${namespace}/${claim.name}`;
    const replaced = await apiCallOr(what, retryAfterSeconds, [409], () => leases.replaceNamespacedLease({ name: claim.name, namespace, body }));
    if (replaced === 409) return { recorded: false, reason: 'another replica took the claim over (it changed since this replica claimed it)' };
    return { recorded: true, claim: { ...claim, lease: replaced } };
  }

  /**
   * Gives the claim up after a failure the Broker will retry, so the retry can claim it again.
   * Only the version this replica holds is deleted: false when it was taken over or is gone.
   */
  async release(claim: Claim): Promise<boolean> {
    const { namespace, retryAfterSeconds, leases } = this.options;
    const preconditions = { resourceVersion: claim.lease.metadata?.resourceVersion, uid: claim.lease.metadata?.uid };
    const what = `release claim ${namespace}/${claim.name}`;
    const deleted = await apiCallOr(what, retryAfterSeconds, [404, 409], () => leases.deleteNamespacedLease({ name: claim.name, namespace, body: { preconditions } }));
    return deleted !== 404 && deleted !== 409;
  }

  /**
   * Deletes the expired claims (past their cooldown and `retainSeconds`), so their number stays
   * bounded by the pods acted on in that time. Each delete names the version read: a claim
   * renewed meanwhile stays. Returns how many were deleted.
   */
  async sweep(now: Date): Promise<number> {
    const { namespace, retryAfterSeconds, leases } = this.options;
    const selector = `app.kubernetes.io/managed-by=${managedByLabel['app.kubernetes.io/managed-by']},${stateLabel}=claim`;
    const list = await apiCall(`list the claims in ${namespace}`, retryAfterSeconds, () => leases.listNamespacedLease({ namespace, labelSelector: selector }));
    let deleted = 0;
    for (const lease of list.items) {
      const name = lease.metadata?.name as string;
      if (now.getTime() < Math.max(expiry(lease), timeMs(lease.spec?.renewTime) + this.retainMs)) continue;
      const preconditions = { resourceVersion: lease.metadata?.resourceVersion, uid: lease.metadata?.uid };
      const answer = await apiCallOr(`delete expired claim ${namespace}/${name}`, retryAfterSeconds, [404, 409], () =>
        leases.deleteNamespacedLease({ name, namespace, body: { preconditions } }),
      );
      if (answer !== 404 && answer !== 409) deleted++;
    }
    return deleted;
  }

  private build(name: string, request: ClaimRequest, now: number, previous?: V1Lease): V1Lease {
    const a = claimAnnotations;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name,
        namespace: this.options.namespace,
        labels: { ...managedByLabel, [stateLabel]: 'claim' },
        annotations: {
          [a.rule]: request.rule,
          [a.podNamespace]: request.pod.namespace,
          [a.podName]: request.pod.name,
          [a.podUid]: request.pod.uid,
          [a.eventSource]: request.event.source,
          [a.eventId]: request.event.id,
          [a.workingUntil]: new Date(now + this.workingMs).toISOString(),
        },
        ...(previous ? { resourceVersion: previous.metadata?.resourceVersion } : {}),
      },
      spec: {
        holderIdentity: this.options.identity,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseDurationSeconds: Math.max(1, Math.ceil(request.cooldownSeconds)),
        leaseTransitions: previous ? (previous.spec?.leaseTransitions ?? 0) + 1 : 0,
      },
    };
  }
}

/** Until when the holder of `claim` may act (ms): its working time. */
export function workingUntil(claim: Claim): number {
  return timeMs(claim.lease.metadata?.annotations?.[claimAnnotations.workingUntil]);
}

/** When a claim expires (ms); NaN, read as expired, for a Lease without its times. */
function expiry(lease: V1Lease): number {
  return timeMs(lease.spec?.renewTime) + (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
}

/** What a claim's Lease says, as the loser of a claim reads it. Missing fields read as empty. */
function describe(lease: V1Lease, event: EventRef): ClaimRecord {
  const a = lease.metadata?.annotations ?? {};
  const recorded = a[claimAnnotations.outcome];
  const claimed: EventRef = { source: a[claimAnnotations.eventSource] ?? '', id: a[claimAnnotations.eventId] ?? '' };
  const base = {
    sameEvent: claimed.source === event.source && claimed.id === event.id,
    event: claimed,
    holder: lease.spec?.holderIdentity ?? '',
    claimedAt: new Date(timeMs(lease.spec?.renewTime)),
    expiresAt: new Date(expiry(lease)),
  };
  if (recorded === undefined) return { ...base, workingUntil: new Date(timeMs(a[claimAnnotations.workingUntil])) };
  return { ...base, outcome: parseOutcome(recorded) };
}

/** The recorded outcome; an unreadable one is handed back as its text (still: it was done). */
function parseOutcome(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { unreadable: text };
  }
}

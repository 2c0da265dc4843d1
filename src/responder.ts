import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { ActionOutcome } from './actions/action.ts';
import type { Guard } from './decisions.ts';
import { recordEvent } from './actions/events.ts';
import { actionModules } from './actions/index.ts';
import { DropError } from './errors.ts';
import { checkAlertTime, type FalcoAlert } from './falco.ts';
import { isApiStatus, kubeFailure, type KubeClient } from './kube.ts';
import { selectRules, type Policy, type ResponseRule } from './policy.ts';
import { selectTarget, type PodTarget } from './target.ts';
import { optOutKey, optedOut, type Clock } from './guards.ts';
import type { RecordedOutcome, RuleClaim, SafetyState } from './safety.ts';
import type { Background } from './background.ts';
import { clipText } from './clip.ts';
import type { BudgetAnswer } from './state/budget.ts';
import type { ClaimedPod, EventRef } from './state/claims.ts';
import type { EvidenceStore } from './state/evidence.ts';

export interface ResponderOptions {
  readonly policy: Policy;
  /** Undefined when no cluster is configured (dry-run without reads). */
  readonly kube: KubeClient | undefined;
  /** Global dry-run: decide and report, mutate nothing. */
  readonly dryRun: boolean;
  readonly protectedNamespaces: ReadonlySet<string>;
  readonly gracePeriodSeconds: number;
  readonly retryAfterSeconds: number;
  readonly clock: Clock;
  /**
   * The claims per (rule, pod) that carry the cooldowns, and the destructive budget: in the
   * cluster's API when acting (shared by every replica), in memory under the global dry-run.
   */
  readonly safety: SafetyState;
  /** Where `capture` keeps what it collected (Secrets in drop's namespace); none: only the reply carries it. */
  readonly evidence?: EvidenceStore;
  /**
   * Where what follows the answer runs: the outcome records on the claims and the Events. The
   * app's close waits for it.
   */
  readonly background: Background;
}

interface ResponseCommon {
  readonly reason: string;
  /** Names of the response rules that matched. */
  readonly rules: readonly string[];
  readonly dryRun: boolean;
}

/** Nothing to do (no rule, no pod, protected, not the same pod …), with the reason. */
export interface SkipResponse extends ResponseCommon {
  readonly decision: 'skip';
  /** The guard rail that stopped it. */
  readonly guard: Guard;
  readonly target: PodTarget | undefined;
}

/** At least one action ran (or would have, in dry-run). */
export interface ActResponse extends ResponseCommon {
  readonly decision: 'act';
  readonly target: PodTarget;
  /** UID of the pod acted on, as read from the API (the alert's when there is no cluster). */
  readonly podUid: string | undefined;
  readonly outcomes: readonly ActionOutcome[];
  /**
   * Response rules answered from their claim's record rather than acted on here: the same event
   * was responded to already, by this replica or another (`holder`).
   */
  readonly recorded: readonly { readonly rule: string; readonly holder: string }[];
  /** done, dry-run, failed (an action failed for good), or skipped (every action skipped). */
  readonly result: 'done' | 'dry-run' | 'failed' | 'skipped';
}

/** What the service decided about one alert and what came of it. */
export type Response = SkipResponse | ActResponse;

function skip(guard: Guard, reason: string, target: PodTarget | undefined, rules: readonly ResponseRule[], dryRun: boolean): SkipResponse {
  return { decision: 'skip', guard, reason, target, rules: rules.map((r) => r.name), dryRun };
}

/** The runtime ids of a pod's containers, without the `containerd://` prefix. */
function containerIds(pod: V1Pod): string[] {
  const status = pod.status;
  const all = [...(status?.containerStatuses ?? []), ...(status?.initContainerStatuses ?? []), ...(status?.ephemeralContainerStatuses ?? [])];
  return all.flatMap((c) => (c.containerID ? [c.containerID.replace(/^[a-z0-9-]+:\/\//, '').toLowerCase()] : []));
}

/** Why this pod is not the one that raised the alert, or undefined when it is. */
export function identityMismatch(target: PodTarget, pod: V1Pod): string | undefined {
  const uid = pod.metadata?.uid;
  if (target.uid && uid !== target.uid) return `pod ${target.namespace}/${target.name} has UID ${uid}, the alert came from UID ${target.uid}`;
  if (target.containerId) {
    const id = target.containerId;
    if (!containerIds(pod).some((c) => c.startsWith(id))) {
      return `pod ${target.namespace}/${target.name} has no container ${id}: the alert came from another pod of that name`;
    }
  }
  return undefined;
}

async function readPod(kube: KubeClient, target: PodTarget, retryAfterSeconds: number): Promise<V1Pod | undefined> {
  try {
    return await kube.core.readNamespacedPod({ namespace: target.namespace, name: target.name });
  } catch (error) {
    if (isApiStatus(error, 404)) return undefined;
    throw kubeFailure(error, `read pod ${target.namespace}/${target.name}`, retryAfterSeconds);
  }
}

/** The namespace's labels and annotations (for the opt-out), or undefined when it is gone. */
async function readNamespace(kube: KubeClient, name: string, retryAfterSeconds: number): Promise<V1Namespace | undefined> {
  try {
    return await kube.core.readNamespace({ name });
  } catch (error) {
    if (isApiStatus(error, 404)) return undefined;
    throw kubeFailure(error, `read namespace ${name}`, retryAfterSeconds);
  }
}

function resultOf(outcomes: readonly ActionOutcome[]): ActResponse['result'] {
  if (outcomes.some((o) => o.status === 'failed')) return 'failed';
  if (outcomes.some((o) => o.status === 'done')) return 'done';
  if (outcomes.some((o) => o.status === 'dry-run')) return 'dry-run';
  return 'skipped';
}

/**
 * How much later than the alert a pod may have been created and still be the one that raised
 * it: `creationTimestamp` is cut to whole seconds (up to 1 s early), and it is the API server's
 * clock while the alert's time is the node's (NTP keeps them within a second or two). 5 s
 * covers both; a pod created later than that came after the alert, a replacement with the name.
 */
export const creationSkewSeconds = 5;

/** Why this pod was created too late to have raised an alert at `alertMs`, or undefined. */
function createdAfter(target: PodTarget, pod: V1Pod, alertMs: number): string | undefined {
  const created = pod.metadata?.creationTimestamp;
  // The client turns the timestamp into a Date; a pod without one cannot be judged by it.
  if (created === undefined) return undefined;
  const createdMs = new Date(created).getTime();
  // Written so that a timestamp that does not parse (NaN) is not judged either.
  if (!(createdMs > alertMs + creationSkewSeconds * 1000)) return undefined;
  return `pod ${target.namespace}/${target.name} was created at ${new Date(createdMs).toISOString()}, after the alert (${new Date(alertMs).toISOString()}): it cannot have raised it`;
}

/**
 * Checks on the live pod: still there, the same pod, not opted out, nor its namespace. A reason
 * to skip (with its guard), or the pod. Both are read at once (the namespace's read does not
 * depend on the pod); the reasons keep their order: whatever the pod's read says comes first,
 * its failure included, and the namespace's read, failure or not, counts only once the pod has
 * passed.
 */
async function checkPod(options: ResponderOptions, kube: KubeClient, target: PodTarget, alertMs: number): Promise<V1Pod | { guard: Guard; reason: string }> {
  const namespaceRead = readNamespace(kube, target.namespace, options.retryAfterSeconds);
  // Not waited for when the pod decides: its failure then is no one's.
  namespaceRead.catch(() => undefined);
  const pod = await readPod(kube, target, options.retryAfterSeconds);
  if (!pod) return { guard: 'gone', reason: `pod ${target.namespace}/${target.name} is already gone` };
  const mismatch = identityMismatch(target, pod) ?? createdAfter(target, pod, alertMs);
  if (mismatch) return { guard: 'not-same-pod', reason: mismatch };
  if (optedOut(pod.metadata?.labels, pod.metadata?.annotations)) return { guard: 'opted-out', reason: `pod ${target.namespace}/${target.name} opted out (${optOutKey}: "true")` };
  const namespace = await namespaceRead;
  if (!namespace) return { guard: 'gone', reason: `namespace ${target.namespace} is gone` };
  if (optedOut(namespace.metadata?.labels, namespace.metadata?.annotations)) return { guard: 'opted-out', reason: `namespace ${target.namespace} opted out (${optOutKey}: "true")` };
  return pod;
}

/**
 * Decides what to do about one alert and does it. First the alert's time: none at all, or
 * further ahead of the clock than skew explains, makes the alert invalid (thrown, a final 400).
 * Then the order, each step able to end it with a reason: matching response rules (file order);
 * the target pod; the protected namespaces; the alert's age; the live pod (gone, not the same
 * pod, created after the alert, opted out, its namespace opted out); each rule's claim on this
 * pod (src/safety.ts: won, act; the same event already answered, its record; the same event in
 * progress elsewhere, 503; another event, the cooldown); the destructive budget (429, retried);
 * then each won rule's actions in order, its outcome recorded on its claim. Outcomes are
 * values; only a failure the Broker should retry is thrown.
 */
export async function respond(options: ResponderOptions, alert: FalcoAlert, delivery: { readonly time?: string; readonly event: EventRef }): Promise<Response> {
  const eventTime = delivery.time;
  const event = delivery.event;
  const time = checkAlertTime(alert, eventTime, options.clock.now());
  if (typeof time === 'string') throw new DropError('DROP_INVALID_ALERT', `the Falco payload is invalid: ${time}`);
  const selection = selectTarget(alert);
  const rules = selectRules(options.policy, alert, selection.target?.namespace);
  const dryRun = options.dryRun || (rules.length > 0 && rules.every((r) => r.dryRun));
  if (rules.length === 0) return skip('no-rule', `no response rule matches rule "${alert.rule}" at priority ${alert.priority}`, selection.target, rules, dryRun);
  if (!selection.target) return skip('no-target', selection.reason, undefined, rules, dryRun);
  const target = selection.target;
  if (options.protectedNamespaces.has(target.namespace)) return skip('protected', `namespace ${target.namespace} is protected`, target, rules, dryRun);
  const { maxAlertAgeSeconds } = options.policy.guards;
  const age = (options.clock.now().getTime() - time) / 1000;
  if (age > maxAlertAgeSeconds) {
    return skip('too-old', `the alert is ${Math.round(age)} s old, older than ${maxAlertAgeSeconds} s: too late to act on`, target, rules, dryRun);
  }

  let pod: V1Pod | undefined;
  if (options.kube) {
    const checked = await checkPod(options, options.kube, target, time);
    if ('guard' in checked) return skip(checked.guard, checked.reason, target, rules, dryRun);
    pod = checked;
  }

  // The claims are keyed by the UID read from the API: a replacement pod with the same name is
  // another pod. Without a cluster (dry-run), by the alert's UID, else its namespace and name.
  const claimed = { namespace: target.namespace, name: target.name, uid: pod?.metadata?.uid ?? target.uid ?? `${target.namespace}/${target.name}` };
  // The budget is taken while the rules are claimed, for the destructive actions of the rules
  // that may be won (not those known to be cooling): one round trip instead of two before the
  // first action. What the claims do not need is given back after the answer.
  const wanted = destructiveCount(options, rules.filter((r) => !options.safety.expectsLoss(r, claimed, event)));
  const early = wanted > 0 ? settle(options.safety.take(wanted)) : undefined;
  const giveBackEarly = () => {
    if (early) options.background.run(async () => giveBackAll(await early, wanted));
  };
  let claims: RuleClaim[];
  try {
    claims = await claimRules(options, rules, claimed, event);
  } catch (error) {
    giveBackEarly();
    throw error;
  }
  const won = claims.filter((c) => c.state === 'won');
  const done = claims.filter((c) => c.state === 'done');
  if (won.length === 0 && done.length === 0) {
    giveBackEarly();
    // Every claim is cooling here: a busy one was answered 503 in claimRules.
    const waits = claims.map((c) => `${c.rule.name} ${(c as Extract<RuleClaim, { state: 'cooling' }>).remainingSeconds} s`).join(', ');
    return skip('cooldown', `cooldown: already responded to pod ${target.namespace}/${target.name} (${waits} left)`, target, rules, dryRun);
  }
  const destructive = destructiveCount(options, won.map((c) => c.rule));
  const granted = await takeBudget(options, destructive, won, early && { answer: await early, count: wanted });
  if (!granted.ok) {
    throw new DropError('DROP_BUDGET_EXCEEDED', `the budget of ${options.policy.guards.destructivePerMinute} destructive actions per minute is spent; retry later`, {
      retryAfterSeconds: granted.retryAfterSeconds,
      details: { target: `${target.namespace}/${target.name}`, rules: won.map((c) => c.rule.name) },
    });
  }

  // The claims hold from before the first action: alerts about this pod that arrive while these
  // actions run are skipped (cooldown) or, for this same event, told to retry for the outcome.
  // Each rule's outcome is recorded on its claim once its actions end, after the answer (the
  // Broker's retry of this event meanwhile is told it is in progress, then answered from the
  // record); a rule whose actions end in a retryable failure gets its claim released, so the
  // Broker's retry can act; and the budget gets back the slots of the destructive actions that
  // did not happen, so that redeliveries of one alert the API keeps failing do not spend it for
  // every other alert.
  const outcomes: ActionOutcome[] = [];
  const byRule = new Map<string, readonly ActionOutcome[]>();
  const records: Promise<void>[] = [];
  const about = { target, pod, alert, event };
  let current = 0;
  try {
    for (; current < won.length; current++) {
      const claim = won[current]!;
      const from = outcomes.length;
      await runRule(options, claim.rule, about, outcomes);
      byRule.set(claim.rule.name, outcomes.slice(from));
      records.push(recordLater(options, claim, { outcomes: outcomes.slice(from) }, about));
    }
  } catch (error) {
    // A failure is answered once the rules done so far are recorded, so the Broker's retry
    // finds their records rather than their claims still in progress.
    await Promise.all([...records, release(won.slice(current))]);
    const spent = outcomes.filter((o) => o.status === 'done' && actionModules.get(o.action)!.destructive).length;
    await granted.giveBack(destructive - spent).catch(() => undefined);
    throw error;
  }
  for (const c of done) byRule.set(c.rule.name, c.outcome.outcomes);
  // In the policy's order, whichever replica did them.
  const acted = claims.filter((c) => c.state === 'won' || c.state === 'done');
  const all = acted.flatMap((c) => byRule.get(c.rule.name)!);
  const result = resultOf(all);
  const reason = all.map((o) => o.reason).join('; ');
  const recorded = done.map((c) => ({ rule: c.rule.name, holder: c.holder }));
  const rulesActed = acted.map((c) => c.rule.name);
  return { decision: 'act', reason, target, podUid: pod?.metadata?.uid ?? target.uid, rules: rulesActed, dryRun, outcomes: all, recorded, result };
}

/** The destructive actions these rules would run (none for a rule, or a service, in dry-run). */
function destructiveCount(options: ResponderOptions, rules: readonly ResponseRule[]): number {
  return rules
    .filter((r) => !(options.dryRun || r.dryRun))
    .reduce((n, r) => n + r.actions.filter((step) => actionModules.get(step.action)!.destructive).length, 0);
}

type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** The promise's outcome as a value: waited for later, or not at all, without an unhandled rejection. */
function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** Gives back every slot of a budget answer taken early and not used (a refusal holds none). */
async function giveBackAll(early: Settled<BudgetAnswer>, count: number): Promise<void> {
  if (early.ok && early.value.ok) await early.value.giveBack(count).catch(() => undefined);
}

/**
 * Records the rule's outcome on its claim after the answer: the background task the app's close
 * waits for. What could not be recorded is logged: the cooldown holds, but once the claim's
 * working time is over another replica may resume this event's response.
 */
function recordLater(options: ResponderOptions, claim: Extract<RuleClaim, { state: 'won' }>, outcome: RecordedOutcome, about: About): Promise<void> {
  const { background } = options;
  return new Promise((resolve) => {
    background.run(async () => {
      const problem = await claim.finish(outcome, background.signal);
      if (problem) {
        background.log.warn(
          { ...aboutFields(about), rule: claim.rule.name, stateErrors: [clipText(`${claim.rule.name}: ${problem}`)] },
          "could not record the outcome on its claim: the cooldown holds, but a copy of this event at another replica may act again once the claim's working time is over",
        );
      }
      resolve();
    });
  });
}

/** What a response is about, as its background work's log lines name it. */
interface About {
  readonly target: PodTarget;
  readonly pod: V1Pod | undefined;
  readonly alert: FalcoAlert;
  readonly event: EventRef;
}

function aboutFields(about: About): Record<string, unknown> {
  return { ce: { id: clipText(about.event.id), source: clipText(about.event.source) }, target: `${about.target.namespace}/${about.target.name}` };
}

/**
 * Claims each matching rule for this pod and event, in the policy's order. When the same event
 * is being responded to elsewhere right now, the claims won are given back and the answer is
 * 503: the Broker's retry is answered from that response's record.
 */
async function claimRules(options: ResponderOptions, rules: readonly ResponseRule[], pod: ClaimedPod, event: EventRef): Promise<RuleClaim[]> {
  const claims: RuleClaim[] = [];
  const releaseWon = () => release(claims.filter((c) => c.state === 'won'));
  for (const rule of rules) {
    let claim: RuleClaim;
    try {
      claim = await options.safety.claim(rule, pod, event);
    } catch (error) {
      await releaseWon();
      throw error;
    }
    claims.push(claim);
    if (claim.state === 'busy') {
      await releaseWon();
      const wait = Math.max(1, Math.ceil((claim.until.getTime() - options.clock.now().getTime()) / 1000));
      throw new DropError('DROP_IN_PROGRESS', `this event is being responded to by ${claim.holder || 'another replica'} (rule ${rule.name}); retry for its outcome`, {
        retryAfterSeconds: Math.min(wait, options.retryAfterSeconds),
        details: { rule: rule.name, holder: claim.holder, workingUntil: claim.until.toISOString() },
      });
    }
  }
  return claims;
}

/**
 * Takes the budget for the claims won; when it is spent, or cannot be read, the claims are given
 * back. The answer taken early, while claiming, serves when it was for as many slots as the
 * claims won need, or more (the rest given back after the answer); otherwise it is given back
 * and exactly what is needed is taken now.
 */
async function takeBudget(
  options: ResponderOptions,
  count: number,
  won: readonly Extract<RuleClaim, { state: 'won' }>[],
  early: { readonly answer: Settled<BudgetAnswer>; readonly count: number } | undefined,
): Promise<BudgetAnswer> {
  let granted: BudgetAnswer;
  if (early && early.count === count) {
    if (!early.answer.ok) {
      await release(won);
      throw early.answer.error;
    }
    granted = early.answer.value;
  } else {
    if (early && early.answer.ok && early.answer.value.ok && early.count > count) {
      const grant = early.answer.value;
      options.background.run(() => grant.giveBack(early.count - count).catch(() => undefined));
      return grant;
    }
    if (early) options.background.run(() => giveBackAll(early.answer, early.count));
    try {
      granted = await options.safety.take(count);
    } catch (error) {
      await release(won);
      throw error;
    }
  }
  if (!granted.ok) await release(won);
  return granted;
}

/** Gives claims won back, so the Broker's retry can claim them again. */
async function release(won: readonly Extract<RuleClaim, { state: 'won' }>[]): Promise<void> {
  await Promise.all(won.map((c) => c.release()));
}

/** Runs one response rule's actions in order; an Event for each outcome is left after the answer. */
async function runRule(options: ResponderOptions, rule: ResponseRule, about: About, outcomes: ActionOutcome[]): Promise<void> {
  const { target, pod, alert, event } = about;
  const context = {
    event,
    evidence: options.evidence,
    kube: options.kube,
    target,
    pod,
    alert,
    ruleName: rule.name,
    dryRun: options.dryRun || rule.dryRun,
    retryAfterSeconds: options.retryAfterSeconds,
    defaults: { gracePeriodSeconds: options.gracePeriodSeconds },
  };
  for (const step of rule.actions) {
    // parsePolicy rejects unknown action names, so the module is always there.
    const module = actionModules.get(step.action)!;
    let outcome: ActionOutcome;
    try {
      outcome = await module.run(context, step.parameters);
    } catch (error) {
      if (!(error instanceof DropError) || error.retryable) throw error;
      outcome = { action: step.action, status: 'failed', reason: error.message };
    }
    outcomes.push(outcome);
    // An Event on the pod for every outcome (kubectl describe pod); none under the global
    // dry-run, which promises to change nothing in the cluster.
    const kube = options.kube;
    if (kube && pod && !options.dryRun) {
      const { background } = options;
      background.run(async () => {
        const event = await recordEvent(kube, pod, outcome, { ruleName: rule.name, alert, dryRun: context.dryRun, now: () => options.clock.now() });
        if (!event.recorded) {
          background.log.warn({ ...aboutFields(about), rule: rule.name, eventErrors: [clipText(`${outcome.action}: ${event.error}`)] }, 'could not record Kubernetes Events for what was done');
        }
      });
    }
    if (outcome.status === 'failed' && !step.continueOnError) break;
  }
}

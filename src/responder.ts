import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { ActionOutcome } from './actions/action.ts';
import { recordEvent } from './actions/events.ts';
import { actionModules } from './actions/index.ts';
import { DropError } from './errors.ts';
import { checkAlertTime, type FalcoAlert } from './falco.ts';
import { isApiStatus, kubeFailure, type KubeClient } from './kube.ts';
import { selectRules, type Policy, type ResponseRule } from './policy.ts';
import { selectTarget, type PodTarget } from './target.ts';
import { optOutKey, optedOut, type Clock, type Cooldowns, type DestructiveBudget } from './guards.ts';

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
  /** Per (rule, pod) cooldowns and the destructive budget: state shared by every request. */
  readonly cooldowns: Cooldowns;
  readonly budget: DestructiveBudget;
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
  readonly target: PodTarget | undefined;
}

/** At least one action ran (or would have, in dry-run). */
export interface ActResponse extends ResponseCommon {
  readonly decision: 'act';
  readonly target: PodTarget;
  /** UID of the pod acted on, as read from the API (the alert's when there is no cluster). */
  readonly podUid: string | undefined;
  readonly outcomes: readonly ActionOutcome[];
  /** Kubernetes Events that could not be recorded (the response stands; the log says why). */
  readonly eventErrors: readonly string[];
  /** done, dry-run, failed (an action failed for good), or skipped (every action skipped). */
  readonly result: 'done' | 'dry-run' | 'failed' | 'skipped';
}

/** What the service decided about one alert and what came of it. */
export type Response = SkipResponse | ActResponse;

function skip(reason: string, target: PodTarget | undefined, rules: readonly ResponseRule[], dryRun: boolean): SkipResponse {
  return { decision: 'skip', reason, target, rules: rules.map((r) => r.name), dryRun };
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

/** Checks on the live pod: still there, the same pod, not opted out. A reason to skip, or the pod. */
async function checkPod(options: ResponderOptions, kube: KubeClient, target: PodTarget, alertMs: number): Promise<V1Pod | string> {
  const pod = await readPod(kube, target, options.retryAfterSeconds);
  if (!pod) return `pod ${target.namespace}/${target.name} is already gone`;
  const mismatch = identityMismatch(target, pod) ?? createdAfter(target, pod, alertMs);
  if (mismatch) return mismatch;
  if (optedOut(pod.metadata?.labels, pod.metadata?.annotations)) return `pod ${target.namespace}/${target.name} opted out (${optOutKey}: "true")`;
  const namespace = await readNamespace(kube, target.namespace, options.retryAfterSeconds);
  if (!namespace) return `namespace ${target.namespace} is gone`;
  if (optedOut(namespace.metadata?.labels, namespace.metadata?.annotations)) return `namespace ${target.namespace} opted out (${optOutKey}: "true")`;
  return pod;
}

/**
 * Decides what to do about one alert and does it. First the alert's time: none at all, or
 * further ahead of the clock than skew explains, makes the alert invalid (thrown, a final 400).
 * Then the order, each step able to end it with a reason: matching response rules (file order);
 * the target pod; the protected namespaces; the alert's age; the live pod (gone, not the same
 * pod, created after the alert, opted out, its namespace opted out); each rule's cooldown for
 * this pod; the destructive budget (429, retried); then each rule's actions in order. Outcomes
 * are values; only a failure the Broker should retry is thrown.
 */
export async function respond(options: ResponderOptions, alert: FalcoAlert, eventTime?: string): Promise<Response> {
  const time = checkAlertTime(alert, eventTime, options.clock.now());
  if (typeof time === 'string') throw new DropError('DROP_INVALID_ALERT', `the Falco payload is invalid: ${time}`);
  const selection = selectTarget(alert);
  const rules = selectRules(options.policy, alert, selection.target?.namespace);
  const dryRun = options.dryRun || (rules.length > 0 && rules.every((r) => r.dryRun));
  if (rules.length === 0) return skip(`no response rule matches rule "${alert.rule}" at priority ${alert.priority}`, selection.target, rules, dryRun);
  if (!selection.target) return skip(selection.reason, undefined, rules, dryRun);
  const target = selection.target;
  if (options.protectedNamespaces.has(target.namespace)) return skip(`namespace ${target.namespace} is protected`, target, rules, dryRun);
  const { maxAlertAgeSeconds } = options.policy.guards;
  const age = (options.clock.now().getTime() - time) / 1000;
  if (age > maxAlertAgeSeconds) {
    return skip(`the alert is ${Math.round(age)} s old, older than ${maxAlertAgeSeconds} s: too late to act on`, target, rules, dryRun);
  }

  let pod: V1Pod | undefined;
  if (options.kube) {
    const checked = await checkPod(options, options.kube, target, time);
    if (typeof checked === 'string') return skip(checked, target, rules, dryRun);
    pod = checked;
  }

  const podKey = pod?.metadata?.uid ?? `${target.namespace}/${target.name}`;
  const cooling = rules.map((rule) => ({ rule, remaining: options.cooldowns.remaining(rule.name, podKey) }));
  const due = cooling.filter((c) => c.remaining === 0).map((c) => c.rule);
  if (due.length === 0) {
    const waits = cooling.map((c) => `${c.rule.name} ${c.remaining} s`).join(', ');
    return skip(`cooldown: already responded to pod ${target.namespace}/${target.name} (${waits} left)`, target, rules, dryRun);
  }
  const destructive = due
    .filter((rule) => !(options.dryRun || rule.dryRun))
    .reduce((n, rule) => n + rule.actions.filter((step) => actionModules.get(step.action)!.destructive).length, 0);
  const granted = options.budget.take(destructive);
  if (!granted.ok) {
    throw new DropError('DROP_BUDGET_EXCEEDED', `the budget of ${options.policy.guards.destructivePerMinute} destructive actions per minute is spent; retry later`, {
      retryAfterSeconds: granted.retryAfterSeconds,
      details: { target: `${target.namespace}/${target.name}`, rules: due.map((r) => r.name) },
    });
  }

  // The cooldowns start now, before the first await: alerts about this pod that arrive while
  // these actions run are skipped instead of acting on it again. A rule whose actions end in
  // a retryable failure gets its cooldown back, so the Broker's retry can act; and the budget
  // gets back the slots of the destructive actions that did not happen, so that redeliveries
  // of one alert the API keeps failing do not spend it for every other alert.
  for (const rule of due) options.cooldowns.start(rule.name, podKey, rule.cooldownSeconds);
  const outcomes: ActionOutcome[] = [];
  const eventErrors: string[] = [];
  let current = 0;
  try {
    for (; current < due.length; current++) await runRule(options, due[current]!, { target, pod, alert }, outcomes, eventErrors);
  } catch (error) {
    for (const rule of due.slice(current)) options.cooldowns.cancel(rule.name, podKey);
    const done = outcomes.filter((o) => o.status === 'done' && actionModules.get(o.action)!.destructive).length;
    granted.giveBack(destructive - done);
    throw error;
  }
  const result = resultOf(outcomes);
  const reason = outcomes.map((o) => o.reason).join('; ');
  return { decision: 'act', reason, target, podUid: pod?.metadata?.uid ?? target.uid, rules: due.map((r) => r.name), dryRun, outcomes, eventErrors, result };
}

/** Runs one response rule's actions in order, recording an Event for each outcome. */
async function runRule(
  options: ResponderOptions,
  rule: ResponseRule,
  about: { target: PodTarget; pod: V1Pod | undefined; alert: FalcoAlert },
  outcomes: ActionOutcome[],
  eventErrors: string[],
): Promise<void> {
  const { target, pod, alert } = about;
  const context = {
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
    if (options.kube && pod && !options.dryRun) {
      const event = await recordEvent(options.kube, pod, outcome, { ruleName: rule.name, alert, dryRun: context.dryRun, now: () => options.clock.now() });
      if (!event.recorded) eventErrors.push(`${outcome.action}: ${event.error}`);
    }
    if (outcome.status === 'failed' && !step.continueOnError) break;
  }
}

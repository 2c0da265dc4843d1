import type { V1Pod } from '@kubernetes/client-node';
import type { ActionOutcome } from './actions/action.ts';
import { actionModules } from './actions/index.ts';
import { DropError } from './errors.ts';
import type { FalcoAlert } from './falco.ts';
import { isApiStatus, kubeFailure, type KubeClient } from './kube.ts';
import { selectRules, type Policy, type ResponseRule } from './policy.ts';
import { selectTarget, type PodTarget } from './target.ts';

export interface ResponderOptions {
  readonly policy: Policy;
  /** Undefined when no cluster is configured (dry-run without reads). */
  readonly kube: KubeClient | undefined;
  /** Global dry-run: decide and report, mutate nothing. */
  readonly dryRun: boolean;
  readonly protectedNamespaces: ReadonlySet<string>;
  readonly gracePeriodSeconds: number;
  readonly retryAfterSeconds: number;
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

function resultOf(outcomes: readonly ActionOutcome[]): ActResponse['result'] {
  if (outcomes.some((o) => o.status === 'failed')) return 'failed';
  if (outcomes.some((o) => o.status === 'done')) return 'done';
  if (outcomes.some((o) => o.status === 'dry-run')) return 'dry-run';
  return 'skipped';
}

/**
 * Decides what to do about one alert and does it: the matching response rules, the target pod,
 * the protection floor, the pod's identity, then each rule's actions in order. Outcomes are
 * values; only a failure the Broker should retry is thrown (as a retryable DropError).
 */
export async function respond(options: ResponderOptions, alert: FalcoAlert): Promise<Response> {
  const rules = selectRules(options.policy, alert);
  const selection = selectTarget(alert);
  const dryRun = options.dryRun || (rules.length > 0 && rules.every((r) => r.dryRun));
  if (rules.length === 0) return skip(`no response rule matches rule "${alert.rule}" at priority ${alert.priority}`, selection.target, rules, dryRun);
  if (!selection.target) return skip(selection.reason, undefined, rules, dryRun);
  const target = selection.target;
  if (options.protectedNamespaces.has(target.namespace)) return skip(`namespace ${target.namespace} is protected`, target, rules, dryRun);

  let pod: V1Pod | undefined;
  if (options.kube) {
    pod = await readPod(options.kube, target, options.retryAfterSeconds);
    if (!pod) return skip(`pod ${target.namespace}/${target.name} is already gone`, target, rules, dryRun);
    const mismatch = identityMismatch(target, pod);
    if (mismatch) return skip(mismatch, target, rules, dryRun);
  }

  const outcomes: ActionOutcome[] = [];
  for (const rule of rules) {
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
      if (outcome.status === 'failed' && !step.continueOnError) break;
    }
  }
  const result = resultOf(outcomes);
  const reason = outcomes.map((o) => o.reason).join('; ');
  return { decision: 'act', reason, target, podUid: pod?.metadata?.uid ?? target.uid, rules: rules.map((r) => r.name), dryRun, outcomes, result };
}

import type { ApiException, V1Eviction } from '@kubernetes/client-node';
import { isApiStatus, kubeFailure } from '../kube.ts';
import { podRef, type ActionModule } from './action.ts';
import { goneOrReplaced, statusCauses } from './pod.ts';

/** The disruption budget's own words when a 429 is its refusal ("needs 2 healthy pods and has 2"). */
function budgetRefusal(error: ApiException<string>): string | undefined {
  return statusCauses(error).find((c) => c.reason === 'DisruptionBudget')?.message;
}

/**
 * Evicts the pod through the Eviction API (policy/v1), so PodDisruptionBudgets are respected: a
 * budget that allows no disruption now answers 429, which is thrown as a retryable failure
 * (429 with Retry-After) so the Broker delivers again later, when the budget may allow it.
 * The eviction carries the UID precondition, as `delete` does.
 */
export const evictAction: ActionModule = {
  name: 'evict',
  description: 'Evict the pod through the Eviction API, respecting PodDisruptionBudgets (a refusal is retried later).',
  parameters: {
    type: 'object',
    additionalProperties: false,
    properties: {
      gracePeriodSeconds: { type: 'integer', minimum: 0, maximum: 3600 },
    },
  },
  permissions: [{ apiGroup: '', resource: 'pods/eviction', verbs: ['create'] }],
  destructive: true,
  async run(context, parameters) {
    const grace = (parameters.gracePeriodSeconds as number | undefined) ?? context.defaults.gracePeriodSeconds;
    const ref = podRef(context.target);
    const { namespace, name } = context.target;
    if (!context.kube) {
      return { action: 'evict', status: 'dry-run', reason: `would evict pod ${ref} (grace ${grace}s; no cluster, budgets not checked)` };
    }
    const body: V1Eviction = {
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name, namespace },
      deleteOptions: { gracePeriodSeconds: grace, preconditions: { uid: context.pod?.metadata?.uid } },
    };
    try {
      await context.kube.core.createNamespacedPodEviction({ namespace, name, body, ...(context.dryRun ? { dryRun: 'All' } : {}) });
    } catch (error) {
      const outcome = goneOrReplaced(error, 'evict', ref);
      if (outcome) return outcome;
      const refusal = isApiStatus(error, 429) ? budgetRefusal(error as ApiException<string>) : undefined;
      if (refusal && context.dryRun) {
        return { action: 'evict', status: 'dry-run', reason: `would evict pod ${ref}, but its PodDisruptionBudget refuses now: ${refusal}` };
      }
      const what = refusal ? `evict pod ${ref}: its PodDisruptionBudget refused (${refusal}); retry later` : `evict pod ${ref}`;
      throw kubeFailure(error, what, context.retryAfterSeconds);
    }
    if (context.dryRun) {
      return { action: 'evict', status: 'dry-run', reason: `would evict pod ${ref} (grace ${grace}s; server-side dry run accepted)` };
    }
    return { action: 'evict', status: 'done', reason: `evicted pod ${ref} (grace ${grace}s)` };
  },
};

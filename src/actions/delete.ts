import type { V1DeleteOptions } from '@kubernetes/client-node';
import { isApiStatus, kubeFailure } from '../kube.ts';
import { podRef, type ActionModule } from './action.ts';

/**
 * Deletes the pod. The delete carries a UID precondition (the UID read just before, or the
 * alert's `k8s.pod.uid`), so a new pod that took the name in the meantime is never deleted:
 * the API answers 409 and the outcome is a skip. A pod already gone (404) is success.
 */
export const deleteAction: ActionModule = {
  name: 'delete',
  description: 'Delete the pod (its controller, if any, starts a fresh one).',
  parameters: {
    type: 'object',
    additionalProperties: false,
    properties: {
      gracePeriodSeconds: { type: 'integer', minimum: 0, maximum: 3600 },
    },
  },
  permissions: [{ apiGroup: '', resource: 'pods', verbs: ['delete'] }],
  destructive: true,
  async run(context, parameters) {
    const grace = (parameters.gracePeriodSeconds as number | undefined) ?? context.defaults.gracePeriodSeconds;
    const ref = podRef(context.target);
    if (!context.kube) {
      return { action: 'delete', status: 'dry-run', reason: `would delete pod ${ref} (grace ${grace}s; no cluster, not checked)` };
    }
    const body: V1DeleteOptions = {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      gracePeriodSeconds: grace,
      // The UID read just before: a pod that took the name since is answered 409, never deleted.
      preconditions: { uid: context.pod?.metadata?.uid },
      ...(context.dryRun ? { dryRun: ['All'] } : {}),
    };
    try {
      await context.kube.core.deleteNamespacedPod({ namespace: context.target.namespace, name: context.target.name, body });
    } catch (error) {
      if (isApiStatus(error, 404)) return { action: 'delete', status: 'done', reason: `pod ${ref} was already gone` };
      if (isApiStatus(error, 409)) {
        return { action: 'delete', status: 'skipped', reason: `pod ${ref} is no longer the pod that raised the alert (UID precondition failed)` };
      }
      throw kubeFailure(error, `delete pod ${ref}`, context.retryAfterSeconds);
    }
    if (context.dryRun) {
      return { action: 'delete', status: 'dry-run', reason: `would delete pod ${ref} (grace ${grace}s; server-side dry run accepted)` };
    }
    return { action: 'delete', status: 'done', reason: `deleted pod ${ref} (grace ${grace}s)` };
  },
};

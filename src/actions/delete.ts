import type { V1DeleteOptions, V1Pod } from '@kubernetes/client-node';
import { kubeFailure } from '../kube.ts';
import { podRef, type ActionModule } from './action.ts';
import { controllerOf, goneOrReplaced } from './pod.ts';

/** Owner kinds a policy can ask to spare: deleting their pods rarely helps (a DaemonSet's pod comes back on the same node, a StatefulSet's with the same name and volume, a Job's is its work). */
export const skippableOwnerKinds = ['DaemonSet', 'StatefulSet', 'Job'] as const;

/** Why the pod is spared, or undefined when it is to be deleted. */
function spared(pod: V1Pod | undefined, ref: string, skipOwnerKinds: readonly string[], skipStandalone: boolean): string | undefined {
  const owner = controllerOf(pod);
  if (!owner) return skipStandalone ? `pod ${ref} has no controller (skipStandalone): nothing would replace it` : undefined;
  if (skipOwnerKinds.includes(owner.kind)) return `pod ${ref} is owned by ${owner.kind} ${owner.name} (skipOwnerKinds)`;
  return undefined;
}

/**
 * Why a pod already being deleted, at least as fast, is not deleted again: a response resumed
 * after its replica died, or another alert after the cooldown, about a pod stuck terminating
 * (a lost node). A deletion with a longer grace period is shortened by deleting again.
 */
function alreadyDeleted(pod: V1Pod | undefined, ref: string, grace: number): string | undefined {
  const since = pod?.metadata?.deletionTimestamp;
  const pending = pod?.metadata?.deletionGracePeriodSeconds;
  if (since === undefined || pending === undefined || pending > grace) return undefined;
  return `pod ${ref} is already being deleted (grace ${pending}s, since ${new Date(since).toISOString()})`;
}

/**
 * Deletes the pod. The delete carries a UID precondition (the UID read just before, already
 * checked against the alert's), so a new pod that took the name in the meantime is never
 * deleted: the API answers 409 and the outcome is a skip. A pod already gone (404) is success.
 */
export const deleteAction: ActionModule = {
  name: 'delete',
  description: 'Delete the pod (its controller, if any, starts a fresh one).',
  parameters: {
    type: 'object',
    additionalProperties: false,
    properties: {
      gracePeriodSeconds: { type: 'integer', minimum: 0, maximum: 3600 },
      skipOwnerKinds: { type: 'array', uniqueItems: true, items: { type: 'string', enum: [...skippableOwnerKinds] } },
      skipStandalone: { type: 'boolean' },
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
    const skip = spared(context.pod, ref, (parameters.skipOwnerKinds as string[] | undefined) ?? [], parameters.skipStandalone === true) ?? alreadyDeleted(context.pod, ref, grace);
    if (skip) return { action: 'delete', status: 'skipped', reason: skip };
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
      const outcome = goneOrReplaced(error, 'delete', ref);
      if (outcome) return outcome;
      throw kubeFailure(error, `delete pod ${ref}`, context.retryAfterSeconds);
    }
    if (context.dryRun) {
      return { action: 'delete', status: 'dry-run', reason: `would delete pod ${ref} (grace ${grace}s; server-side dry run accepted)` };
    }
    return { action: 'delete', status: 'done', reason: `deleted pod ${ref} (grace ${grace}s)` };
  },
};

import type { V1LabelSelector, V1OwnerReference } from '@kubernetes/client-node';
import { isApiStatus, kubeFailure, type KubeClient } from '../kube.ts';
import { podRef, type ActionContext, type ActionModule } from './action.ts';
import { controllerOf, notPatched, patchPod } from './pod.ts';

/** Where a detached pod says what it was taken from (`ReplicaSet/web-7d59548d75`). */
export const detachedFromAnnotation = 'falco-drop/detached-from';
/** The selector labels taken off the pod, as JSON, to see or restore them. */
export const detachedLabelsAnnotation = 'falco-drop/detached-labels';
/** Marks detached pods for `kubectl get pods -l falco-drop/detached`. */
export const detachedLabel = 'falco-drop/detached';

/** The owners whose selector is read: a replacement pod comes with a new name. */
async function readSelector(kube: KubeClient, namespace: string, owner: V1OwnerReference): Promise<V1LabelSelector | undefined> {
  const request = { namespace, name: owner.name };
  if (owner.kind === 'ReplicaSet') return (await kube.apps.readNamespacedReplicaSet(request)).spec?.selector;
  if (owner.kind === 'DaemonSet') return (await kube.apps.readNamespacedDaemonSet(request)).spec?.selector;
  return (await kube.batch.readNamespacedJob(request)).spec?.selector;
}

/**
 * The label keys to take off so the selector no longer matches the pod: every `matchLabels` key
 * and every `In`/`Exists` expression key. (`NotIn`/`DoesNotExist` match more when a label goes,
 * so removing labels cannot escape a selector made only of those.)
 */
function selectedKeys(selector: V1LabelSelector | undefined): string[] {
  const expressions = (selector?.matchExpressions ?? []).filter((e) => e.operator === 'In' || e.operator === 'Exists');
  return [...Object.keys(selector?.matchLabels ?? {}), ...expressions.map((e) => e.key)];
}

/** Why this owner cannot be detached from, or undefined. */
function unsupported(owner: V1OwnerReference): string | undefined {
  if (owner.kind === 'StatefulSet') {
    return `a StatefulSet replaces a pod under the same name, which the detached pod would keep: StatefulSet ${owner.name} would be blocked`;
  }
  if (!['ReplicaSet', 'DaemonSet', 'Job'].includes(owner.kind)) return `cannot detach from a ${owner.kind} (only ReplicaSet, DaemonSet and Job)`;
  return undefined;
}

/**
 * Takes the pod out of its controller, so the workload gets a healthy replacement while the
 * suspicious pod stays for forensics (with `isolate`, the quarantine other tools lack). One merge
 * patch, bound to the pod's UID: `ownerReferences: null` (a merge patch cannot remove one list
 * element; a pod's only owner is its controller) and the labels its owner selects are removed,
 * so the controller does not adopt it back. Removing, rather than rewriting values, cannot make
 * the pod match some other selector, and takes it out of the Services that route to the workload.
 * The removed labels are kept in an annotation. A pod without a controller is skipped.
 *
 * Destructive: it kills nothing, but the pod leaves its Services and the controller starts one
 * more pod for each one detached, so a flood of detaches degrades a workload like deletes do.
 */
export const detachAction: ActionModule = {
  name: 'detach',
  description: 'Take the pod out of its controller (remove its owner reference and the labels its owner selects), keeping it for forensics.',
  parameters: { type: 'object', additionalProperties: false, properties: {} },
  permissions: [
    { apiGroup: '', resource: 'pods', verbs: ['patch'] },
    { apiGroup: 'apps', resource: 'replicasets', verbs: ['get'] },
    { apiGroup: 'apps', resource: 'daemonsets', verbs: ['get'] },
    { apiGroup: 'batch', resource: 'jobs', verbs: ['get'] },
  ],
  destructive: true,
  async run(context: ActionContext) {
    const ref = podRef(context.target);
    if (!context.kube) return { action: 'detach', status: 'dry-run', reason: `would detach pod ${ref} from its controller (no cluster, owner not read)` };
    const metadata = context.pod?.metadata;
    const owner = controllerOf(context.pod);
    if (!owner) {
      const from = metadata?.annotations?.[detachedFromAnnotation];
      return { action: 'detach', status: 'skipped', reason: from ? `pod ${ref} is already detached from ${from}` : `pod ${ref} has no controller to detach from` };
    }
    const refusal = unsupported(owner);
    if (refusal) return { action: 'detach', status: 'skipped', reason: `pod ${ref}: ${refusal}` };
    const from = `${owner.kind}/${owner.name}`;
    let selector: V1LabelSelector | undefined;
    try {
      selector = await readSelector(context.kube, context.target.namespace, owner);
    } catch (error) {
      // An owner already deleted selects nothing; dropping the reference still saves the pod from the garbage collector.
      if (!isApiStatus(error, 404)) throw kubeFailure(error, `read ${owner.kind} ${context.target.namespace}/${owner.name}`, context.retryAfterSeconds);
    }
    const labels = metadata?.labels ?? {};
    const keys = selectedKeys(selector).filter((k) => k in labels);
    if (selector && keys.length === 0) {
      return { action: 'detach', status: 'failed', reason: `pod ${ref}: no label to remove takes it out of ${from}'s selector, not detached` };
    }
    const removed = Object.fromEntries(keys.map((k) => [k, labels[k]]));
    const result = await patchPod(context, context.kube, {
      metadata: {
        ownerReferences: null,
        labels: { ...Object.fromEntries(keys.map((k) => [k, null])), [detachedLabel]: 'true' },
        annotations: { [detachedFromAnnotation]: from, [detachedLabelsAnnotation]: JSON.stringify(removed) },
      },
    });
    if (result !== 'patched') return { action: 'detach', status: 'skipped', reason: notPatched(result, context) };
    const what = `from ${from}${selector ? '' : ' (already deleted)'}: owner reference and labels ${keys.join(', ') || '(none)'} removed`;
    if (context.dryRun) return { action: 'detach', status: 'dry-run', reason: `would detach pod ${ref} ${what} (server-side dry run accepted)` };
    return { action: 'detach', status: 'done', reason: `detached pod ${ref} ${what}` };
  },
};

import { ApiException, PatchStrategy, setHeaderOptions, type V1OwnerReference, type V1Pod } from '@kubernetes/client-node';
import { isApiStatus, kubeFailure, parseStatus, type KubeClient } from '../kube.ts';
import { podRef, type ActionContext, type ActionOutcome } from './action.ts';

/** Every pod patch is an RFC 7386 JSON merge patch: a null value removes a key. */
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** The owner that manages the pod (`controller: true`), if any. A CronJob's pods name their Job. */
export function controllerOf(pod: V1Pod | undefined): V1OwnerReference | undefined {
  return pod?.metadata?.ownerReferences?.find((r) => r.controller === true);
}

/**
 * The `causes` of a Kubernetes Status error body (field errors, disruption budget refusals);
 * none when the body is no Status (a proxy's text page, say).
 */
export function statusCauses(error: ApiException<string>): { reason?: string; message?: string; field?: string }[] {
  const causes = parseStatus(error)?.details?.causes;
  return Array.isArray(causes) ? causes : [];
}

/**
 * The outcome of a delete or an eviction that the API answered 404 (the pod is already gone:
 * done) or 409 (the UID precondition failed: another pod took the name, skipped); undefined
 * for any other error.
 */
export function goneOrReplaced(error: unknown, action: string, ref: string): ActionOutcome | undefined {
  if (isApiStatus(error, 404)) return { action, status: 'done', reason: `pod ${ref} was already gone` };
  if (isApiStatus(error, 409)) return { action, status: 'skipped', reason: `pod ${ref} is no longer the pod that raised the alert (UID precondition failed)` };
  return undefined;
}

/** What a pod patch came to: applied, the pod is gone (404), or the name now holds another pod. */
export type PatchResult = 'patched' | 'gone' | 'replaced';

export interface PodPatch {
  readonly metadata: Readonly<Record<string, unknown>>;
}

/**
 * Merge-patches the pod, bound to the UID read just before: the patch carries `metadata.uid`,
 * which the API server refuses to change (422 on metadata.uid), so a new pod that took the name
 * is never touched. In dry-run the API server validates and applies nothing (`dryRun=All`).
 */
export async function patchPod(context: ActionContext, kube: KubeClient, patch: PodPatch): Promise<PatchResult> {
  const body = { ...patch, metadata: { ...patch.metadata, uid: context.pod?.metadata?.uid } };
  const { namespace, name } = context.target;
  try {
    await kube.core.patchNamespacedPod({ namespace, name, body, ...(context.dryRun ? { dryRun: 'All' } : {}) }, mergePatch);
  } catch (error) {
    if (isApiStatus(error, 404)) return 'gone';
    if (isApiStatus(error, 422) && statusCauses(error as ApiException<string>).some((c) => c.field === 'metadata.uid')) return 'replaced';
    throw kubeFailure(error, `patch pod ${podRef(context.target)}`, context.retryAfterSeconds);
  }
  return 'patched';
}

/** The skip reason for a patch that found no pod, or another pod, under the name. */
export function notPatched(result: Exclude<PatchResult, 'patched'>, context: ActionContext): string {
  const ref = podRef(context.target);
  return result === 'gone' ? `pod ${ref} is already gone` : `pod ${ref} is no longer the pod that raised the alert (its UID changed)`;
}

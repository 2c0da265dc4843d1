import type { ActionModule } from './action.ts';
import { annotateAction } from './annotate.ts';
import { captureAction } from './capture.ts';
import { deleteAction } from './delete.ts';
import { detachAction } from './detach.ts';
import { evictAction } from './evict.ts';
import { isolateAction } from './isolate.ts';
import { labelAction } from './label.ts';
import { mergePermissions, type Permission } from './permission.ts';

/** Every action a policy can name, by name. */
export const actionModules: ReadonlyMap<string, ActionModule> = new Map(
  [deleteAction, evictAction, labelAction, annotateAction, isolateAction, detachAction, captureAction].map((a) => [a.name, a]),
);

/**
 * What the service needs whatever the policy: read the pod and its namespace before acting
 * (identity, the falco-drop/ignore opt-out), record what it did as Kubernetes Events, and check
 * a sender's token when DROP_AUDIENCE turns sender authentication on (src/auth.ts).
 */
export const basePermissions: readonly Permission[] = [
  { apiGroup: '', resource: 'pods', verbs: ['get'] },
  { apiGroup: '', resource: 'namespaces', verbs: ['get'] },
  { apiGroup: 'events.k8s.io', resource: 'events', verbs: ['create'] },
  { apiGroup: 'authentication.k8s.io', resource: 'tokenreviews', verbs: ['create'] },
];

/** The union the ClusterRole in config/ must grant, and nothing more. */
export function requiredPermissions(): Permission[] {
  return mergePermissions([basePermissions, ...[...actionModules.values()].map((a) => a.permissions)]);
}

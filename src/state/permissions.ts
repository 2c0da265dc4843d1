/**
 * The RBAC the state store needs, in drop's own namespace only (a Role, never a ClusterRole):
 * Leases it creates, reads, lists (the sweep), updates (takeovers, outcomes, the budget) and
 * deletes (release, sweep); Secrets that keep what `capture` collected (src/state/evidence.ts),
 * which it creates, lists (metadata only) and deletes (the oldest, the expired). Tests tie these
 * lists to the calls the stores make.
 */
import type { Permission } from '../actions/permission.ts';

export const statePermissions: readonly Permission[] = [
  { apiGroup: 'coordination.k8s.io', resource: 'leases', verbs: ['create', 'delete', 'get', 'list', 'update'] },
  { apiGroup: '', resource: 'secrets', verbs: ['create', 'delete', 'list'] },
];

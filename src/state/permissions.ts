/**
 * The RBAC the state store needs, in drop's own namespace only (a Role, never a ClusterRole):
 * Leases it creates, reads, lists (the sweep), updates (takeovers, outcomes, the budget) and
 * deletes (release, sweep). A test ties this list to the calls the store makes.
 */
import type { Permission } from '../actions/permission.ts';

export const statePermissions: readonly Permission[] = [
  { apiGroup: 'coordination.k8s.io', resource: 'leases', verbs: ['create', 'delete', 'get', 'list', 'update'] },
];

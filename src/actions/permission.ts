/**
 * A Kubernetes permission an action needs. The ClusterRole in config/ is checked against the
 * union of what every action declares (test/release), so RBAC never drifts from the code.
 */
export interface Permission {
  /** API group: "" for the core group. */
  readonly apiGroup: string;
  /** Resource, with subresource where one is used: "pods", "pods/eviction". */
  readonly resource: string;
  readonly verbs: readonly string[];
}

/** Merges permissions into one sorted list: one entry per (apiGroup, resource), verbs sorted. */
export function mergePermissions(lists: readonly (readonly Permission[])[]): Permission[] {
  const byKey = new Map<string, { apiGroup: string; resource: string; verbs: Set<string> }>();
  for (const list of lists) {
    for (const p of list) {
      const key = `${p.apiGroup}/${p.resource}`;
      const entry = byKey.get(key) ?? { apiGroup: p.apiGroup, resource: p.resource, verbs: new Set<string>() };
      for (const v of p.verbs) entry.verbs.add(v);
      byKey.set(key, entry);
    }
  }
  return [...byKey.values()]
    .sort((a, b) => (a.apiGroup + '/' + a.resource).localeCompare(b.apiGroup + '/' + b.resource))
    .map((e) => ({ apiGroup: e.apiGroup, resource: e.resource, verbs: [...e.verbs].sort() }));
}

import t from 'tap';
import { requiredPermissions } from '../../src/actions/index.ts';
import { config, find, type Json } from './documents.ts';

/**
 * A role's grants as "group/resource" -> sorted verbs, one entry per pair, whatever way the
 * rules are split. Wildcards, resourceNames and nonResourceURLs are refused outright: the role
 * must say exactly what it grants.
 */
function grants(rules: readonly Json[]): Record<string, string[]> {
  const byKey = new Map<string, Set<string>>();
  for (const rule of rules) {
    if (rule.resourceNames || rule.nonResourceURLs) throw new Error(`rule ${JSON.stringify(rule)} is not a plain resource rule`);
    for (const group of rule.apiGroups) {
      for (const resource of rule.resources) {
        for (const verb of rule.verbs) {
          if ([group, resource, verb].includes('*')) throw new Error(`rule ${JSON.stringify(rule)} uses a wildcard`);
          const key = `${group}/${resource}`;
          byKey.set(key, (byKey.get(key) ?? new Set<string>()).add(verb));
        }
      }
    }
  }
  return Object.fromEntries([...byKey].sort(([a], [b]) => a.localeCompare(b)).map(([k, verbs]) => [k, [...verbs].sort()]));
}

t.test('the ClusterRole grants exactly what the actions declare, and nothing else', async (t) => {
  const role = find(config, 'ClusterRole', 'falco-drop');
  const declared = grants(requiredPermissions().map((p) => ({ apiGroups: [p.apiGroup], resources: [p.resource], verbs: p.verbs })));
  t.same(grants(role.rules), declared, 'config/201-clusterrole.yaml == requiredPermissions() (src/actions/)');
  t.ok(Object.keys(declared).includes('/pods'), 'drop at least reads and deletes pods');
  t.equal(role.aggregationRule, undefined, 'no aggregation: nothing can widen it');
});

t.test('grants() is strict about what a role may say', async (t) => {
  t.same(grants([{ apiGroups: ['', 'apps'], resources: ['pods'], verbs: ['get'] }, { apiGroups: [''], resources: ['pods'], verbs: ['delete', 'get'] }]), {
    '/pods': ['delete', 'get'],
    'apps/pods': ['get'],
  });
  t.throws(() => grants([{ apiGroups: [''], resources: ['*'], verbs: ['get'] }]), /wildcard/);
  t.throws(() => grants([{ apiGroups: [''], resources: ['pods'], resourceNames: ['x'], verbs: ['get'] }]), /not a plain resource rule/);
});

t.test('the binding gives the ClusterRole to drop\'s ServiceAccount in drop\'s namespace', async (t) => {
  const binding = find(config, 'ClusterRoleBinding', 'falco-drop');
  t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'falco-drop' });
  const account = find(config, 'ServiceAccount', 'drop');
  t.same(binding.subjects, [{ kind: 'ServiceAccount', name: 'drop', namespace: account.metadata.namespace }]);
  t.not(account.metadata.namespace, 'default');
  t.equal(find(config, 'Service', 'drop').spec.template.spec.serviceAccountName, account.metadata.name);
});

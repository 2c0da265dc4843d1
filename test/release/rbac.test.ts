import t from 'tap';
import { requiredPermissions } from '../../src/actions/index.ts';
import { statePermissions } from '../../src/state/permissions.ts';
import { config, find, release, type Json } from './documents.ts';

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
  t.notOk(Object.keys(grants(role.rules)).some((key) => key.endsWith('/leases')), 'no Leases cluster-wide: the state is granted by a Role in drop\'s namespace');
});

t.test('the state Role grants exactly what the state store declares, and nothing else', async (t) => {
  const role = find(config, 'Role', 'falco-drop-state');
  const declared = grants(statePermissions.map((p) => ({ apiGroups: [p.apiGroup], resources: [p.resource], verbs: p.verbs })));
  t.same(grants(role.rules), declared, 'config/203-role-state.yaml == statePermissions (src/state/permissions.ts)');
  t.same(Object.keys(declared), ['/secrets', 'coordination.k8s.io/leases'], 'the state is Leases, and Secrets for captures, and nothing else');
  t.same(declared['coordination.k8s.io/leases'], ['create', 'delete', 'get', 'list', 'update']);
  t.same(declared['/secrets'], ['create', 'delete', 'list'], 'captures are created, listed and deleted, never read back by drop');
  // The state lives where drop runs: the namespace of its ServiceAccount and of its Service.
  const account = find(config, 'ServiceAccount', 'drop');
  t.equal(role.metadata.namespace, account.metadata.namespace);
  t.equal(role.metadata.namespace, find(config, 'Service', 'drop').metadata.namespace);
  t.same(
    config.filter((m) => m.doc.kind === 'Role' || m.doc.kind === 'ClusterRole').filter((m) => Object.keys(grants(m.doc.rules)).some((key) => key.endsWith('/leases'))).map((m) => m.doc.metadata.name),
    ['falco-drop-state'],
    'no other role grants Leases',
  );
  t.same(
    config.filter((m) => m.doc.kind === 'Role' || m.doc.kind === 'ClusterRole').filter((m) => Object.keys(grants(m.doc.rules)).some((key) => key.endsWith('/secrets'))).map((m) => m.doc.metadata.name),
    ['falco-drop-state'],
    'no other role grants Secrets: none cluster-wide',
  );
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

t.test('the state binding gives the state Role to drop\'s ServiceAccount, in drop\'s namespace only', async (t) => {
  const binding = find(config, 'RoleBinding', 'falco-drop-state');
  const account = find(config, 'ServiceAccount', 'drop');
  t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'falco-drop-state' }, 'a Role: the grant ends at the namespace');
  t.equal(binding.metadata.namespace, account.metadata.namespace, 'bound where the Role and the ServiceAccount are');
  t.same(binding.subjects, [{ kind: 'ServiceAccount', name: 'drop', namespace: account.metadata.namespace }]);
  const bindings = config.filter((m) => m.doc.kind === 'ClusterRoleBinding' && m.doc.roleRef.name === 'falco-drop-state');
  t.same(bindings, [], 'never bound cluster-wide');
});

t.test('release.yaml creates the namespace and the ServiceAccount before the state Role and its binding', async (t) => {
  // kubectl apply -f release.yaml goes in document order: a namespaced object before its Namespace fails.
  const at = (kind: string, name: string) => release.findIndex((m) => m.doc.kind === kind && m.doc.metadata.name === name);
  const [namespace, account, role, binding] = [at('Namespace', 'falco-drop'), at('ServiceAccount', 'drop'), at('Role', 'falco-drop-state'), at('RoleBinding', 'falco-drop-state')];
  t.ok(namespace >= 0 && account >= 0 && role >= 0 && binding >= 0, 'all four are released');
  t.ok(namespace < account && account < role && role < binding, `order: Namespace ${namespace}, ServiceAccount ${account}, Role ${role}, RoleBinding ${binding}`);
  t.same(find(release, 'Role', 'falco-drop-state').rules, find(config, 'Role', 'falco-drop-state').rules, 'released as in config/');
});

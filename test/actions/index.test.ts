import t from 'tap';
import { actionModules, basePermissions, requiredPermissions } from '../../src/actions/index.ts';
import { validator } from './context.ts';

t.test('registers every action under its own name', async (t) => {
  t.same([...actionModules.keys()], ['delete', 'evict', 'label', 'annotate', 'isolate', 'detach', 'capture']);
  for (const [name, action] of actionModules) t.equal(action.name, name);
});

t.test('only label, annotate and capture are outside the budget of destructive actions', async (t) => {
  t.same(
    [...actionModules.values()].filter((a) => !a.destructive).map((a) => a.name),
    ['label', 'annotate', 'capture'],
  );
});

t.test('every parameter schema compiles in ajv strict mode and refuses unknown keys', async (t) => {
  for (const action of actionModules.values()) t.equal(validator(action)({ unknownKey: 1 }), false, action.name);
});

t.test('the ClusterRole needs exactly the base permissions and what the actions declare', async (t) => {
  t.same(basePermissions, [
    { apiGroup: '', resource: 'pods', verbs: ['get'] },
    { apiGroup: '', resource: 'namespaces', verbs: ['get'] },
    { apiGroup: 'events.k8s.io', resource: 'events', verbs: ['create'] },
    { apiGroup: 'authentication.k8s.io', resource: 'tokenreviews', verbs: ['create'] },
  ]);
  t.same(requiredPermissions(), [
    { apiGroup: '', resource: 'namespaces', verbs: ['get'] },
    { apiGroup: '', resource: 'pods', verbs: ['delete', 'get', 'patch'] },
    { apiGroup: '', resource: 'pods/eviction', verbs: ['create'] },
    { apiGroup: '', resource: 'pods/log', verbs: ['get'] },
    { apiGroup: 'apps', resource: 'daemonsets', verbs: ['get'] },
    { apiGroup: 'apps', resource: 'replicasets', verbs: ['get'] },
    { apiGroup: 'authentication.k8s.io', resource: 'tokenreviews', verbs: ['create'] },
    { apiGroup: 'batch', resource: 'jobs', verbs: ['get'] },
    { apiGroup: 'events.k8s.io', resource: 'events', verbs: ['create'] },
    { apiGroup: 'networking.k8s.io', resource: 'networkpolicies', verbs: ['create', 'get', 'update'] },
  ]);
});

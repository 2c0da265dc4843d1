import t from 'tap';
import { actionModules, requiredPermissions } from '../src/actions/index.ts';
import { mergePermissions } from '../src/actions/permission.ts';

t.test('merges permissions into one sorted entry per group and resource', async (t) => {
  const merged = mergePermissions([
    [{ apiGroup: '', resource: 'pods', verbs: ['get'] }],
    [
      { apiGroup: 'networking.k8s.io', resource: 'networkpolicies', verbs: ['update', 'create'] },
      { apiGroup: '', resource: 'pods', verbs: ['patch', 'get'] },
    ],
  ]);
  t.same(merged, [
    { apiGroup: '', resource: 'pods', verbs: ['get', 'patch'] },
    { apiGroup: 'networking.k8s.io', resource: 'networkpolicies', verbs: ['create', 'update'] },
  ]);
});

t.test('the service needs what every action declares, plus reading pods and writing events', async (t) => {
  const required = requiredPermissions();
  t.same(required.find((p) => p.apiGroup === '' && p.resource === 'pods')?.verbs.includes('get'), true);
  t.same(required.find((p) => p.resource === 'events'), { apiGroup: 'events.k8s.io', resource: 'events', verbs: ['create'] });
  for (const action of actionModules.values()) {
    for (const p of action.permissions) {
      const granted = required.find((r) => r.apiGroup === p.apiGroup && r.resource === p.resource);
      t.ok(p.verbs.every((v) => granted?.verbs.includes(v)), `${action.name} gets ${p.verbs.join(',')} on ${p.resource}`);
    }
  }
});

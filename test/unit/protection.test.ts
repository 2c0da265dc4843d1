import t from 'tap';
import { buildProtectedNamespaces, builtInProtectedNamespaces } from '../../src/protection.ts';

const builtIn = ['kube-system', 'kube-public', 'kube-node-lease', 'knative-serving', 'knative-eventing', 'falco'];

t.test('protects the control plane\'s, Knative\'s and Falco\'s namespaces', async (t) => {
  t.same(builtInProtectedNamespaces, builtIn);
});

t.test('the built-in list is always present', async (t) => {
  const cases: { name: string; fromPolicy: string[]; own: string | undefined; expected: string[] }[] = [
    { name: 'alone', fromPolicy: [], own: undefined, expected: builtIn },
    { name: 'with the policy\'s additions', fromPolicy: ['payments', 'vault'], own: undefined, expected: [...builtIn, 'payments', 'vault'] },
    { name: 'with the service\'s own namespace', fromPolicy: [], own: 'falco-drop', expected: [...builtIn, 'falco-drop'] },
    { name: 'with both, without duplicates', fromPolicy: ['payments', 'kube-system', 'falco-drop'], own: 'falco-drop', expected: [...builtIn, 'payments', 'falco-drop'] },
    { name: 'when the own namespace is empty', fromPolicy: [], own: '', expected: builtIn },
  ];
  for (const c of cases) t.same([...buildProtectedNamespaces(c.fromPolicy, c.own)], c.expected, c.name);
});

t.test('a namespace neither built in nor added is not protected', async (t) => {
  const protectedNamespaces = buildProtectedNamespaces(['payments'], 'falco-drop');
  t.equal(protectedNamespaces.has('default'), false);
  t.equal(protectedNamespaces.has('payments'), true);
  t.equal(protectedNamespaces.has('Kube-System'), false, 'names are compared exactly');
});

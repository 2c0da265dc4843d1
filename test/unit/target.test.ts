import t from 'tap';
import type { FalcoAlert, OutputFieldValue } from '../../src/falco.ts';
import { isNamespaceName, isPodName, selectTarget } from '../../src/target.ts';
import { falcoAlert, shellFields, type AlertParts } from './fixtures/falco.ts';

const alert = (parts: AlertParts = {}): FalcoAlert => falcoAlert(parts);
const withFields = (fields: Record<string, string | number | bigint | null>, parts: AlertParts = {}) => alert({ ...parts, fields: { ...shellFields, ...fields } });

/** What a k8s_audit alert carries (no k8s.* or container.* fields). */
function auditAlert(fields: Record<string, string | null>): FalcoAlert {
  return alert({
    rule: 'Attach/Exec Pod',
    source: 'k8s_audit',
    fields: { 'ka.user.name': 'kubernetes-admin', 'ka.verb': 'create', ...fields },
  });
}

t.test('selects the pod of a syscall alert from k8s.ns.name and k8s.pod.name', async (t) => {
  t.same(selectTarget(alert()), {
    target: { namespace: 'default', name: 'mysql-db-7d59548d75-g9msc', uid: undefined, containerId: '2d90926af63e' },
  });
});

t.test('carries the alert\'s pod UID and container id, lower-cased', async (t) => {
  const selection = selectTarget(withFields({ 'k8s.pod.uid': '7B1C2D3E-4F50-4a6b-8c9d-0e1f2a3b4c5d', 'container.id': '2D90926AF63E' }));
  t.same(selection, {
    target: { namespace: 'default', name: 'mysql-db-7d59548d75-g9msc', uid: '7B1C2D3E-4F50-4a6b-8c9d-0e1f2a3b4c5d', containerId: '2d90926af63e' },
  });
});

t.test('accepts a full 64-character container id and dotted pod names', async (t) => {
  const full = 'a'.repeat(64);
  t.match(selectTarget(withFields({ 'container.id': full, 'k8s.pod.name': 'web.v2-0' })), { target: { containerId: full, name: 'web.v2-0' } });
});

t.test('treats <NA>, empty and null identity fields as absent', async (t) => {
  for (const value of ['<NA>', '', null]) {
    const selection = selectTarget(withFields({ 'k8s.pod.uid': value, 'container.id': value }));
    t.match(selection, { target: { namespace: 'default', uid: undefined, containerId: undefined } }, String(value));
  }
});

t.test('selects the pod a k8s_audit alert\'s API call targets', async (t) => {
  const selection = selectTarget(auditAlert({ 'ka.target.resource': 'pods', 'ka.target.namespace': 'shop', 'ka.target.name': 'cart-0', 'ka.target.subresource': 'exec' }));
  t.same(selection, { target: { namespace: 'shop', name: 'cart-0', uid: undefined, containerId: undefined } });
});

t.test('has no target when the alert has no pod to act on', async (t) => {
  const cases: { name: string; alert: FalcoAlert; reason: string }[] = [
    {
      name: 'a host process',
      alert: withFields({ 'container.id': 'host', 'k8s.ns.name': null, 'k8s.pod.name': null }),
      reason: 'a host process: no pod to act on',
    },
    {
      name: 'a container outside Kubernetes',
      alert: withFields({ 'k8s.ns.name': null, 'k8s.pod.name': null }),
      reason: 'a syscall alert without a pod: no pod to act on',
    },
    { name: 'a pod name of <NA>', alert: withFields({ 'k8s.pod.name': '<NA>' }), reason: 'a syscall alert without a pod: no pod to act on' },
    { name: 'a namespace of <NA>', alert: withFields({ 'k8s.ns.name': '<NA>' }), reason: 'a syscall alert without a pod: no pod to act on' },
    { name: 'an empty pod name', alert: withFields({ 'k8s.pod.name': '' }), reason: 'a syscall alert without a pod: no pod to act on' },
    {
      name: 'an aws_cloudtrail alert',
      alert: alert({ source: 'aws_cloudtrail', fields: { 'ct.name': 'ConsoleLogin', 'ct.user': 'root' } }),
      reason: 'a aws_cloudtrail alert without a pod: no pod to act on',
    },
    {
      name: 'a k8s_audit alert about a deployment',
      alert: auditAlert({ 'ka.target.resource': 'deployments', 'ka.target.namespace': 'shop', 'ka.target.name': 'cart' }),
      reason: 'k8s_audit alert targets deployments, not a pod',
    },
    {
      name: 'a k8s_audit alert about a secret',
      alert: auditAlert({ 'ka.target.resource': 'secrets', 'ka.target.namespace': 'shop', 'ka.target.name': 'db' }),
      reason: 'k8s_audit alert targets secrets, not a pod',
    },
    { name: 'a k8s_audit alert with no resource', alert: auditAlert({ 'ka.target.resource': null }), reason: 'k8s_audit alert targets no resource, not a pod' },
    {
      name: 'a k8s_audit alert about pods with no name (a list)',
      alert: auditAlert({ 'ka.target.resource': 'pods', 'ka.target.namespace': 'shop', 'ka.target.name': '<NA>' }),
      reason: 'a k8s_audit alert without a pod: no pod to act on',
    },
    {
      name: 'a k8s_audit alert that ignores k8s.* fields',
      alert: alert({ source: 'k8s_audit', fields: { 'ka.target.resource': 'pods', 'k8s.ns.name': 'default', 'k8s.pod.name': 'web' } }),
      reason: 'a k8s_audit alert without a pod: no pod to act on',
    },
  ];
  for (const c of cases) t.same(selectTarget(c.alert), { target: undefined, reason: c.reason }, c.name);
});

t.test('has no target when a name or identity is not valid for Kubernetes', async (t) => {
  const cases: { name: string; fields: Record<string, string>; reason: string }[] = [
    { name: 'a namespace with a path', fields: { 'k8s.ns.name': '../etc' }, reason: 'namespace "../etc" is not a valid Kubernetes name' },
    { name: 'a namespace in capitals', fields: { 'k8s.ns.name': 'Default' }, reason: 'namespace "Default" is not a valid Kubernetes name' },
    { name: 'a 64-character namespace', fields: { 'k8s.ns.name': 'n'.repeat(64) }, reason: `namespace "${'n'.repeat(64)}" is not a valid Kubernetes name` },
    { name: 'a namespace with a dot', fields: { 'k8s.ns.name': 'a.b' }, reason: 'namespace "a.b" is not a valid Kubernetes name' },
    { name: 'a pod name with a path', fields: { 'k8s.pod.name': '../etc' }, reason: 'pod name "../etc" is not a valid Kubernetes name' },
    { name: 'a pod name with a slash', fields: { 'k8s.pod.name': 'a/b' }, reason: 'pod name "a/b" is not a valid Kubernetes name' },
    { name: 'a pod name ending in a dash', fields: { 'k8s.pod.name': 'web-' }, reason: 'pod name "web-" is not a valid Kubernetes name' },
    { name: 'a pod UID with a space', fields: { 'k8s.pod.uid': '7b1c 2d3e' }, reason: 'k8s.pod.uid "7b1c 2d3e" is not a UID' },
    { name: 'a pod UID with letters past f', fields: { 'k8s.pod.uid': 'xyz' }, reason: 'k8s.pod.uid "xyz" is not a UID' },
    { name: 'a pod UID of 65 characters', fields: { 'k8s.pod.uid': 'a'.repeat(65) }, reason: `k8s.pod.uid "${'a'.repeat(65)}" is not a UID` },
    { name: 'a container id of 11 characters', fields: { 'container.id': '2d90926af63' }, reason: 'container.id "2d90926af63" is not a container id' },
    { name: 'a container id with its runtime prefix', fields: { 'container.id': 'containerd://2d90926af63e' }, reason: 'container.id "containerd://2d90926af63e" is not a container id' },
    { name: 'a container id of 65 characters', fields: { 'container.id': 'a'.repeat(65) }, reason: `container.id "${'a'.repeat(65)}" is not a container id` },
  ];
  for (const c of cases) t.same(selectTarget(withFields(c.fields)), { target: undefined, reason: c.reason }, c.name);
});

t.test('a target or identity field of the wrong type is malformed: no target, never read as absent', async (t) => {
  const audit = (fields: Record<string, OutputFieldValue>) => ({
    ...auditAlert({ 'ka.target.resource': 'pods', 'ka.target.namespace': 'shop', 'ka.target.name': 'cart-0' }),
    outputFields: { 'ka.target.resource': 'pods', 'ka.target.namespace': 'shop', 'ka.target.name': 'cart-0', ...fields },
  });
  const syscall = (fields: Record<string, OutputFieldValue>) => ({ ...alert(), outputFields: { ...shellFields, ...fields } });
  const cases: { name: string; alert: FalcoAlert; reason: string }[] = [
    { name: 'a numeric pod UID', alert: syscall({ 'k8s.pod.uid': 123 }), reason: 'k8s.pod.uid is the number 123, not a string: a malformed alert is not acted on' },
    { name: 'a boolean pod UID', alert: syscall({ 'k8s.pod.uid': true }), reason: 'k8s.pod.uid is the boolean true, not a string: a malformed alert is not acted on' },
    { name: 'a numeric container id', alert: syscall({ 'container.id': 2090926 }), reason: 'container.id is the number 2090926, not a string: a malformed alert is not acted on' },
    {
      name: 'a container id past 2^53',
      alert: syscall({ 'container.id': 209092663123456789012n }),
      reason: 'container.id is the number 209092663123456789012, not a string: a malformed alert is not acted on',
    },
    { name: 'a boolean container id', alert: syscall({ 'container.id': false }), reason: 'container.id is the boolean false, not a string: a malformed alert is not acted on' },
    { name: 'a numeric namespace', alert: syscall({ 'k8s.ns.name': 7 }), reason: 'k8s.ns.name is the number 7, not a string: a malformed alert is not acted on' },
    { name: 'a numeric pod name', alert: syscall({ 'k8s.pod.name': 42 }), reason: 'k8s.pod.name is the number 42, not a string: a malformed alert is not acted on' },
    { name: 'a host process with a numeric pod UID', alert: syscall({ 'container.id': 'host', 'k8s.pod.uid': 1 }), reason: 'k8s.pod.uid is the number 1, not a string: a malformed alert is not acted on' },
    { name: 'a k8s_audit resource of true', alert: audit({ 'ka.target.resource': true }), reason: 'ka.target.resource is the boolean true, not a string: a malformed alert is not acted on' },
    { name: 'a numeric k8s_audit namespace', alert: audit({ 'ka.target.namespace': 1 }), reason: 'ka.target.namespace is the number 1, not a string: a malformed alert is not acted on' },
    { name: 'a numeric k8s_audit name', alert: audit({ 'ka.target.name': 0 }), reason: 'ka.target.name is the number 0, not a string: a malformed alert is not acted on' },
    { name: 'a numeric pod UID on a k8s_audit alert', alert: audit({ 'k8s.pod.uid': 5 }), reason: 'k8s.pod.uid is the number 5, not a string: a malformed alert is not acted on' },
  ];
  for (const c of cases) t.same(selectTarget(c.alert), { target: undefined, reason: c.reason }, c.name);
  t.match(selectTarget(audit({ 'k8s.pod.name': 42 })), { target: { namespace: 'shop', name: 'cart-0' } }, 'a field the source does not read is not judged');
});

t.test('validates k8s_audit target names like syscall ones', async (t) => {
  const selection = selectTarget(auditAlert({ 'ka.target.resource': 'pods', 'ka.target.namespace': 'kube-system', 'ka.target.name': '../etc' }));
  t.same(selection, { target: undefined, reason: 'pod name "../etc" is not a valid Kubernetes name' });
});

t.test('isNamespaceName follows RFC 1123 labels', async (t) => {
  const cases: [string, boolean][] = [
    ['default', true],
    ['a', true],
    ['0', true],
    ['kube-system', true],
    ['n'.repeat(63), true],
    ['n'.repeat(64), false],
    ['', false],
    ['Default', false],
    ['-a', false],
    ['a-', false],
    ['a.b', false],
    ['a_b', false],
    ['../etc', false],
  ];
  for (const [name, valid] of cases) t.equal(isNamespaceName(name), valid, JSON.stringify(name));
});

t.test('isPodName follows RFC 1123 subdomains', async (t) => {
  const cases: [string, boolean][] = [
    ['mysql-db-7d59548d75-g9msc', true],
    ['web.v2', true],
    ['a', true],
    ['p'.repeat(253), true],
    ['p'.repeat(254), false],
    ['', false],
    ['Web', false],
    ['a..b', false],
    ['.a', false],
    ['a.', false],
    ['a-.b', false],
    ['a/b', false],
    ['../etc', false],
  ];
  for (const [name, valid] of cases) t.equal(isPodName(name), valid, JSON.stringify(name));
});

import t from 'tap';
import { V1MicroTime } from '@kubernetes/client-node';
import { createKubeClient } from '../src/kube.ts';
import { FakeKube } from './helpers/fake-kube.ts';

// Pins the fake API server's coordination.k8s.io/v1 Leases to what kube-apiserver does
// (generic registry store + lease strategy: AllowCreateOnUpdate true, AllowUnconditionalUpdate
// false), so the state store's tests stand on the real server's rules.

const base = '/apis/coordination.k8s.io/v1/namespaces/falco-drop/leases';
const micro = '2026-11-26T08:00:00.123456Z';

async function call(fake: FakeKube, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${fake.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: await response.json() };
}

function lease(name: string, extra: Record<string, unknown> = {}, labels: Record<string, string> = {}): Record<string, unknown> {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, labels, ...extra },
    spec: { holderIdentity: 'replica-a', acquireTime: micro, renewTime: micro, leaseDurationSeconds: 60 },
  };
}

t.test('create stores the Lease with a uid, a creation time and a resourceVersion; a second create is 409 AlreadyExists', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  const created = await call(fake, 'POST', base, lease('one'));
  t.equal(created.status, 201);
  t.match(created.body, { kind: 'Lease', metadata: { name: 'one', namespace: 'falco-drop', uid: /^[0-9a-f-]{36}$/, resourceVersion: /^\d+$/, creationTimestamp: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/ }, spec: { renewTime: micro } });
  const again = await call(fake, 'POST', base, lease('one'));
  t.equal(again.status, 409);
  t.match(again.body, { kind: 'Status', reason: 'AlreadyExists', code: 409, message: 'leases.coordination.k8s.io "one" already exists', details: { name: 'one', group: 'coordination.k8s.io', kind: 'leases' } });
  const read = await call(fake, 'GET', `${base}/one`);
  t.same(read, { status: 200, body: created.body });
});

t.test('a missing or invalid name, a bad duration or oversized annotations are 422 Invalid', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  const noName = await call(fake, 'POST', base, { ...lease('x'), metadata: {} });
  t.match(noName, { status: 422, body: { reason: 'Invalid', details: { causes: [{ field: 'metadata.name', reason: 'FieldValueRequired' }] } } });
  const badName = await call(fake, 'POST', base, lease('Not_A_Name'));
  t.match(badName, { status: 422, body: { reason: 'Invalid', details: { causes: [{ field: 'metadata.name', reason: 'FieldValueInvalid' }] } } });
  const badDuration = await call(fake, 'POST', base, { ...lease('d'), spec: { leaseDurationSeconds: 0 } });
  t.match(badDuration, { status: 422, body: { details: { causes: [{ field: 'spec.leaseDurationSeconds' }] } } });
  const huge = await call(fake, 'POST', base, lease('h', { annotations: { big: 'x'.repeat(256 * 1024) } }));
  t.match(huge, { status: 422, body: { details: { causes: [{ field: 'metadata.annotations', reason: 'FieldValueTooLong' }] } } });
  const otherNamespace = await call(fake, 'POST', base, lease('n', { namespace: 'elsewhere' }));
  t.equal(otherNamespace.status, 400);
  const notObject = await call(fake, 'POST', base, [1]);
  t.equal(notObject.status, 400);
  t.equal(fake.leases.size, 0, 'nothing was stored');
});

t.test('MicroTime fields need exactly six fraction digits: anything else is refused 400 by the decoder', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  for (const time of ['2026-11-26T08:00:00.123Z', '2026-11-26T08:00:00Z', 'yesterday', 12]) {
    const answer = await call(fake, 'POST', base, { ...lease('m'), spec: { renewTime: time } });
    t.match(answer, { status: 400, body: { reason: 'BadRequest', message: /cannot be handled as a Lease: parsing time/ } }, String(time));
  }
  t.equal((await call(fake, 'POST', base, { ...lease('m'), spec: { renewTime: '2026-11-26T09:00:00.000001+01:00' } })).status, 201);
});

t.test('the client library writes MicroTime as the server needs it when given a V1MicroTime', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 5000 });
  t.teardown(() => kube.close());
  const at = new V1MicroTime(Date.UTC(2026, 10, 26, 8, 0, 0, 250));
  await kube.coordination.createNamespacedLease({ namespace: 'falco-drop', body: { metadata: { name: 'c' }, spec: { acquireTime: at, renewTime: at, leaseDurationSeconds: 5 } } });
  t.match(fake.requests.at(-1), { method: 'POST', path: base, body: { spec: { renewTime: '2026-11-26T08:00:00.250000Z' } } });
  // A plain Date goes out with three fraction digits, which the real server refuses.
  await t.rejects(
    kube.coordination.createNamespacedLease({ namespace: 'falco-drop', body: { metadata: { name: 'd' }, spec: { renewTime: new Date(at.getTime()) } } }),
    { code: 400 },
  );
});

t.test('update needs the current resourceVersion: stale is 409 Conflict, none is 422; every write changes it', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  const created = (await call(fake, 'POST', base, lease('u'))).body;
  const first = created.metadata.resourceVersion;
  const updated = await call(fake, 'PUT', `${base}/u`, { ...created, spec: { ...created.spec, holderIdentity: 'replica-b' } });
  t.equal(updated.status, 200);
  t.not(updated.body.metadata.resourceVersion, first);
  t.equal(updated.body.metadata.uid, created.metadata.uid);
  t.equal(updated.body.metadata.creationTimestamp, created.metadata.creationTimestamp);
  const stale = await call(fake, 'PUT', `${base}/u`, { ...created, spec: { ...created.spec, holderIdentity: 'replica-c' } });
  t.match(stale, {
    status: 409,
    body: { reason: 'Conflict', message: 'Operation cannot be fulfilled on leases.coordination.k8s.io "u": the object has been modified; please apply your changes to the latest version and try again' },
  });
  const { resourceVersion: _dropped, ...noVersion } = created.metadata;
  const unconditional = await call(fake, 'PUT', `${base}/u`, { ...created, metadata: noVersion });
  t.match(unconditional, { status: 422, body: { reason: 'Invalid', message: /metadata\.resourceVersion: Invalid value: 0x0: must be specified for an update/ } });
  t.equal((await call(fake, 'GET', `${base}/u`)).body.spec.holderIdentity, 'replica-b', 'only the update with the current version was applied');
  const renamed = await call(fake, 'PUT', `${base}/u`, { ...updated.body, metadata: { ...updated.body.metadata, name: 'v' } });
  t.equal(renamed.status, 400);
});

t.test('an update of a missing Lease creates it (AllowCreateOnUpdate), whatever resourceVersion it names', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  const answer = await call(fake, 'PUT', `${base}/fresh`, lease('fresh', { resourceVersion: '12' }));
  t.equal(answer.status, 201);
  t.not(answer.body.metadata.resourceVersion, '12');
});

t.test('get and delete of a missing Lease are 404 NotFound; delete honours uid and resourceVersion preconditions', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  t.match(await call(fake, 'GET', `${base}/gone`), { status: 404, body: { reason: 'NotFound', message: 'leases.coordination.k8s.io "gone" not found', details: { kind: 'leases' } } });
  t.match(await call(fake, 'DELETE', `${base}/gone`), { status: 404, body: { reason: 'NotFound' } });
  const created = (await call(fake, 'POST', base, lease('p'))).body;
  const wrongVersion = await call(fake, 'DELETE', `${base}/p`, { preconditions: { resourceVersion: '1' } });
  t.match(wrongVersion, { status: 409, body: { reason: 'Conflict', message: /Precondition failed: ResourceVersion in precondition: 1, ResourceVersion in object meta: \d+/ } });
  const wrongUid = await call(fake, 'DELETE', `${base}/p`, { preconditions: { uid: 'other' } });
  t.match(wrongUid, { status: 409, body: { reason: 'Conflict', message: /Precondition failed: UID in precondition: other/ } });
  t.ok(fake.leases.has('falco-drop/p'), 'a refused delete leaves the Lease');
  const deleted = await call(fake, 'DELETE', `${base}/p`, { preconditions: { uid: created.metadata.uid, resourceVersion: created.metadata.resourceVersion } });
  t.match(deleted, { status: 200, body: { kind: 'Status', status: 'Success', details: { name: 'p', uid: created.metadata.uid } } });
  t.notOk(fake.leases.has('falco-drop/p'));
  await call(fake, 'POST', base, lease('q'));
  t.equal((await call(fake, 'DELETE', `${base}/q`)).status, 200, 'a delete without body deletes unconditionally');
  t.equal((await call(fake, 'PATCH', `${base}/q`, {})).status, 405);
  t.equal((await call(fake, 'PUT', base, {})).status, 405);
});

t.test('list filters by an equality label selector, in the namespace asked, and carries a resourceVersion', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  await call(fake, 'POST', base, lease('a', {}, { app: 'drop', role: 'claim' }));
  await call(fake, 'POST', base, lease('b', {}, { app: 'drop', role: 'budget' }));
  await call(fake, 'POST', base, lease('c', {}, { app: 'other' }));
  await call(fake, 'POST', '/apis/coordination.k8s.io/v1/namespaces/elsewhere/leases', lease('d', {}, { app: 'drop', role: 'claim' }));
  const claims = await call(fake, 'GET', `${base}?labelSelector=${encodeURIComponent('app=drop,role==claim')}`);
  t.match(claims, { status: 200, body: { kind: 'LeaseList', apiVersion: 'coordination.k8s.io/v1', metadata: { resourceVersion: /^\d+$/ } } });
  t.same(claims.body.items.map((i: any) => i.metadata.name), ['a']);
  t.notOk('kind' in claims.body.items[0], 'items carry no kind, as in a typed list');
  const all = await call(fake, 'GET', base);
  t.same(all.body.items.map((i: any) => i.metadata.name), ['a', 'b', 'c']);
  t.equal((await call(fake, 'GET', `${base}?labelSelector=app`)).status, 400);
});

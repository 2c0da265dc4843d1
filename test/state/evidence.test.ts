/**
 * The evidence store (src/state/evidence.ts) against the fake API server: captures are bounded
 * in number and in time, listed without their data, and deleted by the UID listed.
 */
import t, { type Test } from 'tap';
import { createKubeClient } from '../../src/kube.ts';
import { statePermissions } from '../../src/state/permissions.ts';
import { captureName, EvidenceStore, scheduleEvidenceSweeps, type PodCapture } from '../../src/state/evidence.ts';
import { FakeKube, statusBody, type FakeObject } from '../helpers/fake-kube.ts';

const ns = 'falco-drop';
const secretsPath = `/api/v1/namespaces/${ns}/secrets`;
const now = new Date('2026-11-23T12:00:00Z');

async function setup(t: Test, options: { max?: number } = {}) {
  const fake = await new FakeKube().start();
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 2000 });
  t.teardown(async () => {
    kube.close();
    await fake.stop();
  });
  const store = new EvidenceStore({ core: kube.core, namespace: ns, clock: { now: () => now }, retryAfterSeconds: 5, ...options });
  return { fake, store };
}

/** A Secret as the API server keeps it, created `hoursAgo` before `now`. */
function stored(name: string, hoursAgo: number, labels: Record<string, string> = { 'app.kubernetes.io/managed-by': 'falco-drop', 'falco-drop/state': 'capture' }): FakeObject {
  const created = new Date(now.getTime() - hoursAgo * 3600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns, uid: `uid-${name}`, resourceVersion: '1', creationTimestamp: created, labels }, data: { 'main.log': Buffer.from('x'.repeat(1000)).toString('base64') } };
}

t.test('a capture\'s name follows from the event and the rule, and is a valid Secret name', async (t) => {
  const name = captureName({ source: 'https://falco.org', id: 'a'.repeat(600) }, 'rule with spaces');
  t.match(name, /^drop-capture-[0-9a-f]{40}$/);
  t.equal(name, captureName({ source: 'https://falco.org', id: 'a'.repeat(600) }, 'rule with spaces'));
  t.not(name, captureName({ source: 'https://falco.org', id: 'a'.repeat(600) }, 'another rule'));
  t.not(name, captureName({ source: 'https://falco.org', id: 'b' }, 'rule with spaces'));
});

t.test('the sweep deletes captures past 24 h and the oldest past the limit, listing metadata only', async (t) => {
  const { fake, store } = await setup(t, { max: 3 });
  for (const [name, hours] of [['old', 30], ['a', 5], ['b', 4], ['c', 3], ['d', 2]] as const) fake.secrets.set(`${ns}/${name}`, stored(name, hours));
  fake.secrets.set(`${ns}/not-ours`, stored('not-ours', 100, { app: 'other' }));
  const deleted = await store.sweep(1);
  // 24 h: `old`; room for one more under 3: keep the two newest.
  t.equal(deleted, 3);
  t.same([...fake.secrets.keys()].sort(), [`${ns}/c`, `${ns}/d`, `${ns}/not-ours`]);
  const list = fake.requests[0]!;
  t.same([list.method, list.path, list.query], ['GET', secretsPath, { labelSelector: 'app.kubernetes.io/managed-by=falco-drop,falco-drop/state=capture' }]);
  t.match(list.accept, /^application\/json;as=PartialObjectMetadataList;g=meta\.k8s\.io;v=v1/, 'their data is not transferred');
  t.same(
    fake.requests.slice(1).map((r) => [r.method, r.path, r.body]),
    ['old', 'a', 'b'].map((name) => ['DELETE', `${secretsPath}/${name}`, { preconditions: { uid: `uid-${name}` } }]),
  );
  t.equal(await store.sweep(), 0, 'nothing more to do');
});

t.test('a capture deleted or replaced meanwhile is not counted', async (t) => {
  const { fake, store } = await setup(t, { max: 0 });
  fake.secrets.set(`${ns}/a`, stored('a', 1));
  fake.secrets.set(`${ns}/b`, stored('b', 1));
  fake.fail({ method: 'DELETE', path: /\/secrets\/a$/, status: 404, body: statusBody(404, 'secrets "a" not found') });
  fake.fail({ method: 'DELETE', path: /\/secrets\/b$/, status: 409, body: statusBody(409, 'Precondition failed') });
  t.equal(await store.sweep(), 0);
  fake.fail({ method: 'DELETE', path: /\/secrets\/a$/, status: 500 });
  await t.rejects(store.sweep(), { code: 'DROP_K8S_UNAVAILABLE', message: /delete capture falco-drop\/a: Kubernetes answered 500/ });
});

t.test('the store uses exactly the Secret verbs the state Role grants', async (t) => {
  const { fake, store } = await setup(t, { max: 1 });
  const capture: PodCapture = { pod: { namespace: 'default', name: 'p', uid: 'u' }, capturedAt: now.toISOString(), secret: null, manifest: {}, logs: [] };
  const about = { rule: 'r', event: { source: 's', id: 'i' } };
  t.equal(await store.keep(captureName(about.event, 'r'), capture, about), 'created');
  t.equal(await store.keep(captureName(about.event, 'r'), capture, about), 'kept');
  await store.keep(captureName({ source: 's', id: 'j' }, 'r'), capture, about);
  await store.sweep();
  const verb = (r: { method: string }) => ({ GET: 'list', POST: 'create', DELETE: 'delete' })[r.method];
  t.same([...new Set(fake.requests.map(verb))].sort(), statePermissions.find((p) => p.resource === 'secrets')?.verbs);
  t.ok(fake.requests.every((r) => r.path.startsWith(secretsPath)), "only Secrets in drop's namespace");
});

t.test('captures are swept on a timer too, so they expire when no capture comes', async (t) => {
  const failure = new Error('list the captures in falco-drop: Kubernetes answered 503');
  const answers = [async () => 2, async () => 0, async () => Promise.reject(failure)];
  let calls = 0;
  let wake = (): void => {};
  const store = { sweep: () => (++calls >= 4 && wake(), (answers[calls - 1] ?? (async () => 0))()) } as unknown as EvidenceStore;
  const lines: [string, unknown, string][] = [];
  const log = { info: (fields: unknown, msg: string) => lines.push(['info', fields, msg]), warn: (fields: unknown, msg: string) => lines.push(['warn', fields, msg]) };
  // The timers are unref'd: keep the process alive while the test waits.
  const alive = setInterval(() => {}, 1000);
  const stop = scheduleEvidenceSweeps(store, log as never, 2, () => 0);
  await new Promise<void>((resolve) => (wake = resolve));
  stop();
  clearInterval(alive);
  t.same(lines, [
    ['info', { deleted: 2 }, 'deleted 2 captures past their time or their number'],
    ['warn', { err: failure }, 'could not delete the old captures; trying again later'],
  ]);
  const after = calls;
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(calls, after, 'no sweep once stopped');
});

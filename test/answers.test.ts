import { once } from 'node:events';
import net from 'node:net';
import t, { type Test } from 'tap';
import { HTTP, CloudEvent } from 'cloudevents';
import { parseJson } from '../src/json.ts';
import { FakeKube, makePod, statusBody } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { createFakeAndApp, createTestApp, lower, type TestApp } from './helpers/app.ts';
import { sendRaw } from './helpers/http.ts';

const podUid = '5f0a3c2e-9b1d-4e7a-8c6f-2b3d4e5f6a7b';
const podPath = '/api/v1/namespaces/default/pods/mysql-db-7d59548d75-g9msc';

function setup(t: Test, options: Parameters<typeof createTestApp>[0] = {}) {
  return createFakeAndApp(t, [makePod('default', 'mysql-db-7d59548d75-g9msc', podUid)], options);
}

/** Writes to pods: every mutation but the Events that record them and drop's own state (Leases). */
function podWrites(fake: FakeKube) {
  const state = new Set(fake.stateRequests);
  return fake.mutations().filter((r) => !r.path.startsWith('/apis/events.k8s.io/') && !state.has(r));
}

let ids = 0;
function deliver(drop: TestApp, body = falcoPayload(), id = `id-${++ids}`, headers: Record<string, string> = {}) {
  return drop.app.inject({ method: 'POST', url: '/', headers: { ...lower(brokerHeaders(id)), ...headers }, payload: body });
}

t.test('deletes the pod that raised the alert and replies with a CloudEvent that records it', async (t) => {
  const { fake, drop } = await setup(t);
  const res = await deliver(drop, falcoPayload(), 'ce-1');
  t.equal(res.statusCode, 200);
  t.equal(res.headers['ce-type'], 'dev.falcodrop.response.v1');
  t.equal(res.headers['ce-specversion'], '1.0');
  t.equal(res.headers['ce-subject'], 'default/mysql-db-7d59548d75-g9msc');
  t.ok(res.headers['ce-id'], 'the reply has an id');
  t.match(res.headers['content-type'], /^application\/json/);
  const data = JSON.parse(res.body);
  t.equal(data.result, 'done');
  t.same(data.target, { namespace: 'default', pod: 'mysql-db-7d59548d75-g9msc', uid: podUid });
  t.same(data.alert.cloudEvent, { id: 'ce-1', source: 'https://falco.org', type: 'falco.rule.output.v1' });
  t.equal(data.alert.rule, 'Terminal shell in container');
  t.equal(data.alert.priority, 'Notice');
  t.same(data.actions, [{ action: 'delete', status: 'done', reason: 'deleted pod default/mysql-db-7d59548d75-g9msc (grace 1s)' }]);
  // What the client actually sent, in steps (the calls of a step at once, in any order): read the
  // pod and its namespace (opt-out); claim the (rule, pod) with a Lease in drop's namespace and
  // take a slot of the budget (read it, then create it, the first time); delete the pod bound to
  // its UID; after the answer, leave an Event on it and record the outcome on the claim.
  await drop.app.background.drain();
  const leases = '/apis/coordination.k8s.io/v1/namespaces/falco-drop/leases';
  const claim = fake.stateRequests.find((r) => r.method === 'POST' && (r.body as { metadata: { name: string } }).metadata.name.startsWith('drop-claim-'));
  const claimName = (claim?.body as { metadata: { name: string } }).metadata.name;
  const steps = [
    [`GET ${podPath}`, 'GET /api/v1/namespaces/default'],
    [`POST ${leases} (claim)`, `GET ${leases}/drop-budget`, `POST ${leases} (budget)`],
    [`DELETE ${podPath}`],
    ['POST /apis/events.k8s.io/v1/namespaces/default/events', `PUT ${leases}/${claimName}`],
  ];
  const sent = fake.requests.map((r) => {
    const name = r.method === 'POST' && r.path === leases ? (r.body as { metadata: { name: string } }).metadata.name : undefined;
    return `${r.method} ${r.path}${name ? (name === 'drop-budget' ? ' (budget)' : ' (claim)') : ''}`;
  });
  let from = 0;
  for (const step of steps) {
    t.same(sent.slice(from, from + step.length).sort(), [...step].sort(), `then, at once: ${step.join(', ')}`);
    from += step.length;
  }
  t.equal(sent.length, from, 'and nothing else');
  t.ok(sent.indexOf(`GET ${leases}/drop-budget`) < sent.indexOf(`POST ${leases} (budget)`), 'the budget read before it is created');
  t.match(fake.leases.get(`falco-drop/${claimName}`), {
    metadata: {
      labels: { 'app.kubernetes.io/managed-by': 'falco-drop', 'falco-drop/state': 'claim' },
      annotations: {
        'falco-drop/rule': 'terminal-shell',
        'falco-drop/pod-uid': podUid,
        'falco-drop/event-source': 'https://falco.org',
        'falco-drop/event-id': 'ce-1',
        'falco-drop/outcome': JSON.stringify({ outcomes: data.actions }),
      },
    },
    spec: { holderIdentity: 'drop-test', leaseDurationSeconds: 60 },
  });
  t.match(fake.workRequests[3]?.body, {
    type: 'Normal',
    reason: 'FalcoDropDelete',
    action: 'delete',
    regarding: { kind: 'Pod', name: 'mysql-db-7d59548d75-g9msc', namespace: 'default', uid: podUid },
    note: /deleted pod default\/mysql-db-7d59548d75-g9msc.*terminal-shell.*Terminal shell in container/,
  });
  const del = fake.workRequests[2]!;
  t.equal(del.contentType, 'application/json');
  t.equal(del.authorization, 'Bearer test-token');
  t.same(del.body, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 1, preconditions: { uid: podUid } });
  t.notOk(fake.pods.has('default/mysql-db-7d59548d75-g9msc'), 'the pod is gone');
});

t.test('keeps evt.time above 2^53 exact in the reply and the log', async (t) => {
  const { drop } = await setup(t);
  const res = await deliver(drop);
  const data = parseJson(res.body) as { alert: { evtTime: bigint } };
  t.equal(data.alert.evtTime, 1749720067118402960n);
  t.match(res.body, /"evtTime":1749720067118402960[,}]/);
  const line = drop.logs.find((l) => l.decision === 'act');
  t.equal(line?.evtTime, 1749720067118402960, 'log line parsed back (rounded by JSON.parse in this test only)');
});

t.test('writes one log line per event with id, rule, priority, target, decision, outcome and duration', async (t) => {
  const { drop } = await setup(t);
  await deliver(drop, falcoPayload(), 'log-1');
  const lines = drop.logs.filter((l) => l.decision !== undefined);
  t.equal(lines.length, 1);
  t.match(lines[0], {
    ce: { id: 'log-1', source: 'https://falco.org' },
    rule: 'Terminal shell in container',
    priority: 'Notice',
    target: 'default/mysql-db-7d59548d75-g9msc',
    decision: 'act',
    outcome: 'done',
    status: 200,
    durationMs: Number,
  });
});

t.test('answers 202 with no body and touches nothing when no response rule matches', async (t) => {
  const { fake, drop } = await setup(t);
  const res = await deliver(drop, falcoPayload({ rule: 'Write below etc', priority: 'Error' }));
  t.equal(res.statusCode, 202);
  t.equal(res.body, '');
  t.notOk(Object.keys(res.headers).some((h) => h.startsWith('ce-')), 'no ce-* headers on a non-reply');
  t.same(fake.requests, []);
});

t.test('never acts in a protected namespace, nor in its own', async (t) => {
  const { fake, drop } = await setup(t, { ownNamespace: 'falco-drop' });
  for (const ns of ['kube-system', 'knative-eventing', 'falco', 'falco-drop']) {
    fake.addPod(makePod(ns, 'victim', podUid));
    const res = await deliver(drop, falcoPayload({ fields: { 'k8s.ns.name': ns, 'k8s.pod.name': 'victim' } }));
    t.equal(res.statusCode, 202, ns);
  }
  t.same(fake.requests, [], 'not even a read');
  t.match(drop.logs.filter((l) => l.decision === 'skip').map((l) => l.msg), [/kube-system is protected/, /knative-eventing/, /falco is protected/, /falco-drop is protected/]);
});

t.test('host events and alerts without a pod are skipped', async (t) => {
  const { fake, drop } = await setup(t);
  const host = falcoPayload({ fields: { 'container.id': 'host', 'k8s.ns.name': null, 'k8s.pod.name': null } });
  t.equal((await deliver(drop, host)).statusCode, 202);
  const forged = falcoPayload({ fields: { 'k8s.ns.name': 'default', 'k8s.pod.name': '../../nodes/worker' } });
  t.equal((await deliver(drop, forged)).statusCode, 202);
  t.same(fake.requests, [], 'an invalid name is never sent to the API');
});

t.test('a pod already gone is success, never 404', async (t) => {
  const { fake, drop } = await setup(t);
  fake.pods.clear();
  const res = await deliver(drop);
  t.equal(res.statusCode, 202);
  t.same(podWrites(fake), []);
  t.match(drop.logs.find((l) => l.decision === 'skip')?.msg, /already gone/);
});

t.test('a pod deleted between the read and the delete is reported done', async (t) => {
  const { fake, drop } = await setup(t);
  fake.fail({ method: 'DELETE', path: /pods/, status: 404, body: statusBody(404, 'pods "mysql-db-7d59548d75-g9msc" not found') });
  const res = await deliver(drop);
  t.equal(res.statusCode, 200);
  t.match(JSON.parse(res.body).actions[0], { status: 'done', reason: /already gone/ });
});

t.test('acts on the pod that raised the alert, not a namesake', async (t) => {
  t.test('skips when k8s.pod.uid differs from the pod of that name', async (t) => {
    const { fake, drop } = await setup(t);
    const res = await deliver(drop, falcoPayload({ fields: { 'k8s.pod.uid': '00000000-0000-0000-0000-000000000001' } }));
    t.equal(res.statusCode, 202);
    t.same(podWrites(fake), []);
    t.match(drop.logs.find((l) => l.decision === 'skip')?.msg, /UID/);
  });
  t.test('skips when the pod has no container with the alert container id', async (t) => {
    const { fake, drop } = await setup(t);
    const res = await deliver(drop, falcoPayload({ fields: { 'container.id': 'aaaaaaaaaaaa' } }));
    t.equal(res.statusCode, 202);
    t.same(podWrites(fake), []);
  });
  t.test('sends the alert UID as the delete precondition when it matches', async (t) => {
    const { fake, drop } = await setup(t);
    const res = await deliver(drop, falcoPayload({ fields: { 'k8s.pod.uid': podUid } }));
    t.equal(res.statusCode, 200);
    t.same((podWrites(fake)[0]?.body as { preconditions: unknown }).preconditions, { uid: podUid });
  });
  t.test('a UID precondition refused by the API (a new pod took the name) is a skip', async (t) => {
    const { fake, drop } = await setup(t);
    fake.fail({ method: 'DELETE', path: /pods/, status: 409, body: statusBody(409, 'Precondition failed: UID in precondition: a, UID in object meta: b') });
    const res = await deliver(drop);
    t.equal(res.statusCode, 200);
    t.match(JSON.parse(res.body), { result: 'skipped', actions: [{ status: 'skipped', reason: /no longer the pod/ }] });
  });
});

t.test('asks the Broker to retry when the Kubernetes API cannot answer', async (t) => {
  const cases = [
    { name: '503 from the API server', fault: { status: 503 }, status: 503, retryAfter: '5' },
    { name: '500 from the API server', fault: { status: 500 }, status: 503, retryAfter: '5' },
    { name: '429 throttling, honouring its Retry-After', fault: { status: 429, headers: { 'retry-after': '7' } }, status: 429, retryAfter: '7' },
    { name: '429 throttling without Retry-After', fault: { status: 429 }, status: 429, retryAfter: '5' },
    { name: 'a broken connection', fault: { destroy: true }, status: 503, retryAfter: '5' },
    { name: 'a timeout', fault: { delayMs: 2000, status: 200 }, status: 503, retryAfter: '5' },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      // A second for each API call: the retry's calls run two at a time, on a loaded machine too.
      const { fake, drop } = await setup(t, { timeoutMs: 1000 });
      fake.fail({ method: 'DELETE', path: /pods/, ...c.fault });
      const res = await deliver(drop, falcoPayload(), `retry-${c.name}`);
      t.equal(res.statusCode, c.status);
      t.equal(res.headers['retry-after'], c.retryAfter);
      const body = JSON.parse(res.body);
      t.match(body.error.code, /^DROP_K8S_(UNAVAILABLE|THROTTLED)$/);
      t.ok(fake.pods.has('default/mysql-db-7d59548d75-g9msc'), 'the pod is still there');
      // The retry acts: a retryable failure is not remembered.
      const again = await deliver(drop, falcoPayload(), `retry-${c.name}`);
      t.equal(again.statusCode, 200);
      t.notOk(fake.pods.has('default/mysql-db-7d59548d75-g9msc'), 'deleted on the retry');
    });
  }
});

t.test('answers 503 when the API server is unreachable', async (t) => {
  const fake = await new FakeKube().start();
  const drop = await createTestApp({ fake });
  await fake.stop();
  t.teardown(() => drop.close());
  const res = await deliver(drop);
  t.equal(res.statusCode, 503);
  t.equal(res.headers['retry-after'], '5');
  t.match(JSON.parse(res.body).error.message, /unreachable/);
});

t.test('a refusal that retrying cannot fix is final (422), not 2xx', async (t) => {
  t.test('403 RBAC on delete', async (t) => {
    const { fake, drop } = await setup(t);
    fake.fail({ method: 'DELETE', path: /pods/, status: 403, body: statusBody(403, 'pods "x" is forbidden: User "system:serviceaccount:falco-drop:drop" cannot delete resource "pods"') });
    const res = await deliver(drop);
    t.equal(res.statusCode, 422);
    t.equal(res.headers['retry-after'], undefined);
    const body = JSON.parse(res.body);
    t.equal(body.error.code, 'DROP_ACTION_FAILED');
    t.match(body.error.message, /forbidden/);
    t.match(body.error.details.actions, [{ action: 'delete', status: 'failed' }]);
  });
  t.test('403 RBAC on the read', async (t) => {
    const { fake, drop } = await setup(t);
    fake.fail({ method: 'GET', path: /pods/, status: 403, body: statusBody(403, 'forbidden') });
    const res = await deliver(drop);
    t.equal(res.statusCode, 422);
    t.equal(JSON.parse(res.body).error.code, 'DROP_K8S_REJECTED');
    t.same(podWrites(fake), []);
  });
  t.test('a final failure is remembered: a redelivery gets the same answer without a new call', async (t) => {
    const { fake, drop } = await setup(t);
    fake.fail({ method: 'DELETE', path: /pods/, status: 422, body: statusBody(422, 'invalid') });
    const first = await deliver(drop, falcoPayload(), 'final-1');
    const second = await deliver(drop, falcoPayload(), 'final-1');
    t.equal(first.statusCode, 422);
    t.equal(second.statusCode, 422);
    t.equal(second.body, first.body);
    t.equal(podWrites(fake).length, 1);
  });
});

t.test('the same CloudEvent delivered again never acts twice', async (t) => {
  t.test('one after the other: answered from the first outcome', async (t) => {
    const { fake, drop } = await setup(t);
    const first = await deliver(drop, falcoPayload(), 'dup-1');
    const second = await deliver(drop, falcoPayload(), 'dup-1');
    t.equal(second.statusCode, 200);
    t.equal(second.headers['ce-id'], first.headers['ce-id'], 'the same reply event');
    t.equal(second.body, first.body);
    t.equal(podWrites(fake).length, 1);
    t.equal(drop.logs.filter((l) => l.replayed === true).length, 1);
  });
  t.test('concurrently: one delete, every copy gets the answer', async (t) => {
    const { fake, drop } = await setup(t);
    fake.fail({ method: 'GET', path: /pods/, status: 200, delayMs: 100, body: { apiVersion: 'v1', kind: 'Pod', ...makePod('default', 'mysql-db-7d59548d75-g9msc', podUid) } });
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => deliver(drop, falcoPayload(), 'dup-2')));
    t.same(answers.map((a) => a.statusCode), [200, 200, 200, 200, 200]);
    t.equal(new Set(answers.map((a) => a.headers['ce-id'])).size, 1);
    t.equal(podWrites(fake).length, 1);
  });
  t.test('the same id from another source is another event', async (t) => {
    const { fake, drop } = await setup(t);
    fake.addPod(makePod('default', 'other', 'uid-other'));
    await deliver(drop, falcoPayload(), 'dup-3');
    const other = falcoPayload({ fields: { 'k8s.pod.name': 'other' } });
    const res = await deliver(drop, other, 'dup-3', { 'ce-source': 'falco.org' });
    t.equal(res.statusCode, 200);
    t.equal(podWrites(fake).length, 2);
  });
});

t.test('dry-run decides and reports without changing anything', async (t) => {
  t.test('with a cluster: a server-side dry-run delete', async (t) => {
    const { fake, drop } = await setup(t, { dryRun: true });
    const res = await deliver(drop);
    t.equal(res.statusCode, 200);
    const data = JSON.parse(res.body);
    t.equal(data.result, 'dry-run');
    t.equal(data.dryRun, true);
    t.match(data.actions[0].reason, /would delete pod default\/mysql-db-7d59548d75-g9msc/);
    t.same((podWrites(fake)[0]?.body as { dryRun: string[] }).dryRun, ['All']);
    t.ok(fake.pods.has('default/mysql-db-7d59548d75-g9msc'), 'the pod is still there');
    t.same(fake.stateRequests, [], 'no claim and no budget either: the global dry-run writes nothing to the cluster');
  });
  t.test('without a cluster: says what it would do', async (t) => {
    const drop = await createTestApp();
    t.teardown(() => drop.close());
    const res = await deliver(drop);
    t.equal(res.statusCode, 200);
    t.match(JSON.parse(res.body), { result: 'dry-run', actions: [{ status: 'dry-run', reason: /would delete.*no cluster/ }] });
  });
  t.test('a rule marked dryRun only reports, even with the service acting', async (t) => {
    const policyYaml = 'rules:\n  - name: watch\n    dryRun: true\n    match: {rules: ["Terminal shell in container"]}\n    actions: [{action: delete}]\n';
    const { fake, drop } = await setup(t, { policyYaml });
    const res = await deliver(drop);
    t.equal(JSON.parse(res.body).result, 'dry-run');
    t.ok(fake.pods.has('default/mysql-db-7d59548d75-g9msc'));
  });
});

t.test('accepts every delivery form of a Falco alert', async (t) => {
  const payload = JSON.parse(falcoPayload({ fields: { 'evt.time': 1 } })) as Record<string, unknown>;
  const event = new CloudEvent({ id: 'form-1', source: 'https://falco.org', type: 'falco.rule.output.v1', datacontenttype: 'application/json', data: payload });
  const structured = HTTP.structured(event);
  const forms: { name: string; headers: Record<string, string>; body: string }[] = [
    { name: 'structured mode', headers: { 'content-type': 'application/cloudevents+json' }, body: String(structured.body) },
    { name: 'structured mode with a charset', headers: { 'content-type': 'application/cloudevents+json; charset=utf-8' }, body: String(structured.body) },
    { name: 'a batch', headers: { 'content-type': 'application/cloudevents-batch+json' }, body: `[${String(structured.body)}]` },
    {
      name: 'KafkaSource binary mode with no Content-Type',
      headers: { 'ce-specversion': '1.0', 'ce-id': 'partition:0/offset:42', 'ce-source': '/apis/v1/namespaces/falco/kafkasources/falco#falco-alerts', 'ce-type': 'dev.knative.kafka.event' },
      body: falcoPayload(),
    },
    { name: 'the legacy falco.org source', headers: { ...lower(brokerHeaders('form-legacy')), 'ce-source': 'falco.org' }, body: falcoPayload() },
    { name: 'plain Falco JSON (Falcosidekick webhook)', headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' }, body: `${falcoPayload()}\n` },
    {
      name: 'plain Falco JSON from Falco http_output, no uuid, hostname or evt.time',
      headers: { 'content-type': 'application/json' },
      body: '{"output":"shell","priority":"Notice","rule":"Terminal shell in container","time":"2025-06-12T09:21:07Z","output_fields":{"container.id":"2d90926af63e","k8s.ns.name":"default","k8s.pod.name":"mysql-db-7d59548d75-g9msc"}}',
    },
  ];
  for (const form of forms) {
    t.test(form.name, async (t) => {
      const { fake, drop } = await setup(t);
      const res = await drop.app.inject({ method: 'POST', url: '/', headers: form.headers, payload: form.body });
      t.equal(res.statusCode, form.name === 'a batch' ? 202 : 200, res.body);
      if (form.name.startsWith('plain')) {
        t.match(JSON.parse(res.body).alert, { cloudEvent: null, rule: 'Terminal shell in container' }, 'no CloudEvent to name');
      }
      if (form.name.includes('http_output')) t.match(JSON.parse(res.body).alert, { uuid: null, hostname: null, evtTime: null, time: '2025-06-12T09:21:07Z' });
      t.notOk(fake.pods.has('default/mysql-db-7d59548d75-g9msc'), 'the pod is deleted');
    });
  }
});

t.test('a batch answers with the most urgent failure so nothing is lost', async (t) => {
  const { fake, drop } = await setup(t);
  fake.addPod(makePod('default', 'second', 'uid-second'));
  const item = (id: string, pod: string) =>
    new CloudEvent({ id, source: 'https://falco.org', type: 'falco.rule.output.v1', datacontenttype: 'application/json', data: JSON.parse(falcoPayload({ fields: { 'evt.time': 1, 'k8s.pod.name': pod } })) as object });
  const body = JSON.stringify([item('b-1', 'mysql-db-7d59548d75-g9msc'), item('b-2', 'second')]);
  fake.fail({ method: 'DELETE', path: /second/, status: 503 });
  const first = await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/cloudevents-batch+json' }, payload: body });
  t.equal(first.statusCode, 503);
  const again = await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/cloudevents-batch+json' }, payload: body });
  t.equal(again.statusCode, 202);
  t.equal(podWrites(fake).filter((r) => r.path.endsWith('mysql-db-7d59548d75-g9msc')).length, 1, 'the first pod was deleted once');
  t.equal(fake.pods.size, 0);
  fake.fail({ method: 'DELETE', path: /pods/, status: 403 });
  fake.addPod(makePod('default', 'third', 'uid-third'));
  const final = await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/cloudevents-batch+json' }, payload: JSON.stringify([item('b-3', 'third')]) });
  t.equal(final.statusCode, 422);
  const bad = await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/cloudevents-batch+json' }, payload: JSON.stringify([item('b-4', 'third'), { specversion: '1.0', id: 'x', source: 's', type: 't', data: { rule: 'r', priority: 'Notice', output_fields: { a: {} } } }]) });
  t.equal(bad.statusCode, 400);
});

t.test('a batch of 40 alerts is decided 16 at a time, in order, and every one is answered', async (t) => {
  const { fake, drop } = await setup(t);
  // Each pod read is held 1 s, then answered 404 (the pod is gone): each alert skips.
  fake.fail({ method: 'GET', path: /\/pods\/batch-/, status: 404, body: statusBody(404, 'pods not found'), delayMs: 1000, times: 40 });
  const item = (i: number) =>
    new CloudEvent({ id: `in-turn-${i}`, source: 'https://falco.org', type: 'falco.rule.output.v1', datacontenttype: 'application/json', data: JSON.parse(falcoPayload({ fields: { 'evt.time': 1, 'k8s.pod.name': `batch-${i}` } })) as object });
  const answer = drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/cloudevents-batch+json' }, payload: JSON.stringify(Array.from({ length: 40 }, (_, i) => item(i))) });
  const reads = () => fake.requests.filter((r) => r.method === 'GET' && r.path.includes('/pods/batch-')).map((r) => Number(r.path.split('batch-')[1]));
  // The first reads are answered after 1 s: until then no alert beyond the first 16 can start.
  while (reads().length < 16) await new Promise((resolve) => setTimeout(resolve, 5));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.same(reads().sort((a, b) => a - b), Array.from({ length: 16 }, (_, i) => i), 'the first 16 alerts are at work, no more');
  const res = await answer;
  t.equal(res.statusCode, 202);
  t.same(reads().sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i), 'then every other alert in its turn');
  t.equal(drop.logs.filter((l) => (l.ce as { id?: string } | undefined)?.id?.startsWith('in-turn-')).length, 40, 'a line for each');
});

t.test('an empty batch has nothing to do: 202, not a retry', async (t) => {
  const { fake, drop } = await setup(t);
  const res = await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/cloudevents-batch+json' }, payload: '[]' });
  t.equal(res.statusCode, 202);
  t.equal(res.body, '');
  t.same(fake.requests, []);
});

t.test('rejects what is not an alert with a clear, final error', async (t) => {
  const cases = [
    { name: 'garbage', headers: { 'content-type': 'text/plain' }, body: 'hello', status: 400, code: 'DROP_NOT_AN_EVENT' },
    { name: 'JSON that is not a Falco alert', headers: { 'content-type': 'application/json' }, body: '{"hello":"world"}', status: 400, code: 'DROP_NOT_AN_EVENT' },
    { name: 'no body at all', headers: {}, body: '', status: 400, code: 'DROP_NOT_AN_EVENT' },
    { name: 'a CloudEvent without a source', headers: { 'ce-specversion': '1.0', 'ce-id': '1', 'ce-type': 't', 'content-type': 'application/json' }, body: '{}', status: 400, code: 'DROP_INVALID_CLOUDEVENT' },
    { name: 'a binary event whose JSON data is broken', headers: { ...lower(brokerHeaders('bad-json')) }, body: '{"rule":', status: 400, code: 'DROP_INVALID_JSON' },
    { name: 'a Falco alert with bad field types', headers: { 'content-type': 'application/json' }, body: '{"rule":"r","priority":"Notice","output_fields":{"a":{}}}', status: 400, code: 'DROP_INVALID_ALERT' },
    { name: 'an unknown media type with garbage', headers: { 'content-type': 'application/x-what' }, body: '<xml/>', status: 400, code: 'DROP_NOT_AN_EVENT' },
    { name: 'a malformed Content-Type header', headers: { 'content-type': '/;;;' }, body: '<xml/>', status: 400, code: 'DROP_NOT_AN_EVENT' },
  ];
  const drop = await createTestApp();
  t.teardown(() => drop.close());
  for (const c of cases) {
    const res = await drop.app.inject({ method: 'POST', url: '/', headers: c.headers, payload: c.body });
    t.equal(res.statusCode, c.status, c.name);
    t.not(res.statusCode, 415, `${c.name}: never 415`);
    t.equal(JSON.parse(res.body).error.code, c.code, c.name);
  }
});

t.test('a body over 1 MiB is 413', async (t) => {
  const drop = await createTestApp();
  t.teardown(() => drop.close());
  const res = await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/json' }, payload: `{"x":"${'a'.repeat(1024 * 1024)}"}` });
  t.equal(res.statusCode, 413);
  t.equal(JSON.parse(res.body).error.code, 'DROP_BODY_TOO_LARGE');
});

t.test('a CloudEvent that is not a Falco alert is acknowledged and ignored', async (t) => {
  const drop = await createTestApp();
  t.teardown(() => drop.close());
  const event = new CloudEvent({ id: 'other-1', source: '/somewhere', type: 'com.example.other', data: { hello: 'world' } });
  const message = HTTP.binary(event);
  const res = await drop.app.inject({ method: 'POST', url: '/', headers: message.headers as Record<string, string>, payload: String(message.body) });
  t.equal(res.statusCode, 202);
  t.equal(res.body, '');
  const empty = await drop.app.inject({ method: 'POST', url: '/', headers: { 'ce-specversion': '1.0', 'ce-id': '2', 'ce-source': '/s', 'ce-type': 't' } });
  t.equal(empty.statusCode, 202, 'an event with no data');
  t.match(drop.logs.filter((l) => l.decision === 'ignore').map((l) => l.msg), [/com.example.other/, /a t event/]);
});

t.test('health and readiness', async (t) => {
  const drop = await createTestApp();
  t.teardown(() => drop.close());
  const health = await drop.app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200);
  const ready = await drop.app.inject({ method: 'GET', url: '/readyz' });
  t.same(JSON.parse(ready.body), { status: 'ready', dryRun: true, dryRunReason: 'no cluster', senderAuthentication: null });
  const { drop: live } = await setup(t);
  const acting = await live.app.inject({ method: 'GET', url: '/readyz' });
  t.same(JSON.parse(acting.body), { status: 'ready', dryRun: false, dryRunReason: null, senderAuthentication: null });
});

t.test('closing finishes the request in flight, asks keep-alive clients to go, and turns new work away to be retried', async (t) => {
  const fake = await new FakeKube().start();
  fake.addNamespace('default');
  fake.addPod(makePod('default', 'mysql-db-7d59548d75-g9msc', podUid));
  fake.fail({ method: 'GET', path: /pods/, status: 200, delayMs: 300, body: { apiVersion: 'v1', kind: 'Pod', ...makePod('default', 'mysql-db-7d59548d75-g9msc', podUid) } });
  const drop = await createTestApp({ fake });
  t.teardown(() => fake.stop());
  await drop.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (drop.app.server.address() as { port: number }).port;
  const payload = falcoPayload();
  const head = (id: string) => `POST / HTTP/1.1\r\nHost: drop\r\nContent-Type: application/json\r\nCe-Specversion: 1.0\r\nCe-Id: ${id}\r\nCe-Source: https://falco.org\r\nCe-Type: falco.rule.output.v1\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n`;
  // A keep-alive client (queue-proxy) with a request in flight when SIGTERM arrives.
  const inFlight = sendRaw(port, Buffer.from(`${head('in-flight')}\r\n${payload}`));
  // Other connections whose requests have started arriving.
  const late = net.connect(port, '127.0.0.1');
  const probe = net.connect(port, '127.0.0.1');
  await Promise.all([once(late, 'connect'), once(probe, 'connect')]);
  late.write(head('late'));
  probe.write('GET /readyz HTTP/1.1\r\nHost: drop\r\n');
  await fake.arrived('GET', /\/pods\/mysql-db-7d59548d75-g9msc$/);
  // The partial heads on the other two connections are read on the next turns of the loop.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const started = Date.now();
  const closed = drop.close();
  late.end(`Connection: close\r\n\r\n${payload}`);
  probe.end('Connection: close\r\n\r\n');
  const chunks: Buffer[] = [];
  const probeChunks: Buffer[] = [];
  late.on('data', (c: Buffer) => chunks.push(c));
  probe.on('data', (c: Buffer) => probeChunks.push(c));
  await Promise.all([once(late, 'close'), once(probe, 'close')]);
  t.match(Buffer.concat(probeChunks).toString('utf8'), /^HTTP\/1.1 503[^]*"status":"closing"/, 'not ready while closing');
  const first = await inFlight;
  await closed;
  t.equal(first.status, 200, 'the request in flight completes');
  t.equal(first.headers.connection, 'close');
  const lateText = Buffer.concat(chunks).toString('utf8');
  t.match(lateText, /^HTTP\/1.1 503/);
  t.match(lateText, /retry-after: 1/i);
  t.match(lateText, /DROP_SHUTTING_DOWN/);
  t.ok(Date.now() - started < 2000, 'close does not wait for a keep-alive timeout');
});

t.test('an unexpected failure is a 500 the Broker retries, and is logged', async (t) => {
  const drop = await createTestApp({ policyYaml: 'rules:\n  - name: x\n    match: {}\n    actions: [{action: delete}]\n' });
  t.teardown(() => drop.close());
  // A getter that throws stands in for a bug deep in the handler.
  const payload = falcoPayload();
  const original = drop.policy.rules[0]!.actions;
  Object.defineProperty(drop.policy.rules[0]!, 'actions', { get: () => { throw new Error('boom'); } });
  const res = await drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders('bug')), payload });
  t.equal(res.statusCode, 503);
  t.ok(res.headers['retry-after']);
  t.ok(drop.logs.some((l) => l.level === 50 && /unexpected/.test(String(l.msg))));
  t.ok(original);
});

t.test('logs how old the alert is, from its time', async (t) => {
  const { drop } = await setup(t);
  await deliver(drop, falcoPayload({ time: '2025-06-12T09:21:07Z' }));
  const plain = JSON.parse(falcoPayload({ fields: { 'evt.time': 1 } })) as Record<string, unknown>;
  delete plain.time;
  await deliver(drop, JSON.stringify(plain));
  // A time that is no timestamp is refused (400), so it is decided on no more.
  t.equal((await deliver(drop, falcoPayload({ time: 'yesterday' }))).statusCode, 400);
  // No time of its own: the CloudEvent's (ce-time 09:21:07.118), as the age guard reads it.
  t.same(drop.logs.filter((l) => l.decision !== undefined).map((l) => l.alertAgeMs), [1000, 882]);
});

t.test('checks the alert container id against init and ephemeral containers too', async (t) => {
  const { fake, drop } = await setup(t);
  const pod = makePod('default', 'debugged', 'uid-d');
  (pod.status as Record<string, unknown>).ephemeralContainerStatuses = [{ name: 'debugger', containerID: `cri-o://${'abcdef123456'.padEnd(64, '7')}`, ready: false, restartCount: 0, image: 'busybox', imageID: 'x' }];
  fake.addPod(pod);
  const res = await deliver(drop, falcoPayload({ fields: { 'k8s.pod.name': 'debugged', 'container.id': 'ABCDEF123456' } }));
  t.equal(res.statusCode, 200, 'a shell in a kubectl debug container is the pod raising the alert');
  const pending = makePod('default', 'pending', 'uid-p');
  pending.status = { phase: 'Pending', containerStatuses: [{ name: 'main', ready: false, restartCount: 0, image: 'mysql:8', imageID: '' }] };
  fake.addPod(pending);
  const none = await deliver(drop, falcoPayload({ fields: { 'k8s.pod.name': 'pending' } }));
  t.equal(none.statusCode, 202, 'a pod with no started container cannot be the one that raised it');
  const fresh = makePod('default', 'fresh', 'uid-f') as Partial<ReturnType<typeof makePod>>;
  delete fresh.status;
  fake.addPod(fresh as ReturnType<typeof makePod>);
  t.equal((await deliver(drop, falcoPayload({ fields: { 'k8s.pod.name': 'fresh' } }))).statusCode, 202, 'nor a pod with no status yet');
  t.ok(fake.pods.has('default/pending'));
});

t.test('every refusal is one warning naming its CloudEvent: parsed, else as its headers name it', async (t) => {
  const { fake, drop } = await setup(t, { timeoutMs: 300 });
  fake.fail({ method: 'DELETE', path: /pods/, status: 503 });
  const cases: { id: string; body: string; headers: Record<string, string>; status: number; code: string; type: string }[] = [
    { id: 'invalid-alert', body: '{"rule":"r","priority":"Notice","output_fields":{"a":{}}}', headers: {}, status: 400, code: 'DROP_INVALID_ALERT', type: 'falco.rule.output.v1' },
    { id: 'invalid-event', body: falcoPayload(), headers: { 'ce-specversion': '0.3' }, status: 400, code: 'DROP_INVALID_CLOUDEVENT', type: 'falco.rule.output.v1' },
    { id: 'too-large', body: `{"x":"${'a'.repeat(1024 * 1024)}"}`, headers: {}, status: 413, code: 'DROP_BODY_TOO_LARGE', type: 'falco.rule.output.v1' },
    { id: 'api-down', body: falcoPayload(), headers: {}, status: 503, code: 'DROP_K8S_UNAVAILABLE', type: 'falco.rule.output.v1' },
  ];
  for (const c of cases) {
    const res = await deliver(drop, c.body, c.id, c.headers);
    t.equal(res.statusCode, c.status, c.id);
    const lines = drop.logs.filter((l) => (l.ce as { id?: string } | undefined)?.id === c.id);
    t.equal(lines.length, 1, `${c.id}: one line`);
    t.match(lines[0], { level: 40, code: c.code, status: c.status, ce: { id: c.id, source: 'https://falco.org', type: c.type }, msg: /^rejected: / }, c.id);
  }
  t.match(drop.logs.find((l) => (l.ce as { id?: string } | undefined)?.id === 'api-down'), { rule: 'Terminal shell in container', priority: 'Notice', mode: 'binary' }, 'a parsed alert is named too');
});

t.test('a refusal in a batch is logged once, with the event it is about', async (t) => {
  const { fake, drop } = await setup(t);
  fake.fail({ method: 'DELETE', path: /pods/, status: 503 });
  const item = new CloudEvent({ id: 'batch-down', source: 'https://falco.org', type: 'falco.rule.output.v1', datacontenttype: 'application/json', data: JSON.parse(falcoPayload({ fields: { 'evt.time': 1 } })) as object });
  const res = await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/cloudevents-batch+json' }, payload: JSON.stringify([item]) });
  t.equal(res.statusCode, 503);
  const rejected = drop.logs.filter((l) => /^rejected/.test(String(l.msg)));
  t.equal(rejected.length, 1);
  t.match(rejected[0], { level: 40, mode: 'batch', ce: { id: 'batch-down' }, code: 'DROP_K8S_UNAVAILABLE' });
});

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FakeKube, makePod } from './helpers/fake-kube.ts';
import { loadRequestFixture, retimed, sendRaw } from './helpers/http.ts';
import { startService as start, stopService as stop } from './helpers/service.ts';

const root = new URL('..', import.meta.url).pathname;

t.test('with no cluster, `npm start` runs in dry-run and says why in one line', async (t) => {
  const service = await start(t, {}, 'npm start');
  const dry = service.lines.filter((l) => /DRY-RUN/.test(String(l.msg)));
  t.equal(dry.length, 1);
  t.match(dry[0]?.msg, /no in-cluster service account and no kubeconfig/);
  const health = await fetch(`http://127.0.0.1:${service.port}/healthz`);
  t.equal(health.status, 200);
  const webhook = loadRequestFixture('falcosidekick-webhook.http');
  const res = await sendRaw(service.port, retimed(webhook, new Date()));
  t.equal(res.status, 200);
  t.match(JSON.parse(res.body), { result: 'dry-run', target: { namespace: 'default', pod: 'mysql-db-7d59548d75-g9msc' } });
  await stop(service, 'SIGINT');
  t.ok(service.lines.some((l) => l.msg === 'stopped'), 'Ctrl-C stops the service cleanly');
});

t.test('pointed at a Kubernetes API, a Broker delivery deletes exactly that pod', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  fake.addNamespace('default');
  fake.addPod(makePod('default', 'mysql-db-7d59548d75-g9msc', 'uid-e2e'));
  fake.addPod(makePod('default', 'mysql-db-7d59548d75-other', 'uid-other'));
  const dir = mkdtempSync(join(tmpdir(), 'drop-kubeconfig-'));
  writeFileSync(join(dir, 'config'), fake.kubeConfigYaml());
  const service = await start(t, { KUBECONFIG: join(dir, 'config'), DROP_NAMESPACE: 'falco-drop', HOSTNAME: 'drop-e2e-0', DROP_DRAIN_SECONDS: '1' });
  t.ok(service.lines.some((l) => l.msg === 'acting on the cluster' && l.cluster === fake.url));
  t.ok(service.lines.some((l) => l.state === 'cluster' && l.namespace === 'falco-drop' && l.identity === 'drop-e2e-0'), 'says where its state lives');

  const delivery = loadRequestFixture('broker-delivery.http');
  const bytes = retimed(delivery, new Date());
  const res = await sendRaw(service.port, bytes);
  t.equal(res.status, 200);
  t.equal(res.headers['ce-type'], 'dev.falcodrop.response.v1');
  t.match(res.body, /"evtTime":1749720067118402960/);
  // The Event and the outcome record are written after the answer.
  await fake.arrived('POST', /\/events$/);
  await fake.arrived('PUT', /\/leases\/drop-claim-/);
  const state = new Set(fake.stateRequests);
  t.same(fake.mutations().filter((r) => !state.has(r)).map((r) => `${r.method} ${r.path}`), [
    'DELETE /api/v1/namespaces/default/pods/mysql-db-7d59548d75-g9msc',
    'POST /apis/events.k8s.io/v1/namespaces/default/events',
  ], 'the delete, and an Event on the pod saying so');
  t.ok(state.size > 0 && [...state].every((r) => r.path.startsWith('/apis/coordination.k8s.io/v1/namespaces/falco-drop/leases')), 'its claim and budget, in its own namespace');
  const writes = fake.mutations().length;
  t.same([...fake.pods.keys()], ['default/mysql-db-7d59548d75-other'], 'only that pod');

  // The Broker redelivers: answered from the first outcome, no second delete.
  const again = await sendRaw(service.port, bytes);
  t.equal(again.status, 200);
  t.equal(again.headers['ce-id'], res.headers['ce-id']);
  t.equal(fake.mutations().length, writes, 'nothing more');

  // SIGTERM with a request in flight: it completes, then the process exits 0.
  fake.addPod(makePod('default', 'slow', 'uid-slow'));
  fake.fail({ method: 'GET', path: /slow/, delayMs: 400, status: 200, body: { apiVersion: 'v1', kind: 'Pod', ...makePod('default', 'slow', 'uid-slow') } });
  const slowBody = delivery.body.replace('mysql-db-7d59548d75-g9msc', 'slow').replace(/"time":"[^"]+"/, `"time":"${new Date().toISOString()}"`);
  const inFlight = fetch(`http://127.0.0.1:${service.port}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'slow-1', 'ce-source': 'https://falco.org', 'ce-type': 'falco.rule.output.v1' },
    body: slowBody,
  });
  await fake.arrived('GET', /\/pods\/slow$/);
  const code = stop(service);
  const slow = await inFlight;
  t.equal(slow.status, 200, 'the request in flight is finished');
  t.equal(await code, 0);
  t.notOk(fake.pods.has('default/slow'));
  const logged = service.lines.filter((l) => l.decision === 'act').map((l) => [l.target, l.outcome, l.replayed]);
  t.same(logged, [
    ['default/mysql-db-7d59548d75-g9msc', 'done', false],
    ['default/mysql-db-7d59548d75-g9msc', 'done', true],
    ['default/slow', 'done', false],
  ]);
});

t.test('DROP_DRY_RUN=true with a cluster: dry-run, and it says so', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  const dir = mkdtempSync(join(tmpdir(), 'drop-kubeconfig-'));
  writeFileSync(join(dir, 'config'), fake.kubeConfigYaml());
  const service = await start(t, { KUBECONFIG: join(dir, 'config'), DROP_DRY_RUN: 'true' });
  t.ok(service.lines.some((l) => /DRY-RUN.*DROP_DRY_RUN=true/.test(String(l.msg))));
  t.equal(await stop(service), 0);
});

t.test('an invalid policy stops startup with every problem and its place', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drop-policy-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, 'rules:\n  - name: a\n    match:\n      priority: ">=Loud"\n    actions:\n      - action: explode\n    extra: 1\n');
  const child = spawn(process.execPath, ['dist/main.js'], { cwd: root, env: { PATH: process.env.PATH, DROP_POLICY: file, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  t.equal(code, 1);
  t.match(err, `invalid policy ${file} (3 problems)`);
  t.match(err, `${file}:7:5 /rules/0/extra: unknown key "extra"`);
  t.match(err, `${file}:4:7 /rules/0/match/priority`);
  t.match(err, `${file}:6:9 /rules/0/actions/0/action: unknown action "explode"`);
});

t.test('invalid settings stop startup and name each one', async (t) => {
  const child = spawn(process.execPath, ['dist/main.js'], { cwd: root, env: { PATH: process.env.PATH, PORT: 'eighty', DROP_DRY_RUN: 'maybe' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  t.equal(code, 1);
  t.match(err, /PORT=eighty: must be a whole number/);
  t.match(err, /DROP_DRY_RUN=maybe: must be true or false/);
});

t.test('DROP_AUDIENCE: the started service refuses a caller without a token and acts for the Broker', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  fake.addNamespace('default');
  fake.addPod(makePod('default', 'mysql-db-7d59548d75-g9msc', 'uid-e2e'));
  const dir = mkdtempSync(join(tmpdir(), 'drop-kubeconfig-'));
  writeFileSync(join(dir, 'config'), fake.kubeConfigYaml());
  const service = await start(t, { KUBECONFIG: join(dir, 'config'), DROP_AUDIENCE: 'falco-drop', DROP_NAMESPACE: 'falco-drop' });
  t.ok(service.lines.some((l) => /^sender authentication on/.test(String(l.msg)) && l.audience === 'falco-drop'));
  const bytes = retimed(loadRequestFixture('broker-delivery.http'), new Date());
  const anonymous = await sendRaw(service.port, bytes);
  t.equal(anonymous.status, 401);
  t.equal(anonymous.headers['www-authenticate'], 'Bearer');
  const token = fake.addToken('system:serviceaccount:falco-drop:drop-terminal-shell-oidc-eventing.knative.dev-trigger', ['falco-drop']);
  const withToken = Buffer.from(bytes.toString('latin1').replace('\r\n', `\r\nAuthorization: Bearer ${token}\r\n`), 'latin1');
  const res = await sendRaw(service.port, withToken);
  t.equal(res.status, 200);
  t.notOk(fake.pods.has('default/mysql-db-7d59548d75-g9msc'), 'the pod is deleted');
  t.equal(await stop(service), 0);
});

t.test('without DROP_AUDIENCE the service warns that anyone who reaches it can make it act', async (t) => {
  const service = await start(t, {});
  const warning = service.lines.find((l) => /^sender authentication off/.test(String(l.msg)));
  t.equal(warning?.level, 40);
  t.notMatch(String(warning?.msg), /DROP_ALLOWED_SENDERS/, 'no word of senders nobody named');
  t.equal(await stop(service), 0);
});

t.test("release.yaml's allowed senders without DROP_AUDIENCE: the service starts and says they wait for authentication", async (t) => {
  const senders = 'system:serviceaccount:falco-drop:drop-critical-oidc-eventing.knative.dev-trigger';
  const service = await start(t, { DROP_ALLOWED_SENDERS: senders });
  const warning = service.lines.find((l) => /^sender authentication off/.test(String(l.msg)));
  t.equal(warning?.level, 40);
  t.match(String(warning?.msg), /DROP_ALLOWED_SENDERS is unused until then/);
  t.same(warning?.allowedSenders, [senders]);
  t.equal(await stop(service), 0);
});

t.test('DROP_AUDIENCE with no cluster to check tokens stops startup and says why', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'drop-home-'));
  const child = spawn(process.execPath, ['dist/main.js'], { cwd: root, env: { PATH: process.env.PATH, HOME: home, DROP_AUDIENCE: 'falco-drop' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  t.equal(code, 1);
  t.match(err, /^falco-drop: DROP_AUDIENCE=falco-drop: checking tokens needs the Kubernetes API \(TokenReview\), but no in-cluster service account and no kubeconfig at /);
});

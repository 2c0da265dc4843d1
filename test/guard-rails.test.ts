import t, { type Test } from 'tap';
import { makePod, statusBody, type FakeKube } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload, type PayloadOptions } from './helpers/falco.ts';
import { createFakeAndApp, lower, type TestApp, type TestAppOptions } from './helpers/app.ts';

function setup(t: Test, options: TestAppOptions = {}) {
  return createFakeAndApp(t, ['web-1', 'web-2', 'web-3'].map((name) => makePod('default', name, `uid-${name}`)), options);
}

let ids = 0;
function alertAbout(drop: TestApp, pod: string, options: PayloadOptions = {}) {
  const body = falcoPayload({ ...options, fields: { 'k8s.pod.name': pod, ...options.fields } });
  return drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders(`g-${++ids}`)), payload: body });
}

function podWrites(fake: FakeKube) {
  return fake.mutations().filter((r) => !r.path.startsWith('/apis/events.k8s.io/'));
}

const skipReasons = (drop: TestApp) => drop.logs.filter((l) => l.decision === 'skip').map((l) => String(l.msg));

t.test('a pod or namespace opts out with falco-drop/ignore: "true"', async (t) => {
  const { fake, drop } = await setup(t);
  const labelled = makePod('default', 'labelled', 'uid-l');
  labelled.metadata.labels = { 'falco-drop/ignore': 'true' };
  fake.addPod(labelled);
  const annotated = makePod('default', 'annotated', 'uid-a');
  annotated.metadata.annotations = { 'falco-drop/ignore': 'true' };
  fake.addPod(annotated);
  fake.addNamespace('quiet', { 'falco-drop/ignore': 'true' });
  fake.addPod(makePod('quiet', 'web', 'uid-q'));
  fake.addNamespace('noted', {}, { 'falco-drop/ignore': 'true' });
  fake.addPod(makePod('noted', 'web', 'uid-n'));
  for (const [ns, pod] of [['default', 'labelled'], ['default', 'annotated'], ['quiet', 'web'], ['noted', 'web']] as const) {
    const res = await alertAbout(drop, pod, { fields: { 'k8s.ns.name': ns } });
    t.equal(res.statusCode, 202, `${ns}/${pod}`);
  }
  t.same(fake.mutations(), [], 'nothing written, not even an Event');
  t.match(skipReasons(drop), [/pod default\/labelled opted out/, /pod default\/annotated opted out/, /namespace quiet opted out/, /namespace noted opted out/]);
});

t.test('a namespace gone under the pod is a skip; a namespace read that fails is retried', async (t) => {
  const { fake, drop } = await setup(t);
  fake.addPod(makePod('orphan', 'web', 'uid-o'));
  t.equal((await alertAbout(drop, 'web', { fields: { 'k8s.ns.name': 'orphan' } })).statusCode, 202);
  t.match(skipReasons(drop), [/namespace orphan is gone/]);
  fake.fail({ method: 'GET', path: /^\/api\/v1\/namespaces\/default$/, status: 503 });
  const res = await alertAbout(drop, 'web-1');
  t.equal(res.statusCode, 503);
  t.match(JSON.parse(res.body).error.message, /read namespace default/);
  t.same(podWrites(fake), []);
});

t.test('an alert older than the maximum age is skipped with its age', async (t) => {
  const policyYaml = 'guards: {maxAlertAgeSeconds: 60}\nrules:\n  - name: kill\n    match: {}\n    actions: [{action: delete}]\n';
  const { fake, drop } = await setup(t, { policyYaml, now: new Date('2025-06-12T09:23:07Z') });
  t.equal((await alertAbout(drop, 'web-1', { time: '2025-06-12T09:21:07Z' })).statusCode, 202);
  t.match(skipReasons(drop), [/the alert is 120 s old, older than 60 s/]);
  t.equal((await alertAbout(drop, 'web-2', { time: '2025-06-12T09:22:30Z' })).statusCode, 200, 'a younger alert acts');
  t.same(fake.requests.filter((r) => r.method !== 'GET' && r.path.includes('web-1')), []);
});

t.test('a flood of alerts about one pod makes one response per rule within the cooldown', async (t) => {
  let now = Date.parse('2025-06-12T09:21:08Z');
  const policyYaml = [
    'guards: {cooldownSeconds: 30}',
    'rules:',
    '  - name: mark',
    '    match: {}',
    '    actions: [{action: label, parameters: {labels: {suspicious: "true"}}}]',
    '  - name: note',
    '    cooldownSeconds: 300',
    '    match: {}',
    '    actions: [{action: annotate, parameters: {annotations: {seen: "yes"}}}]',
  ].join('\n');
  const { fake, drop } = await setup(t, { policyYaml, now: () => new Date(now) });
  const first = await alertAbout(drop, 'web-1');
  t.equal(first.statusCode, 200);
  t.same(JSON.parse(first.body).rules, ['mark', 'note']);
  for (let i = 0; i < 5; i++) t.equal((await alertAbout(drop, 'web-1')).statusCode, 202, `alert ${i + 2} is absorbed`);
  t.match(skipReasons(drop)[0], /cooldown: already responded to pod default\/web-1 \(mark 30 s, note 300 s left\)/);
  t.equal((await alertAbout(drop, 'web-2')).statusCode, 200, 'another pod is not cooling down');
  now += 31_000;
  const later = await alertAbout(drop, 'web-1');
  t.equal(later.statusCode, 200);
  t.same(JSON.parse(later.body).rules, ['mark'], 'only the rule whose cooldown ended responds');
  t.equal(podWrites(fake).filter((r) => r.path.endsWith('/web-1')).length, 2, 'one patch per response on web-1 (label, annotate), the third skipped as already labelled');
});

t.test('alerts about a pod that arrive while it is being acted on are skipped, not acted on again', async (t) => {
  const { fake, drop } = await setup(t);
  // A slow delete: the other alerts arrive while it is in flight.
  fake.fail({ method: 'DELETE', path: /web-1$/, delayMs: 200, status: 200, body: { apiVersion: 'v1', kind: 'Pod', ...makePod('default', 'web-1', 'uid-web-1') } });
  const answers = await Promise.all([1, 2, 3, 4].map(() => alertAbout(drop, 'web-1')));
  t.same(answers.map((a) => a.statusCode).sort(), [200, 202, 202, 202]);
  t.equal(fake.requests.filter((r) => r.method === 'DELETE').length, 1, 'one delete');
  t.equal(skipReasons(drop).filter((m) => m.includes('cooldown: already responded to pod default/web-1')).length, 3);
});

t.test('a response that failed in a way the Broker retries does not start the cooldown', async (t) => {
  const policyYaml = [
    'rules:',
    '  - name: mark',
    '    match: {}',
    '    actions: [{action: label, parameters: {labels: {suspicious: "true"}}}]',
    '  - name: kill',
    '    match: {}',
    '    actions: [{action: delete}]',
  ].join('\n');
  const { fake, drop } = await setup(t, { policyYaml });
  fake.fail({ method: 'DELETE', path: /web-1$/, status: 503 });
  const failed = await alertAbout(drop, 'web-1');
  t.equal(failed.statusCode, 503);
  const retried = await alertAbout(drop, 'web-1');
  t.equal(retried.statusCode, 200, 'the retry acts');
  t.same(JSON.parse(retried.body).rules, ['kill'], 'the rule that completed keeps its cooldown; the one that failed responds');
  t.notOk(fake.pods.has('default/web-1'));
});

t.test('past the destructive budget alerts get 429 with Retry-After and are acted on when retried', async (t) => {
  let now = Date.parse('2025-06-12T09:21:08Z');
  const policyYaml = 'guards: {destructivePerMinute: 2, maxAlertAgeSeconds: 86400}\nrules:\n  - name: kill\n    match: {}\n    actions: [{action: delete}]\n';
  const { fake, drop } = await setup(t, { policyYaml, now: () => new Date(now) });
  t.equal((await alertAbout(drop, 'web-1')).statusCode, 200);
  now += 10_000;
  t.equal((await alertAbout(drop, 'web-2')).statusCode, 200);
  const third = drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders('budget-3')), payload: falcoPayload({ fields: { 'k8s.pod.name': 'web-3' } }) });
  const res = await third;
  t.equal(res.statusCode, 429);
  t.equal(res.headers['retry-after'], '50', 'until the first slot frees');
  t.equal(JSON.parse(res.body).error.code, 'DROP_BUDGET_EXCEEDED');
  t.ok(fake.pods.has('default/web-3'), 'not deleted');
  t.ok(drop.logs.some((l) => l.level === 40 && /budget of 2 destructive actions per minute is spent/.test(String(l.msg))), 'the log says the budget tripped');
  now += 50_000;
  const retried = await drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders('budget-3')), payload: falcoPayload({ fields: { 'k8s.pod.name': 'web-3' } }) });
  t.equal(retried.statusCode, 200, 'the Broker retry is acted on');
  t.notOk(fake.pods.has('default/web-3'));
});

t.test('dry-run and non-destructive actions do not spend the budget', async (t) => {
  const policyYaml = 'guards: {destructivePerMinute: 1}\nrules:\n  - name: mark\n    match: {}\n    actions: [{action: label, parameters: {labels: {a: b}}}]\n  - name: try\n    dryRun: true\n    match: {}\n    actions: [{action: delete}]\n';
  const { drop } = await setup(t, { policyYaml });
  for (const pod of ['web-1', 'web-2', 'web-3']) t.equal((await alertAbout(drop, pod)).statusCode, 200, pod);
});

t.test('every action leaves an Event on the pod, a Warning when it failed, and a failed Event write does not fail the response', async (t) => {
  const { fake, drop } = await setup(t);
  fake.fail({ method: 'DELETE', path: /web-1/, status: 403, body: statusBody(403, 'forbidden') });
  t.equal((await alertAbout(drop, 'web-1')).statusCode, 422);
  await drop.app.background.drain();
  const warning = fake.requests.find((r) => r.path.includes('/events'))?.body as Record<string, unknown>;
  t.match(warning, { type: 'Warning', reason: 'FalcoDropDeleteFailed', regarding: { name: 'web-1' } });
  fake.fail({ method: 'POST', path: /events/, status: 500 });
  const res = await alertAbout(drop, 'web-2');
  t.equal(res.statusCode, 200, 'the pod was deleted: the answer says so');
  t.notOk(fake.pods.has('default/web-2'));
  // Events are left after the answer.
  await drop.app.background.drain();
  t.ok(drop.logs.some((l) => l.msg === 'could not record Kubernetes Events for what was done' && /delete:/.test(JSON.stringify(l.eventErrors))));
});

t.test('the global dry-run writes no Events', async (t) => {
  const { fake, drop } = await setup(t, { dryRun: true });
  t.equal((await alertAbout(drop, 'web-1')).statusCode, 200);
  t.same(fake.requests.filter((r) => r.path.includes('/events')), []);
});

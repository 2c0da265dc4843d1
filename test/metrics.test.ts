// GET /metrics (src/metrics.ts) after real alerts through the app and real calls to the fake
// API: each figure counts what happened, and the API calls counted are the ones the fake saw.
import t, { type Test } from 'tap';
import type { Decision } from '../src/decisions.ts';
import { buildAdminApp } from '../src/admin.ts';
import { apiCallKind } from '../src/kube.ts';
import { DropMetrics } from '../src/metrics.ts';
import { parsePolicy } from '../src/policy.ts';
import { createFakeAndApp, createTestApp, lower, type TestApp } from './helpers/app.ts';
import { FakeKube, makePod } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { pino } from 'pino';
import { parseMetrics, type Sample } from './helpers/metrics.ts';

/** The value of the one sample with this name and these labels (0 when there is none). */
function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found.reduce((sum, s) => sum + s.value, 0);
}

async function scrape(t: Test, metrics: DropMetrics): Promise<Sample[]> {
  const admin = buildAdminApp({ logger: pino({ level: 'silent' }), routes: [metrics.routes] });
  t.teardown(() => admin.close());
  const res = await admin.inject({ url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  return parseMetrics(res.body);
}

const pod = 'mysql-db-7d59548d75-g9msc';

t.test('after real alerts, /metrics counts what was received, decided, done and asked of the API', async (t) => {
  const metrics = new DropMetrics({ policy: parsePolicy('rules:\n  - name: terminal-shell\n    match:\n      rules: ["Terminal shell in container"]\n    actions:\n      - action: delete\n', 'p.yaml') });
  const { fake, drop } = await createFakeAndApp(t, [makePod('default', pod, 'uid-1')], { observe: metrics.observe, observeApi: metrics.observeApiCall });
  const post = (id: string, payload: string, options: Parameters<typeof brokerHeaders>[1] = {}, extra: Record<string, string> = {}) =>
    drop.app.inject({ method: 'POST', url: '/', headers: { ...lower(brokerHeaders(id, options)), ...extra }, payload });

  t.equal((await post('ev-act', falcoPayload())).statusCode, 200);
  t.equal((await post('ev-act', falcoPayload())).statusCode, 200, 'redelivered: answered from memory');
  t.equal((await post('ev-gone', falcoPayload({ fields: { 'k8s.pod.name': 'gone' } }))).statusCode, 202);
  t.equal((await post('ev-other', falcoPayload({ rule: 'Read sensitive file untrusted', priority: 'Warning' }), { rule: 'Read sensitive file untrusted' })).statusCode, 202);
  t.equal((await post('ev-kube', falcoPayload({ fields: { 'k8s.ns.name': 'kube-system' } }))).statusCode, 202);
  t.equal((await post('ev-ping', '{}', {}, { 'ce-type': 'dev.example.ping' })).statusCode, 202);
  t.equal((await post('ev-bad', '{"rule":"r","priority":"Notice","output_fields":{"a":{}}}')).statusCode, 400);
  fake.addPod(makePod('default', 'flaky', 'uid-flaky'));
  fake.fail({ method: 'GET', path: /pods\/flaky$/, status: 500 });
  t.equal((await post('ev-5xx', falcoPayload({ fields: { 'k8s.pod.name': 'flaky' } }))).statusCode, 503);
  fake.fail({ method: 'GET', path: /pods\/flaky$/, destroy: true });
  t.equal((await post('ev-cut', falcoPayload({ fields: { 'k8s.pod.name': 'flaky' } }))).statusCode, 503);

  const s = await scrape(t, metrics);
  const received = (labels: Record<string, string>) => value(s, 'falco_drop_alerts_received_total', labels);
  t.equal(received({ mode: 'binary', decision: 'act', outcome: 'done' }), 2, 'the alert and its redelivery');
  t.equal(received({ decision: 'skip', outcome: 'skipped' }), 3);
  t.equal(received({ decision: 'ignore' }), 1);
  t.equal(received({ decision: 'reject', outcome: 'refused' }), 1);
  t.equal(received({ decision: 'reject', outcome: 'retry' }), 2);
  t.equal(received({}), 9, 'every event answered');

  t.equal(value(s, 'falco_drop_decisions_total', { rule: 'terminal-shell', decision: 'act', outcome: 'done' }), 1, 'decided once: the redelivery decided nothing new');
  t.equal(value(s, 'falco_drop_decisions_total', { rule: 'terminal-shell', decision: 'skip', outcome: 'skipped' }), 2, 'gone, protected');
  t.equal(value(s, 'falco_drop_decisions_total', { rule: '(none)', decision: 'skip' }), 1, 'no rule matched');
  t.equal(value(s, 'falco_drop_actions_total', { action: 'delete', outcome: 'done' }), 1);
  t.equal(value(s, 'falco_drop_actions_total'), 1);
  t.same(
    s.filter((x) => x.name === 'falco_drop_guard_skips_total').map((x) => [x.labels.guard, x.value]).sort(),
    [['gone', 1], ['no-rule', 1], ['protected', 1]],
  );
  t.equal(value(s, 'falco_drop_answers_total', { status: '200' }), 2);
  t.equal(value(s, 'falco_drop_answers_total', { status: '202' }), 4);
  t.equal(value(s, 'falco_drop_answers_total', { status: '400' }), 1);
  t.equal(value(s, 'falco_drop_answers_total', { status: '503' }), 2);
  t.equal(value(s, 'falco_drop_answer_duration_seconds_count', { decision: 'act' }), 2);
  t.equal(value(s, 'falco_drop_answer_duration_seconds_bucket', { decision: 'act', le: '+Inf' }), 2);
  t.ok(value(s, 'falco_drop_answer_duration_seconds_sum', { decision: 'act' }) > 0);
  t.equal(value(s, 'falco_drop_falco_alerts_total', { falco_rule: 'Terminal shell in container', priority: 'Notice' }), 5, 'act, gone, protected and the two failures: not the redelivery');
  t.equal(value(s, 'falco_drop_falco_alerts_total', { falco_rule: 'Read sensitive file untrusted', priority: 'Warning' }), 1);

  // The API calls counted are the ones the fake API server saw, by resource and answer.
  const api = (labels: Record<string, string>) => value(s, 'falco_drop_kube_api_requests_total', labels);
  t.equal(api({}), fake.requests.length, `every call: ${fake.requests.length}`);
  t.equal(api({ resource: 'leases' }), fake.stateRequests.length, 'the state: claims and budget');
  t.equal(api({ resource: 'pods' }) + api({ resource: 'namespaces' }) + api({ resource: 'events' }), fake.workRequests.length, 'the work: pods, namespaces, Events');
  t.equal(api({ verb: 'get', resource: 'pods', status_class: '2xx' }), fake.requests.filter((r) => r.method === 'GET' && r.path.includes('/pods/')).length - 3);
  t.equal(api({ verb: 'get', resource: 'pods', status_class: '4xx' }), 1, 'the pod already gone: 404');
  t.equal(api({ verb: 'get', resource: 'pods', status_class: '5xx' }), 1);
  t.equal(api({ verb: 'get', resource: 'pods', status_class: 'error' }), 1, 'the connection cut: no answer');
  t.equal(api({ verb: 'delete', resource: 'pods', status_class: '2xx' }), 1);
  t.equal(api({ verb: 'create', resource: 'events', status_class: '2xx' }), 1);
  t.equal(value(s, 'falco_drop_kube_api_request_duration_seconds_count'), api({}));
  t.equal(value(s, 'falco_drop_kube_api_request_duration_seconds_bucket', { verb: 'delete', resource: 'pods', le: '+Inf' }), 1);

  t.ok(s.some((x) => x.name === 'falco_drop_process_cpu_user_seconds_total'), 'the process\'s own metrics');
  t.ok(s.some((x) => x.name === 'falco_drop_nodejs_eventloop_lag_seconds'));
  t.ok(s.every((x) => x.name.startsWith('falco_drop_')), 'every name starts falco_drop_');
  const values = s.flatMap((x) => Object.values(x.labels));
  t.notOk(values.some((v) => /ev-|uid-|flaky|kube-system|default/.test(v)), 'no id, uid, pod or namespace in any label');
});

t.test('across two replicas, a copy answered from the other\'s record counts no action again', async (t) => {
  const fake = await new FakeKube({ terminatingPods: true }).start();
  fake.addNamespace('default');
  fake.addPod(makePod('default', pod, 'uid-1'));
  const ma = new DropMetrics({ processMetrics: false });
  const mb = new DropMetrics({ processMetrics: false });
  const a = await createTestApp({ fake, identity: 'drop-a', observe: ma.observe, observeApi: ma.observeApiCall });
  const b = await createTestApp({ fake, identity: 'drop-b', observe: mb.observe, observeApi: mb.observeApiCall });
  t.teardown(async () => {
    await a.close();
    await b.close();
    await fake.stop();
  });
  const deliver = (drop: TestApp, id: string) => drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders(id)), payload: falcoPayload() });
  t.equal((await deliver(a, 'ev-copy')).statusCode, 200);
  t.equal((await deliver(b, 'ev-copy')).statusCode, 200);
  const [sa, sb] = [await scrape(t, ma), await scrape(t, mb)];
  const sum = (name: string, labels: Record<string, string> = {}) => value(sa, name, labels) + value(sb, name, labels);
  t.equal(sum('falco_drop_actions_total', { action: 'delete', outcome: 'done' }), 1, 'one delete across both');
  t.equal(value(sb, 'falco_drop_decisions_total', { rule: 'terminal-shell', outcome: 'answered-elsewhere' }), 1);
  t.equal(value(sb, 'falco_drop_state_conflicts_total', { kind: 'answered-elsewhere' }), 1);
  t.equal(sum('falco_drop_kube_api_requests_total'), fake.requests.length, 'both replicas\' calls are every call the API saw');
  t.notOk(sa.some((x) => x.name.includes('process')), 'no process metrics when asked for none');
});

t.test('conflicts: a copy answered 503 in progress, and a state write answered 409', async (t) => {
  const metrics = new DropMetrics({ processMetrics: false });
  const base: Decision = { time: '', mode: 'binary', status: 503, replayed: false, decision: 'reject', outcome: 'retry', code: 'DROP_IN_PROGRESS', rules: [], actions: [], reason: 'r', dryRun: false, durationMs: 1 };
  metrics.observe(base);
  metrics.observeApiCall({ verb: 'update', resource: 'leases', statusClass: '4xx', status: 409, seconds: 0.01 });
  metrics.observeApiCall({ verb: 'create', resource: 'leases', statusClass: '4xx', status: 409, seconds: 0.01 });
  metrics.observeApiCall({ verb: 'update', resource: 'pods', statusClass: '4xx', status: 409, seconds: 0.01 });
  const s = await scrape(t, metrics);
  t.equal(value(s, 'falco_drop_state_conflicts_total', { kind: 'in-progress' }), 1);
  t.equal(value(s, 'falco_drop_state_conflicts_total', { kind: 'write-conflict' }), 1, 'a create that finds its claim there is no conflict; a pod is no state');
});

t.test('Falco rule names are labels while there is room, then other; the policy\'s always', async (t) => {
  const policy = parsePolicy(
    'rules:\n  - name: r\n    match:\n      rules: ["Known"]\n    actions:\n      - action: delete\n  - name: s\n    match:\n      priority: ">=Critical"\n    actions:\n      - action: delete\n',
    'p.yaml',
  );
  const metrics = new DropMetrics({ policy, falcoRuleLabels: 1, processMetrics: false });
  const alert = (rule: string, priority = 'Critical'): Decision => ({
    time: '', mode: 'binary', status: 202, replayed: false, decision: 'skip', outcome: 'skipped', guard: 'no-rule', falco: { rule, priority }, rules: [], actions: [], reason: 'r', dryRun: false, durationMs: 1,
  });
  for (const rule of ['First', 'Second', 'Third', 'Known', 'First']) metrics.observe(alert(rule));
  metrics.observe(alert('Known', 'LOUD'));
  const s = await scrape(t, metrics);
  t.same(
    s.filter((x) => x.name === 'falco_drop_falco_alerts_total').map((x) => [x.labels.falco_rule, x.labels.priority, x.value]).sort(),
    [['First', 'Critical', 2], ['Known', 'Critical', 1], ['Known', 'other', 1], ['other', 'Critical', 2]],
  );
});

t.test('the verb and resource of an API path, never its names', async (t) => {
  const cases: [string, string, string, string][] = [
    ['GET', '/api/v1/namespaces/default/pods/web-1', 'get', 'pods'],
    ['GET', '/api/v1/namespaces/default/pods?labelSelector=a%3Db', 'list', 'pods'],
    ['GET', '/api/v1/namespaces/default', 'get', 'namespaces'],
    ['DELETE', '/api/v1/namespaces/default/pods/web-1', 'delete', 'pods'],
    ['DELETE', '/api/v1/namespaces/default/pods', 'deletecollection', 'pods'],
    ['POST', '/api/v1/namespaces/default/pods/web-1/eviction', 'create', 'pods/eviction'],
    ['PATCH', '/api/v1/namespaces/default/pods/web-1/ephemeralcontainers', 'patch', 'pods/ephemeralcontainers'],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/falco-drop/leases/drop-budget', 'update', 'leases'],
    ['POST', '/apis/events.k8s.io/v1/namespaces/default/events', 'create', 'events'],
    ['POST', '/apis/authentication.k8s.io/v1/tokenreviews', 'create', 'tokenreviews'],
    ['GET', '/apis/apps/v1/namespaces/default/replicasets/web', 'get', 'replicasets'],
    ['GET', '/version', 'list', 'other'],
    ['GET', '/api/v1/namespaces/default/pods/web-1/Weird', 'get', 'other'],
    ['HEAD', '/api/v1/namespaces/default/pods/web-1', 'other', 'pods'],
  ];
  for (const [method, path, verb, resource] of cases) t.same(apiCallKind(method, path), { verb, resource }, `${method} ${path}`);
});

t.test('an API call observer that throws fails no call', async (t) => {
  const { fake, drop } = await createFakeAndApp(t, [makePod('default', pod, 'uid-1')], {
    observeApi: () => {
      throw new Error('observer bug');
    },
  });
  const res = await drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders('ev-1')), payload: falcoPayload() });
  t.equal(res.statusCode, 200, res.body);
  t.notOk(fake.pods.has(`default/${pod}`), 'the pod is deleted');
});

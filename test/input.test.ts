/**
 * Input that must never lead to an action, or to a lost alert (issue 7, part 2): each case is
 * sent through the app to the fake API server, and the test asserts the answer the Broker acts
 * on (2xx done, 400 dead-lettered, 429/503 retried) and what reached the API.
 */
import t, { type Test } from 'tap';
import { makePod, type FakeKube, type FakePod } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload, type PayloadOptions } from './helpers/falco.ts';
import { createFakeAndApp, lower, type TestApp, type TestAppOptions } from './helpers/app.ts';

const killAll = 'rules:\n  - name: kill\n    match: {}\n    actions: [{action: delete}]\n';

function setup(t: Test, options: TestAppOptions = {}, pods: FakePod[] = []) {
  const web = ['web-1', 'web-2', 'web-3', 'web-4'].map((name) => makePod('default', name, `uid-${name}`));
  return createFakeAndApp(t, [...web, ...pods], options);
}

let ids = 0;
function send(drop: TestApp, body: string, headers: Record<string, string | undefined> = {}, id = `in-${++ids}`) {
  const all: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...lower(brokerHeaders(id)), ...headers })) if (value !== undefined) all[name] = value;
  return drop.app.inject({ method: 'POST', url: '/', headers: all, payload: body });
}

function alertAbout(drop: TestApp, pod: string, options: PayloadOptions = {}, id?: string) {
  return send(drop, falcoPayload({ ...options, fields: { 'k8s.pod.name': pod, ...options.fields } }), {}, id);
}

const deletes = (fake: FakeKube) => fake.workRequests.filter((r) => r.method === 'DELETE');
const skipReasons = (drop: TestApp) => drop.logs.filter((l) => l.decision === 'skip').map((l) => String(l.msg));
const errorOf = (body: string) => (JSON.parse(body) as { error: { code: string; message: string } }).error;

/** A pod that took the name of the one that raised the alert: another UID, another container. */
function replacement(name: string): FakePod {
  return makePod('default', name, `uid-${name}-new`, 'ffffffffffff');
}

t.test('a pod UID or container id of the wrong JSON type is malformed: skipped, the namesake not deleted', async (t) => {
  const { fake, drop } = await setup(t, {}, [replacement('db-0')]);
  const cases: [string, Record<string, unknown>][] = [
    ['k8s.pod.uid', { 'k8s.pod.uid': 12345 }],
    ['k8s.pod.uid', { 'k8s.pod.uid': true }],
    ['container.id', { 'container.id': 209092663 }],
    ['container.id', { 'container.id': false }],
  ];
  for (const [key, fields] of cases) {
    // falcoPayload takes strings and numbers; a boolean is written into the JSON text.
    const body = falcoPayload({ fields: { 'k8s.pod.name': 'db-0', [key]: 'TYPED' } }).replace('"TYPED"', String(fields[key]));
    const res = await send(drop, body);
    t.equal(res.statusCode, 202, `${key}: ${String(fields[key])}`);
  }
  t.same(deletes(fake), [], 'nothing deleted');
  t.ok(fake.pods.has('default/db-0'));
  t.match(skipReasons(drop), [
    /k8s\.pod\.uid is the number 12345, not a string/,
    /k8s\.pod\.uid is the boolean true, not a string/,
    /container\.id is the number 209092663, not a string/,
    /container\.id is the boolean false, not a string/,
  ]);
  t.same(fake.requests, [], 'not even read: a malformed alert never reaches the API');
});

t.test("an alert time that is not RFC 3339 is a 400 that switches no guard off, even with a CloudEvent time", async (t) => {
  // The CloudEvent says 09:21:07, an hour before the clock: the age guard would skip it.
  const { fake, drop } = await setup(t, { now: new Date('2025-06-12T10:21:08Z') });
  for (const time of ['garbage', '2025-06-12T10:21:07', '12/06/2025 10:21:07']) {
    const res = await alertAbout(drop, 'web-1', { time });
    t.equal(res.statusCode, 400, time);
    t.match(errorOf(res.body), { code: 'DROP_INVALID_ALERT', message: `the Falco payload is invalid: time ${JSON.stringify(time)} is not an RFC 3339 timestamp` });
  }
  t.same(fake.requests, []);
  t.ok(fake.pods.has('default/web-1'));
});

t.test("an alert more than 60 s ahead of drop's clock is a 400; within 60 s it is clock skew", async (t) => {
  const { fake, drop } = await setup(t, { policyYaml: killAll });
  const ahead = await alertAbout(drop, 'web-1', { time: '2025-06-12T09:23:00Z' }, 'ahead');
  t.equal(ahead.statusCode, 400);
  t.match(errorOf(ahead.body), { code: 'DROP_INVALID_ALERT', message: "the Falco payload is invalid: its time 2025-06-12T09:23:00.000Z is 112 s ahead of drop's clock" });
  t.equal((await alertAbout(drop, 'web-1', { time: '2025-06-12T09:23:00Z' }, 'ahead')).statusCode, 400, 'a redelivery is answered the same');
  t.same(fake.requests, [], 'a forged future time never reaches the API');
  const skewed = await alertAbout(drop, 'web-2', { time: '2025-06-12T09:22:05Z' });
  t.equal(skewed.statusCode, 200, '57 s ahead is clock skew: acted on');
  t.notOk(fake.pods.has('default/web-2'));
});

t.test('an alert with no time, nor a CloudEvent time, is a 400; the CloudEvent time stands in for a missing one', async (t) => {
  const { fake, drop } = await setup(t, { policyYaml: killAll, now: new Date('2025-06-12T10:21:08Z') });
  const timeless = (pod: string) => {
    const payload = JSON.parse(falcoPayload({ fields: { 'k8s.pod.name': pod, 'evt.time': 1 } })) as Record<string, unknown>;
    delete payload.time;
    return JSON.stringify(payload);
  };
  const plain = await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/json' }, payload: timeless('web-1') });
  t.equal(plain.statusCode, 400, 'plain JSON (Falco http_output) with no time');
  t.match(errorOf(plain.body), { code: 'DROP_INVALID_ALERT', message: /^the Falco payload is invalid: it has no valid time \(neither its own "time" nor its CloudEvent's\)/ });
  const binary = await send(drop, timeless('web-2'), { 'ce-time': undefined });
  t.equal(binary.statusCode, 400, 'a binary event with no ce-time either');
  t.same(fake.requests, [], 'neither reached the API: without a time the age guard could not apply');
  const old = await send(drop, timeless('web-3'));
  t.equal(old.statusCode, 202, "the CloudEvent's time (an hour old) is judged instead");
  t.match(skipReasons(drop), [/the alert is 3601 s old, older than 900 s/]);
  const recent = await send(drop, timeless('web-4'), { 'ce-time': '2025-06-12T10:21:00Z' });
  t.equal(recent.statusCode, 200, "a recent CloudEvent time: acted on");
  t.match(JSON.parse(recent.body).alert, { time: null, cloudEvent: { type: 'falco.rule.output.v1' } }, 'the reply says the alert had no time of its own');
  t.notOk(fake.pods.has('default/web-4'));
});

t.test('a pod created after the alert cannot have raised it: skipped, allowing 5 s of clock skew', async (t) => {
  // A k8s_audit alert carries no UID and no container id: the pod's creation time is all that
  // tells the pod the exec went into from the StatefulSet's replacement with the same name.
  const created = (name: string, creationTimestamp: string): FakePod => {
    const pod = makePod('default', name, `uid-${name}`);
    Object.assign(pod.metadata, { creationTimestamp });
    return pod;
  };
  const unstamped = created('db-4', '');
  delete (unstamped.metadata as { creationTimestamp?: string }).creationTimestamp;
  const pods = [created('db-0', '2025-06-12T09:25:00Z'), created('db-1', '2025-06-12T09:21:13Z'), created('db-2', '2025-06-12T09:21:12Z'), created('db-3', '2025-06-12T08:00:00Z'), unstamped];
  const { fake, drop } = await setup(t, { policyYaml: killAll, now: new Date('2025-06-12T09:30:00Z') }, pods);
  const exec = (pod: string) =>
    send(
      drop,
      falcoPayload({
        rule: 'Attach/Exec Pod',
        priority: 'Notice',
        source: 'k8s_audit',
        time: '2025-06-12T09:21:07.118Z',
        onlyFields: { 'ka.target.resource': 'pods', 'ka.target.subresource': 'exec', 'ka.target.namespace': 'default', 'ka.target.name': pod, 'ka.user.name': 'mallory', 'ka.verb': 'create' },
      }),
    );
  t.equal((await exec('db-0')).statusCode, 202, 'a replacement created four minutes after the alert');
  t.equal((await exec('db-1')).statusCode, 202, 'created 5.9 s after the alert: more than the skew allowed');
  t.equal((await exec('db-2')).statusCode, 200, 'created 4.9 s after the alert: within the skew, acted on');
  t.equal((await exec('db-3')).statusCode, 200, 'created before the alert: acted on');
  t.equal((await exec('db-4')).statusCode, 200, 'a pod the API shows no creation time for is judged by the other checks');
  t.match(skipReasons(drop), [
    'pod default/db-0 was created at 2025-06-12T09:25:00.000Z, after the alert (2025-06-12T09:21:07.118Z): it cannot have raised it',
    'pod default/db-1 was created at 2025-06-12T09:21:13.000Z, after the alert (2025-06-12T09:21:07.118Z): it cannot have raised it',
  ]);
  t.same(
    deletes(fake).map((r) => r.path),
    ['/api/v1/namespaces/default/pods/db-2', '/api/v1/namespaces/default/pods/db-3', '/api/v1/namespaces/default/pods/db-4'],
  );
  t.ok(fake.pods.has('default/db-0'));
});

t.test('a falco.rule.output.v1 event whose payload has a wrong type is a 400, dead-lettered, never 202', async (t) => {
  const { fake, drop } = await setup(t);
  const cases: { name: string; body: string; message: string }[] = [
    { name: 'a numeric priority', body: '{"rule":"Terminal shell in container","priority":5,"output_fields":{}}', message: 'priority must be a string; it is a number' },
    { name: 'a numeric rule', body: '{"rule":123,"priority":"Notice","output_fields":{}}', message: 'rule must be a string; it is a number' },
    { name: 'output_fields a string', body: '{"rule":"r","priority":"Notice","output_fields":"x"}', message: 'output_fields must be an object; it is a string' },
    { name: 'no output_fields', body: '{"rule":"r","priority":"Notice"}', message: 'output_fields must be an object; it is missing' },
    { name: 'an empty object', body: '{}', message: 'rule must be a string; it is missing' },
    { name: 'an array', body: '[]', message: "a falco.rule.output.v1 event's data must be a JSON object" },
    { name: 'a JSON string', body: '"A shell was spawned"', message: "a falco.rule.output.v1 event's data must be a JSON object" },
    { name: 'no data at all', body: '', message: 'a falco.rule.output.v1 event must carry a Falco payload; it has no data' },
  ];
  for (const c of cases) {
    const res = await send(drop, c.body);
    t.equal(res.statusCode, 400, c.name);
    t.same(errorOf(res.body), { code: 'DROP_INVALID_ALERT', message: `the Falco payload is invalid: ${c.message}` }, c.name);
  }
  t.same(fake.requests, []);
  t.same(drop.logs.filter((l) => l.decision === 'ignore'), [], 'none was ignored as "not a Falco alert"');
});

t.test('other senders: what tries to be a Falco alert with a wrong type is a 400; an unrelated event stays 202', async (t) => {
  const { drop } = await setup(t);
  const kafka = { 'ce-type': 'dev.knative.kafka.event', 'ce-source': '/apis/v1/namespaces/falco/kafkasources/falco#alerts', 'content-type': undefined };
  const trying = await send(drop, '{"rule":"Terminal shell in container","priority":5}', kafka);
  t.equal(trying.statusCode, 400, 'a KafkaSource event with rule and a numeric priority');
  t.equal(errorOf(trying.body).code, 'DROP_INVALID_ALERT');
  const plain = await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/json' }, payload: '{"rule":"r","output_fields":"x"}' });
  t.same(errorOf(plain.body), { code: 'DROP_INVALID_ALERT', message: 'the Falco payload is invalid: priority must be a string; it is missing' }, 'plain JSON with rule and output_fields');
  const unrelated = await send(drop, '{"hello":"world","priority":1}', { 'ce-type': 'com.example.other' });
  t.equal(unrelated.statusCode, 202, 'a valid CloudEvent of another type with unrelated data');
});

t.test('binary mode with a Content-Type that is not JSON, or none, still reads a Falco alert by its shape', async (t) => {
  const { fake, drop } = await setup(t);
  const types: [string, string | undefined][] = [
    ['web-1', 'text/plain'],
    ['web-2', 'application/octet-stream'],
    ['web-3', 'application/x-www-form-urlencoded'],
    ['web-4', undefined],
  ];
  for (const [pod, contentType] of types) {
    const res = await send(drop, falcoPayload({ fields: { 'k8s.pod.name': pod, 'container.id': '2d90926af63e' } }), { 'content-type': contentType });
    t.equal(res.statusCode, 200, String(contentType));
    t.notOk(fake.pods.has(`default/${pod}`), `${String(contentType)}: the pod is deleted`);
  }
  const broken = await send(drop, '{"rule":', { 'content-type': 'application/json' });
  t.equal(broken.statusCode, 400, 'a declared JSON type that does not parse stays a 400');
  t.equal(errorOf(broken.body).code, 'DROP_INVALID_JSON');
  const text = await send(drop, 'Notice A shell was spawned', { 'content-type': 'text/plain' });
  t.equal(text.statusCode, 400, 'text that is no alert, in a falco.rule.output.v1 event, is not a Falco payload');
});

t.test('binary mode with a Content-Type that is no media type at all reads the Falco alert by its shape, never a 400', async (t) => {
  const { fake, drop } = await setup(t);
  const types: [string, string][] = [
    ['web-1', ''],
    ['web-2', ';'],
    ['web-3', 'garbage'],
    ['web-4', '/json'],
  ];
  for (const [pod, contentType] of types) {
    const res = await send(drop, falcoPayload({ fields: { 'k8s.pod.name': pod, 'container.id': '2d90926af63e' } }), { 'content-type': contentType });
    t.equal(res.statusCode, 200, JSON.stringify(contentType));
    t.notOk(fake.pods.has(`default/${pod}`), `${JSON.stringify(contentType)}: the pod is deleted`);
  }
});

t.test('CloudEvents conformance: a bad time or encoding is a 400; null attributes are absent', async (t) => {
  const { fake, drop } = await setup(t);
  const local = await send(drop, falcoPayload(), { 'ce-time': '2025-06-12T09:21:07' });
  t.equal(local.statusCode, 400, 'ce-time without a UTC offset');
  t.match(errorOf(local.body), { code: 'DROP_INVALID_CLOUDEVENT', message: 'binary-mode event: time "2025-06-12T09:21:07" is not an RFC 3339 timestamp with a UTC offset' });
  for (const value of ['%FF', '%C3%28']) {
    const res = await send(drop, falcoPayload(), { 'ce-rule': `Terminal shell ${value}` });
    t.equal(res.statusCode, 400, value);
    t.equal(errorOf(res.body).code, 'DROP_INVALID_CLOUDEVENT', value);
  }
  t.same(fake.requests, []);
  const bare = await send(drop, falcoPayload({ fields: { 'k8s.pod.name': 'web-1' } }), { 'ce-rule': 'CPU > 90%', 'ce-subject': '50%off' });
  t.equal(bare.statusCode, 200, 'a bare % is kept as sent');

  const attributes = { specversion: '1.0', id: 'structured-nulls', source: 'https://falco.org', type: 'falco.rule.output.v1' };
  const structured = (extra: Record<string, unknown>, pod: string) =>
    drop.app.inject({
      method: 'POST',
      url: '/',
      headers: { 'content-type': 'application/cloudevents+json' },
      payload: `${JSON.stringify({ ...attributes, ...extra }).slice(0, -1)},"data":${falcoPayload({ fields: { 'k8s.pod.name': pod } })}}`,
    });
  const nulls = await structured({ time: null, subject: null, datacontenttype: null, dataschema: null, rule: null }, 'web-2');
  t.equal(nulls.statusCode, 200, 'null optional attributes and extensions are absent');
  t.notOk(fake.pods.has('default/web-2'));
  const both = await structured({ id: 'both', data_base64: Buffer.from(falcoPayload()).toString('base64') }, 'web-3');
  t.equal(both.statusCode, 400, 'data and data_base64 together');
  t.equal(errorOf(both.body).code, 'DROP_INVALID_CLOUDEVENT');
  t.ok(fake.pods.has('default/web-3'));
  const badName = await structured({ id: 'bad-name', 'Bad-Name': null }, 'web-4');
  t.equal(badName.statusCode, 400, 'a member that can be no attribute is invalid, even when null');
  t.equal(errorOf(badName.body).code, 'DROP_INVALID_CLOUDEVENT');
  t.ok(fake.pods.has('default/web-4'));
});

t.test('redeliveries of an alert whose delete keeps failing give back the budget: an unrelated alert still acts', async (t) => {
  const { fake, drop } = await setup(t);
  fake.fail({ method: 'DELETE', path: /pods/, status: 503, times: 30 });
  for (let i = 0; i < 30; i++) {
    const res = await alertAbout(drop, 'web-1', {}, 'failing');
    if (res.statusCode !== 503) t.fail(`delivery ${i + 1} answered ${res.statusCode}`);
  }
  t.equal(deletes(fake).length, 30, 'every redelivery tried the delete');
  const unrelated = await alertAbout(drop, 'web-2');
  t.equal(unrelated.statusCode, 200, 'the budget of 30 per minute was not spent by deletes that did not happen');
  t.notOk(fake.pods.has('default/web-2'));
  const retried = await alertAbout(drop, 'web-1', {}, 'failing');
  t.equal(retried.statusCode, 200, 'the failing alert acts once the API recovers');
});

t.test('a destructive action that was done keeps its slot when a later one fails and is retried', async (t) => {
  const policyYaml = [
    'guards: {destructivePerMinute: 4}',
    'rules:',
    '  - name: quarantine',
    '    match: {}',
    '    actions: [{action: isolate}]',
    '  - name: kill',
    '    match: {}',
    '    actions: [{action: delete}]',
  ].join('\n');
  const { fake, drop } = await setup(t, { policyYaml });
  fake.fail({ method: 'DELETE', path: /web-1$/, status: 503 });
  t.equal((await alertAbout(drop, 'web-1')).statusCode, 503, 'isolated, then the delete failed');
  t.equal((await alertAbout(drop, 'web-2')).statusCode, 200, 'two more slots: three of four spent');
  const third = await alertAbout(drop, 'web-3');
  t.equal(third.statusCode, 429, "the isolation of web-1 still counts: web-3's two actions do not fit");
  t.equal(errorOf(third.body).code, 'DROP_BUDGET_EXCEEDED');
});

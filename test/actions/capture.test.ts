/**
 * `capture` against the fake API server over real HTTP: what it asks the API for (pods/log with
 * its query, Secrets in drop's namespace), what it keeps within its bounds, and what a failure
 * does to the actions after it.
 */
import t, { type Test } from 'tap';
import { captured, type ActionOutcome } from '../../src/actions/action.ts';
import { captureAction, maxContainerLogBytes } from '../../src/actions/capture.ts';
import { clipLogTail, jsonBytes } from '../../src/actions/log-tail.ts';
import { captureAnnotations, captureName, EvidenceStore, type PodCapture } from '../../src/state/evidence.ts';
import { statusBody, type FakePod } from '../helpers/fake-kube.ts';
import { cluster, podName, podUid, replicaSetPod, validator } from './context.ts';

const ns = 'falco-drop';
const event = { source: 'https://falco.org', id: 'evt-1' };
const logPath = `/api/v1/namespaces/default/pods/${podName}/log`;
const secrets = `/api/v1/namespaces/${ns}/secrets`;
const secretName = captureName(event, 'quarantine-shells');

/** A pod with two containers (the alert came from the sidecar), a finished init container and one that never ran. */
function multiPod(): FakePod {
  const pod = replicaSetPod();
  const running = { running: { startedAt: '2025-06-12T08:00:02Z' } };
  const id = (prefix: string) => `containerd://${prefix}${'0'.repeat(64 - prefix.length)}`;
  pod.spec.containers = [{ name: 'main', image: 'mysql:8' }, { name: 'sidecar', image: 'envoy:1' }];
  pod.spec.initContainers = [{ name: 'migrate', image: 'migrate:1' }, { name: 'never', image: 'never:1' }];
  pod.status.containerStatuses = [
    { name: 'main', state: running, ready: true, restartCount: 0, image: 'mysql:8', imageID: 'x', containerID: id('aaaa') },
    { name: 'sidecar', state: running, ready: true, restartCount: 0, image: 'envoy:1', imageID: 'x', containerID: id('2d90926af63e') },
  ];
  pod.status.initContainerStatuses = [
    { name: 'migrate', state: { terminated: { exitCode: 0, reason: 'Completed' } }, ready: false, restartCount: 0, image: 'migrate:1', imageID: 'x', containerID: id('bbbb') },
    { name: 'never', state: { waiting: { reason: 'PodInitializing' } }, ready: false, restartCount: 0, image: 'never:1', imageID: 'x' },
  ];
  return pod;
}

async function setup(t: Test, pod: FakePod = multiPod()) {
  const c = await cluster(t, pod);
  c.fake.addNamespace(ns);
  const evidence = new EvidenceStore({ core: c.kube.core, namespace: ns, clock: { now: () => new Date() }, retryAfterSeconds: 7 });
  const context = async (overrides = {}) => c.context({ event, evidence, ...overrides });
  return { ...c, evidence, context };
}

const logRequests = (fake: { requests: { method: string; path: string; query: Record<string, string> }[] }) =>
  fake.requests.filter((r) => r.path === logPath).map((r) => r.query);

function capturedBy(outcome: ActionOutcome): PodCapture {
  return outcome[captured] as PodCapture;
}

/** `n` numbered lines of `width` bytes each (newline included). */
function lines(n: number, width = 100, from = 0): string {
  return Array.from({ length: n }, (_v, i) => `line ${String(from + i).padStart(7, '0')} `.padEnd(width - 1, 'x') + '\n').join('');
}

t.test('declares pods/log get, is not destructive, and takes only `required`', async (t) => {
  t.same(captureAction.permissions, [{ apiGroup: '', resource: 'pods/log', verbs: ['get'] }]);
  t.equal(captureAction.destructive, false);
  const valid = validator(captureAction);
  t.ok(valid({}));
  t.ok(valid({ required: true }));
  t.notOk(valid({ required: 'yes' }));
  t.notOk(valid({ tailLines: 10 }));
});

t.test('reads each container that ran, the alert\'s first, and keeps manifest and logs in a Secret', async (t) => {
  const { fake, context } = await setup(t);
  fake.setLog('default', podName, 'main', 'main starting\nready\n');
  fake.setLog('default', podName, 'sidecar', 'GET /healthz 200\nexec bash\n');
  fake.setLog('default', podName, 'migrate', 'migrated 3 tables\n');
  const outcome = await captureAction.run(await context(), {});

  t.match(outcome, { action: 'capture', status: 'done', reason: `kept in Secret ${ns}/${secretName}: pod default/${podName}, manifest, logs of 3 containers (0.1 KiB)` });
  // The container is always named (the API requires it once a pod has several), previous is left
  // at its default (false: the running instance), and every read is bounded.
  t.same(logRequests(fake), ['sidecar', 'main', 'migrate'].map((container) => ({ container, tailLines: '1000', limitBytes: '262144' })));
  const capture = capturedBy(outcome);
  t.same(
    capture.logs.map((l) => [l.container, l.type, l.log, l.truncated, l.note]),
    [
      ['sidecar', 'container', 'GET /healthz 200\nexec bash\n', false, undefined],
      ['main', 'container', 'main starting\nready\n', false, undefined],
      ['migrate', 'initContainer', 'migrated 3 tables\n', false, undefined],
      ['never', 'initContainer', '', false, 'no log: the container has not started'],
    ],
  );
  t.same(capture.pod, { namespace: 'default', name: podName, uid: podUid });
  t.equal(capture.secret, `${ns}/${secretName}`);
  t.equal((capture.manifest.metadata as { managedFields?: unknown }).managedFields, undefined, 'managedFields left out');
  t.equal((capture.manifest.metadata as { creationTimestamp: string }).creationTimestamp, '2025-06-12T08:00:00Z', 'times as the API writes them');
  t.match(capture.manifest, { apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'main' }, { name: 'sidecar' }] } });

  const post = fake.requests.find((r) => r.method === 'POST' && r.path === secrets);
  t.match(post?.body, {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: secretName,
      namespace: ns,
      labels: { 'app.kubernetes.io/managed-by': 'falco-drop', 'falco-drop/state': 'capture' },
      annotations: {
        [captureAnnotations.rule]: 'quarantine-shells',
        [captureAnnotations.podUid]: podUid,
        [captureAnnotations.eventSource]: event.source,
        [captureAnnotations.eventId]: event.id,
      },
    },
  });
  const data = fake.secretData(ns, secretName)!;
  t.same(Object.keys(data).sort(), ['capture.json', 'main.log', 'migrate.log', 'never.log', 'pod.json', 'sidecar.log']);
  t.equal(data['sidecar.log']!.toString(), 'GET /healthz 200\nexec bash\n');
  t.same(JSON.parse(data['pod.json']!.toString()), capture.manifest);
  t.match(JSON.parse(data['capture.json']!.toString()), { pod: capture.pod, rule: 'quarantine-shells', logs: [{ container: 'sidecar', bytes: 27 }] });
  t.equal(JSON.parse(data['capture.json']!.toString()).logs[0].log, undefined, 'the logs are in their own keys, not repeated');
});

t.test('a single-container pod: the container is named all the same', async (t) => {
  const { fake, context } = await setup(t, replicaSetPod());
  fake.setLog('default', podName, 'main', 'only\n');
  const outcome = await captureAction.run(await context({ target: { namespace: 'default', name: podName, uid: undefined, containerId: undefined } }), {});
  t.same(logRequests(fake), [{ container: 'main', tailLines: '1000', limitBytes: '262144' }]);
  t.same(capturedBy(outcome).logs.map((l) => l.log), ['only\n']);
});

t.test('a crash-looping container: the log of its last run', async (t) => {
  const pod = replicaSetPod();
  pod.status.containerStatuses![0]!.state = { waiting: { reason: 'CrashLoopBackOff' } };
  pod.status.containerStatuses![0]!.lastState = { terminated: { exitCode: 137, reason: 'Error' } };
  const { fake, context } = await setup(t, pod);
  fake.setLog('default', podName, 'main', 'panic: oops\n');
  const outcome = await captureAction.run(await context(), {});
  t.same(capturedBy(outcome).logs.map((l) => l.log), ['panic: oops\n']);
});

t.test('a failure that is no API answer is a bug: thrown, not an outcome', async (t) => {
  const { fake, context } = await setup(t, replicaSetPod());
  fake.setLog('default', podName, 'main', 'hello\n');
  const broken = { namespace: ns, sweep: async () => 0, keep: async () => Promise.reject(new TypeError('a bug')) } as unknown as EvidenceStore;
  await t.rejects(captureAction.run(await context({ evidence: broken }), {}), TypeError);
});

t.test('keeps the last 64 KiB of a longer log, from the start of a line', async (t) => {
  const { fake, context } = await setup(t, replicaSetPod());
  const log = lines(900); // 90,000 bytes
  fake.setLog('default', podName, 'main', log);
  const [logged] = capturedBy(await captureAction.run(await context(), {})).logs;
  t.equal(logRequests(fake).length, 1, 'one read: 900 lines fit in what a read brings');
  // Counted as in the reply's JSON, where each newline takes 2 bytes (\n): 648 lines of 101.
  t.equal(logged!.bytes, 64800);
  t.equal(jsonBytes(logged!.log), 65448);
  t.ok(log.endsWith(logged!.log), 'the end of the log');
  t.match(logged!.log, /^line \d{7} x/, 'starts with a whole line');
  t.equal(logged!.truncated, true);
});

t.test('asks for fewer lines when the last 1000 pass what one read brings, and keeps the true end', async (t) => {
  const { fake, context } = await setup(t, replicaSetPod());
  const log = lines(2000, 1024); // 2 MiB of 1 KiB lines
  fake.setLog('default', podName, 'main', log);
  const [logged] = capturedBy(await captureAction.run(await context(), {})).logs;
  // The first read is cut after 256 lines (256 KiB): the second asks for half of those.
  t.same(logRequests(fake).map((q) => q.tailLines), ['1000', '127']);
  t.ok(log.endsWith(logged!.log));
  t.match(logged!.log, /^line 0001937 /);
  t.equal(logged!.bytes, 63 * 1024);
});

t.test('a last line longer than a read: what the reads brought, marked truncated', async (t) => {
  const { fake, context } = await setup(t, replicaSetPod());
  fake.setLog('default', podName, 'main', `start\n${'y'.repeat(600 * 1024)}`);
  const [logged] = capturedBy(await captureAction.run(await context(), {})).logs;
  t.same(logRequests(fake).map((q) => q.tailLines), ['1000', '500', '250', '125']);
  t.equal(logged!.bytes, maxContainerLogBytes);
  t.equal(logged!.truncated, true);
});

t.test('keeps 256 KiB of logs in all: the containers past it are cut, and say why', async (t) => {
  const pod = replicaSetPod();
  const names = ['a', 'b', 'c', 'd', 'e', 'f'];
  pod.spec.containers = names.map((name) => ({ name, image: 'busybox' }));
  pod.status.containerStatuses = names.map((name) => ({ name, state: { running: {} }, ready: true, restartCount: 0, image: 'busybox', imageID: 'x' }));
  const { fake, context } = await setup(t, pod);
  for (const name of names) fake.setLog('default', podName, name, lines(500, 200)); // 100,000 bytes each
  const outcome = await captureAction.run(await context(), {});
  const logs = capturedBy(outcome).logs;
  // 326 lines of 201 JSON bytes each fill 64 KiB; the fifth gets the 40 bytes left, the sixth none.
  t.same(logs.map((l) => l.bytes), [65200, 65200, 65200, 65200, 39, 0]);
  t.equal(logs.reduce((n, l) => n + jsonBytes(l.log), 0), 256 * 1024);
  t.match(logs[4], { truncated: true, note: 'cut to 40 bytes: the capture keeps 262144 bytes of logs in all' });
  t.match(logs[5], { truncated: true, note: 'cut to 0 bytes: the capture keeps 262144 bytes of logs in all' });
  const stored = fake.secretData(ns, secretName)!;
  t.equal(stored['f.log']!.length, 0);
  const bytes = Object.entries(stored).filter(([k]) => k.endsWith('.log')).reduce((n, [, v]) => n + v.length, 0);
  t.ok(bytes <= 256 * 1024, `${bytes} bytes of logs in the Secret`);
});

t.test('reads at most 8 containers', async (t) => {
  const pod = replicaSetPod();
  const names = Array.from({ length: 10 }, (_v, i) => `c${i}`);
  pod.spec.containers = names.map((name) => ({ name, image: 'busybox' }));
  pod.status.containerStatuses = names.map((name) => ({ name, state: { running: {} }, ready: true, restartCount: 0, image: 'busybox', imageID: 'x' }));
  const { fake, context } = await setup(t, pod);
  for (const name of names) fake.setLog('default', podName, name, `${name}\n`);
  const logs = capturedBy(await captureAction.run(await context(), {})).logs;
  t.equal(logRequests(fake).length, 8);
  t.same(logs.slice(8).map((l) => l.note), ['not read: at most 8 containers are read', 'not read: at most 8 containers are read']);
});

t.test('whatever the pod logs, the log is valid UTF-8 in JSON and within its bytes there', async (t) => {
  const { fake, context } = await setup(t, replicaSetPod());
  // Control characters (6 bytes each in JSON), bytes that are no UTF-8, quotes, emoji.
  const hostile = Buffer.concat(Array.from({ length: 20_000 }, (_v, i) => Buffer.from([0x01, 0xff, 0x22, 0xf0, 0x9f, 0x98, 0x80, i % 50 === 0 ? 0x0a : 0x5c])));
  fake.setLog('default', podName, 'main', hostile);
  const outcome = await captureAction.run(await context(), {});
  const [logged] = capturedBy(outcome).logs;
  const json = JSON.stringify(logged!.log);
  t.ok(Buffer.byteLength(json) - 2 <= maxContainerLogBytes, `${Buffer.byteLength(json)} bytes in JSON`);
  t.ok(Buffer.byteLength(json) - 2 > maxContainerLogBytes - 1000, 'as much as fits');
  t.equal(Buffer.from(json, 'utf8').toString('utf8'), json, 'valid UTF-8');
  t.ok(logged!.log.includes('\u0001\uFFFD"😀'), 'the text as it was written, an invalid byte read as U+FFFD');
  t.ok(/^[^\uD800-\uDFFF]|^$/.test(logged!.log) || logged!.log.codePointAt(0)! > 0xffff, 'no half of a surrogate pair at the start');
});

t.test('a container the kubelet has no log for is a note, not a failure', async (t) => {
  const { fake, context } = await setup(t, replicaSetPod());
  // No log set: the fake answers 400 "waiting to start", as the kubelet does.
  const outcome = await captureAction.run(await context(), {});
  t.equal(outcome.status, 'done');
  t.match(capturedBy(outcome).logs[0], { log: '', note: /Kubernetes answered 400: container "main" in pod ".*" is waiting to start/ });
  t.equal(fake.secrets.size, 1);
});

t.test('under dry-run it reads and keeps nothing; with no cluster it reads nothing either', async (t) => {
  const { fake, context } = await setup(t, replicaSetPod());
  fake.setLog('default', podName, 'main', 'hello\n');
  const outcome = await captureAction.run(await context({ dryRun: true }), {});
  t.match(outcome, { status: 'dry-run', reason: /^captured pod default\/.*: manifest, logs of 1 container \(0\.0 KiB\) \(dry run: not kept\)$/ });
  t.equal(capturedBy(outcome).secret, null);
  t.equal(capturedBy(outcome).logs[0]!.log, 'hello\n');
  t.same(fake.mutations(), [], 'nothing written');
  t.same(fake.requests.filter((r) => r.path.includes('/secrets')), [], 'not even a list of old captures');

  const none = await captureAction.run(await context({ kube: undefined, pod: undefined }), {});
  t.match(none, { status: 'dry-run', reason: /would capture the manifest and the container logs of pod default\/.* \(no cluster, not read\)/ });
  t.equal(none[captured], undefined);
});

t.test('without a store (or an event to name it), the reply alone carries it', async (t) => {
  const { fake, context } = await setup(t, replicaSetPod());
  fake.setLog('default', podName, 'main', 'hello\n');
  const outcome = await captureAction.run(await context({ evidence: undefined }), {});
  t.match(outcome, { status: 'done', reason: /\(no store: only the reply carries it\)$/ });
  t.equal(fake.secrets.size, 0);
});

t.test('a redelivery of the same event finds the capture of the first, and keeps it', async (t) => {
  const { fake, context } = await setup(t, replicaSetPod());
  fake.setLog('default', podName, 'main', 'before\n');
  const first = await captureAction.run(await context(), {});
  fake.setLog('default', podName, 'main', 'before\nafter\n');
  const again = await captureAction.run(await context(), {});
  t.equal(first.status, 'done');
  t.match(again, { status: 'done', reason: new RegExp(`^kept in Secret ${ns}/${secretName}: .*; the capture of an earlier delivery of this event is kept$`) });
  t.equal(fake.secrets.size, 1);
  t.equal(fake.secretData(ns, secretName)!['main.log']!.toString(), 'before\n', 'the first capture stays');
  // Another event, or another rule, is another capture.
  await captureAction.run(await context({ event: { ...event, id: 'evt-2' } }), {});
  await captureAction.run(await context({ ruleName: 'other' }), {});
  t.equal(fake.secrets.size, 3);
});

t.test('a capture that fails lets the next actions run unless it is required', async (t) => {
  const cases = [
    { what: 'logs unavailable (503), not required', fault: { method: 'GET', path: /\/log$/, status: 503 }, parameters: {}, status: 'skipped', reason: /^could not capture pod .*: read the log of container main: Kubernetes answered 503: .*; not required, so the next actions run$/ },
    { what: 'logs forbidden (403), required', fault: { method: 'GET', path: /\/log$/, status: 403 }, parameters: { required: true }, status: 'failed', reason: /^could not capture pod .* \(required\): read the log of container main: Kubernetes answered 403/ },
    { what: 'the Secret refused (403), not required', fault: { method: 'POST', path: /\/secrets$/, status: 403 }, parameters: {}, status: 'skipped', reason: /keep the capture in Secret .*: Kubernetes answered 403/, carried: true },
    { what: 'old captures not listed (403): kept all the same', fault: { method: 'GET', path: /\/secrets$/, status: 403 }, parameters: { required: true }, status: 'done', reason: /; could not delete old captures: list the captures in falco-drop: Kubernetes answered 403/ },
  ];
  for (const c of cases) {
    const { fake, context } = await setup(t, replicaSetPod());
    fake.setLog('default', podName, 'main', 'hello\n');
    fake.fail({ ...c.fault, body: statusBody(c.fault.status, `answer ${c.fault.status}`) });
    const outcome = await captureAction.run(await context(), c.parameters);
    t.match(outcome, { status: c.status, reason: c.reason }, c.what);
    if (c.carried) t.match(capturedBy(outcome), { secret: null, logs: [{ log: 'hello\n' }] }, `${c.what}: the reply still carries it`);
  }
  const { fake, context } = await setup(t, replicaSetPod());
  fake.fail({ method: 'GET', path: /\/log$/, status: 503, body: statusBody(503, 'kubelet down') });
  await t.rejects(captureAction.run(await context(), { required: true }), { code: 'DROP_K8S_UNAVAILABLE', retryAfterSeconds: 7 }, 'required and retryable: the Broker retries before anything is destroyed');
  fake.fail({ method: 'POST', path: /\/secrets$/, status: 500 });
  fake.setLog('default', podName, 'main', 'hello\n');
  await t.rejects(captureAction.run(await context(), { required: true }), { code: 'DROP_K8S_UNAVAILABLE' }, 'a Secret that could not be written, required: retried');
});

t.test('a manifest too large to carry keeps only the pod\'s identity', async (t) => {
  const pod = replicaSetPod({ annotations: { big: 'z'.repeat(200 * 1024) } });
  const { fake, context } = await setup(t, pod);
  fake.setLog('default', podName, 'main', 'hello\n');
  const capture = capturedBy(await captureAction.run(await context(), {}));
  t.same(capture.manifest, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: podName, namespace: 'default', uid: podUid },
    omitted: `the manifest is ${JSON.stringify(capture.manifest).length > 0 ? (capture.manifest.omitted as string).match(/\d+/)![0] : ''} bytes, more than 131072: only the pod's identity is kept`,
  });
});

t.test('a log is cut by the bytes each character takes in JSON, from its end', async (t) => {
  // One character of each cost: 1 (ASCII), 2 (é, a quote, a newline), 3 (€), 4 (😀), 6 (a control
  // character, a lone surrogate, which JSON writes as \u0001 and \ud800).
  for (const first of ['a', 'é', '"', '\n', '\b', '€', '😀', '\u0001', '\ud800']) {
    const text = `${first}tail`;
    t.equal(jsonBytes(text), jsonBytes(first) + 4);
    t.same(clipLogTail(text, jsonBytes(text)), { text, clipped: false }, `${JSON.stringify(first)} fits exactly`);
    t.same(clipLogTail(text, jsonBytes(text) - 1), { text: 'tail', clipped: true }, `${JSON.stringify(first)} takes ${jsonBytes(first)} bytes`);
  }
  t.same(clipLogTail('ab😀', 3), { text: '', clipped: true }, 'never half of a surrogate pair');
  t.same(clipLogTail('one\ntwo\nthree\n', 10), { text: 'three\n', clipped: true }, 'from the start of a line');
  t.same(clipLogTail('one\ntwo\n', 8), { text: 'two\n', clipped: true }, 'a cut on a line start keeps that line');
  t.same(clipLogTail('a very long last line\n', 6), { text: 'line\n', clipped: true }, 'the end of one long line');
});

// The observe hook (AppOptions.observe): one Decision per event answered, as its log line tells
// it, for every kind of answer; and an observer that throws changes no answer.
import t from 'tap';
import { CloudEvent } from 'cloudevents';
import type { Decision } from '../src/decisions.ts';
import { createFakeAndApp, createTestApp, lower } from './helpers/app.ts';
import { FakeKube, makePod } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';

const pod = 'mysql-db-7d59548d75-g9msc';
const hopTrace = '4bf92f3577b34da6a3ce929d0e0e4736';

function batchItem(id: string, fields: Record<string, string | number> = {}, rule?: string): CloudEvent<unknown> {
  return new CloudEvent({
    id,
    source: 'https://falco.org',
    type: 'falco.rule.output.v1',
    datacontenttype: 'application/json',
    data: JSON.parse(falcoPayload({ rule, fields: { 'evt.time': 1, ...fields } })) as object,
  });
}

t.test('each kind of answer is observed once, with what its log line says', async (t) => {
  const seen: Decision[] = [];
  const { fake, drop } = await createFakeAndApp(t, [makePod('default', pod, 'uid-1')], { observe: (d) => seen.push(d) });
  const post = (headers: Record<string, string>, payload: string) => drop.app.inject({ method: 'POST', url: '/', headers, payload });

  // Acted on: the pod is deleted.
  const acted = await post(lower(brokerHeaders('ev-act')), falcoPayload());
  t.equal(acted.statusCode, 200, acted.body);
  t.equal(seen.length, 1, 'one decision for one event');
  t.match(seen[0], {
    time: '2025-06-12T09:21:08.000Z',
    mode: 'binary',
    status: 200,
    replayed: false,
    decision: 'act',
    outcome: 'done',
    falco: { rule: 'Terminal shell in container', priority: 'Notice' },
    target: `default/${pod}`,
    namespace: 'default',
    rules: ['terminal-shell'],
    actions: [{ action: 'delete', status: 'done', reason: /deleted pod/ }],
    reason: /^act: deleted pod default\//,
    traceId: hopTrace,
    dryRun: false,
  });
  t.equal(seen[0]!.guard, undefined);
  t.equal(seen[0]!.code, undefined);
  t.equal(seen[0]!.fromRecord, undefined);
  t.type(seen[0]!.durationMs, 'number');
  const line = drop.logs.find((l) => l.decision === 'act')!;
  t.equal(seen[0]!.durationMs, line.durationMs, 'the duration the log line gives');

  // The Broker redelivers it: answered from memory, observed as a replay.
  await post(lower(brokerHeaders('ev-act')), falcoPayload());
  t.match(seen[1], { decision: 'act', outcome: 'done', replayed: true, status: 200 });

  // Skipped by each guard it can be: the log line names the guard too.
  await post(lower(brokerHeaders('ev-gone')), falcoPayload({ fields: { 'k8s.pod.name': 'gone-pod' } }));
  t.match(seen[2], { decision: 'skip', outcome: 'skipped', guard: 'gone', status: 202, target: 'default/gone-pod', rules: ['terminal-shell'], reason: /^skip: .*already gone/ });
  t.match(drop.logs.find((l) => l.decision === 'skip'), { guard: 'gone' });
  await post(lower(brokerHeaders('ev-norule', { rule: 'Other' })), falcoPayload({ rule: 'Other' }));
  t.match(seen[3], { decision: 'skip', guard: 'no-rule', rules: [], falco: { rule: 'Other' } });

  // Not a Falco alert at all.
  await post({ ...lower(brokerHeaders('ev-ping')), 'ce-type': 'dev.example.ping' }, '{}');
  t.match(seen[4], { decision: 'ignore', outcome: 'skipped', status: 202, mode: 'binary', rules: [], actions: [], reason: /not a Falco alert/ });
  t.equal(seen[4]!.falco, undefined);

  // Refused: an invalid alert (final), and a body that is not JSON (refused before it is read).
  await post(lower(brokerHeaders('ev-bad')), '{"rule":"r","priority":"Notice","output_fields":{"a":{}}}');
  t.match(seen[5], { decision: 'reject', outcome: 'refused', code: 'DROP_INVALID_ALERT', status: 400, mode: 'binary', reason: /^rejected: / });
  await post({ 'content-type': 'application/json' }, '{"a":');
  t.match(seen[6], { decision: 'reject', outcome: 'refused', status: 400, mode: 'unknown' });
  t.type(seen[6]!.code, 'string');

  // Retryable: the API fails; the Broker will retry.
  fake.addPod(makePod('default', 'flaky', 'uid-flaky'));
  fake.fail({ method: 'GET', path: /pods\/flaky/, status: 500 });
  await post(lower(brokerHeaders('ev-retry')), falcoPayload({ fields: { 'k8s.pod.name': 'flaky' } }));
  t.match(seen[7], { decision: 'reject', outcome: 'retry', code: 'DROP_K8S_UNAVAILABLE', status: 503, falco: { rule: 'Terminal shell in container' } });

  // A batch: each of its events.
  fake.addPod(makePod('default', 'b-pod', 'uid-b'));
  const batch = await post({ 'content-type': 'application/cloudevents-batch+json' }, JSON.stringify([batchItem('b-1', { 'k8s.pod.name': 'b-pod' }), batchItem('b-2', { 'k8s.pod.name': 'nobody' })]));
  t.equal(batch.statusCode, 202);
  t.equal(seen.length, 10, 'two more decisions for a batch of two');
  t.match(seen.slice(8).map((d) => [d.mode, d.decision, d.outcome]).sort(), [
    ['batch', 'act', 'done'],
    ['batch', 'skip', 'skipped'],
  ]);
});

t.test('in dry-run with no cluster, and when the observer throws, the answer is the same', async (t) => {
  let calls = 0;
  const drop = await createTestApp({
    observe: () => {
      calls++;
      throw new Error('observer bug');
    },
  });
  t.teardown(() => drop.close());
  const res = await drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders('ev-dry')), payload: falcoPayload() });
  t.equal(res.statusCode, 200, res.body);
  t.equal(calls, 1);
  t.match(drop.logs.find((l) => l.msg === 'the decision observer failed (the answer is sent all the same)'), { level: 50, err: { message: 'observer bug' } });
});

t.test('a rejection before the body is read has the request\'s duration', async (t) => {
  const seen: Decision[] = [];
  const drop = await createTestApp({ observe: (d) => seen.push(d) });
  t.teardown(() => drop.close());
  await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/json' }, payload: '[[[' });
  t.equal(seen.length, 1);
  t.match(seen[0], { decision: 'reject', mode: 'unknown', dryRun: true });
  t.ok(seen[0]!.durationMs >= 0);
});

t.test('a copy answered from another replica\'s record names the rules it did not act on; a later event, the cooldown', async (t) => {
  const fake = await new FakeKube({ terminatingPods: true }).start();
  fake.addNamespace('default');
  fake.addPod(makePod('default', pod, 'uid-1'));
  const seenA: Decision[] = [];
  const seenB: Decision[] = [];
  const a = await createTestApp({ fake, identity: 'drop-a', observe: (d) => seenA.push(d) });
  const b = await createTestApp({ fake, identity: 'drop-b', observe: (d) => seenB.push(d) });
  t.teardown(async () => {
    await a.close();
    await b.close();
    await fake.stop();
  });
  const deliver = (drop: typeof a, id: string) => drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders(id)), payload: falcoPayload() });
  t.equal((await deliver(a, 'ev-copy')).statusCode, 200);
  t.equal((await deliver(b, 'ev-copy')).statusCode, 200);
  t.equal(seenA[0]!.fromRecord, undefined, 'the replica that acted');
  t.match(seenB[0], { decision: 'act', outcome: 'done', replayed: false, fromRecord: ['terminal-shell'] });
  await deliver(b, 'ev-later');
  t.match(seenB[1], { decision: 'skip', guard: 'cooldown' });
});

t.test('each guard rail names itself on the skip it causes', async (t) => {
  const seen: Decision[] = [];
  const optedOut = makePod('default', 'quiet', 'uid-quiet');
  optedOut.metadata.labels = { ...optedOut.metadata.labels, 'falco-drop/ignore': 'true' };
  const { drop } = await createFakeAndApp(t, [makePod('default', 'other-pod', 'uid-other'), optedOut], { observe: (d) => seen.push(d) });
  const cases: [string, string][] = [
    ['not-same-pod', falcoPayload({ fields: { 'k8s.pod.name': 'other-pod', 'container.id': 'ffffffffffff' } })],
    ['opted-out', falcoPayload({ fields: { 'k8s.pod.name': 'quiet' } })],
    ['no-target', falcoPayload({ onlyFields: { 'evt.time': 1749720067118402960n, 'proc.name': 'bash' } })],
    ['too-old', falcoPayload({ time: '2025-06-12T07:00:00Z', fields: { 'evt.time': 1749711600000000000n } })],
  ];
  for (const [guard, payload] of cases) {
    const res = await drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders(`ev-${guard}`)), payload });
    t.equal(res.statusCode, 202, guard);
    t.match(seen.at(-1), { decision: 'skip', guard }, guard);
    t.match(drop.logs.at(-1), { decision: 'skip', guard }, `${guard} in the log line`);
  }
});

import { hostname } from 'node:os';
import t from 'tap';
import type { V1Pod } from '@kubernetes/client-node';
import type { ActionOutcome } from '../../src/actions/action.ts';
import { buildEvent, eventReason, recordEvent, reportingController } from '../../src/actions/events.ts';
import { statusBody } from '../helpers/fake-kube.ts';
import { alert, cluster, podName, podUid } from './context.ts';

const eventsPath = '/apis/events.k8s.io/v1/namespaces/default/events';
const at = new Date('2026-11-23T10:20:30.456Z');
const context = { ruleName: 'quarantine-shells', alert, dryRun: false, reportingInstance: 'falco-drop-00001-deployment-abc', now: () => at };
const deleted: ActionOutcome = { action: 'delete', status: 'done', reason: `deleted pod default/${podName} (grace 1s)` };

async function readPod(t: Parameters<typeof cluster>[0]) {
  const c = await cluster(t);
  const pod: V1Pod = await c.kube.core.readNamespacedPod({ namespace: 'default', name: podName });
  c.fake.requests.length = 0;
  return { ...c, pod };
}

t.test('records an events.k8s.io/v1 Event regarding the pod, saying what was done and why', async (t) => {
  const { fake, kube, pod } = await readPod(t);
  const record = await recordEvent(kube, pod, deleted, context);
  t.equal(fake.requests.length, 1);
  const request = fake.requests[0]!;
  t.same([request.method, request.path, request.query, request.contentType], ['POST', eventsPath, {}, 'application/json']);
  const body = request.body as Record<string, unknown> & { metadata: { name: string } };
  t.match(body.metadata.name, new RegExp(`^${podName}\\.[0-9a-f]{16}$`));
  t.same(record, { recorded: true, name: body.metadata.name });
  t.same(body, {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: { name: body.metadata.name, namespace: 'default' },
    eventTime: '2026-11-23T10:20:30.456000Z',
    type: 'Normal',
    reason: 'FalcoDropDelete',
    action: 'delete',
    note: `Done: deleted pod default/${podName} (grace 1s); response rule "quarantine-shells", Falco rule "Terminal shell in container" (priority Notice)`,
    reportingController: 'falco-drop.dev/drop',
    reportingInstance: 'falco-drop-00001-deployment-abc',
    regarding: { apiVersion: 'v1', kind: 'Pod', name: podName, namespace: 'default', uid: podUid },
  });
  t.equal(fake.events.length, 1, 'the API server accepted it');
});

t.test('type and reason follow the outcome: a Warning only when the action failed', async (t) => {
  const { kube, fake, pod } = await readPod(t);
  const cases = [
    [{ action: 'isolate', status: 'done', reason: 'r' }, 'Normal', 'FalcoDropIsolate', 'Done: r;'],
    [{ action: 'evict', status: 'skipped', reason: 'r' }, 'Normal', 'FalcoDropEvictSkipped', 'Skipped: r;'],
    [{ action: 'label', status: 'dry-run', reason: 'r' }, 'Normal', 'FalcoDropLabelDryRun', 'Dry run: r;'],
    [{ action: 'detach', status: 'failed', reason: 'r' }, 'Warning', 'FalcoDropDetachFailed', 'Failed: r;'],
  ] as const;
  for (const [outcome, type, reason, note] of cases) {
    t.same((await recordEvent(kube, pod, outcome, context)).recorded, true, reason);
    t.match(fake.events.at(-1), { type, reason, action: outcome.action, note: new RegExp(`^${note}`) }, reason);
  }
  t.equal(eventReason({ action: 'network-policy', status: 'done', reason: '' }), 'FalcoDropNetworkPolicy');
});

t.test('a dry run says so in the note', async (t) => {
  const { kube, fake, pod } = await readPod(t);
  await recordEvent(kube, pod, { action: 'delete', status: 'dry-run', reason: 'would delete' }, { ...context, dryRun: true });
  t.match(fake.events[0], { note: /^Dry run \(dry run\): would delete;/ });
});

t.test('never fails: an API refusal or an unreachable API is returned, not thrown', async (t) => {
  for (const status of [403, 422, 429, 500]) {
    const { kube, fake, pod } = await readPod(t);
    fake.fail({ method: 'POST', path: /events$/, status, body: statusBody(status, `answer ${status}`) });
    const record = await recordEvent(kube, pod, deleted, context);
    t.match(record, { recorded: false, error: new RegExp(`HTTP-Code: ${status}`) }, `${status}`);
  }
  const { kube, fake, pod } = await readPod(t);
  fake.fail({ method: 'POST', path: /events$/, destroy: true });
  t.match(await recordEvent(kube, pod, deleted, context), { recorded: false, error: /^fetch failed: other side closed/ }, 'connection dropped');
});

t.test('an Event the API server would refuse is reported as not recorded', async (t) => {
  const { kube, fake, pod } = await readPod(t);
  const record = await recordEvent(kube, pod, { action: '', status: 'done', reason: 'r' }, context);
  t.match(record, { recorded: false, error: /HTTP-Code: 422[^]*action: Required value/ });
  t.equal(fake.events.length, 0);
});

t.test('the fake API server refuses what the real one refuses', async (t) => {
  const { kube, fake, pod } = await readPod(t);
  const send = (body: Record<string, unknown>) => kube.events.createNamespacedEvent({ namespace: 'default', body: body as never });
  const good = buildEvent(pod, deleted, context) as unknown as Record<string, unknown>;
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['an eventTime in milliseconds (a plain Date)', { ...good, eventTime: new Date(at) }, /HTTP-Code: 400/],
    ['no eventTime', { ...good, eventTime: undefined }, /eventTime: Required value/],
    ['no reportingController', { ...good, reportingController: undefined }, /reportingController: Required value/],
    ['a reportingController that is no qualified name', { ...good, reportingController: 'Falco Drop' }, /must be a qualified name/],
    ['no reportingInstance, action or reason', { ...good, reportingInstance: '', action: undefined, reason: undefined }, /\[reportingInstance: Required value, action: Required value, reason: Required value\]/],
    ['a reason too long', { ...good, reason: 'R'.repeat(129) }, /reason: Too long/],
    ['an unknown type', { ...good, type: 'Error' }, /type: Unsupported value/],
    ['a note over 1 KiB', { ...good, note: 'n'.repeat(1025) }, /note: Too long/],
    ['no regarding', { ...good, regarding: undefined }, /regarding.kind: Required value/],
    ['no name', { ...good, metadata: { namespace: 'default' } }, /metadata.name: Required value/],
    ['another namespace', { ...good, metadata: { name: 'x', namespace: 'other' } }, /does not match the namespace/],
  ];
  for (const [name, body, error] of cases) await t.rejects(send(body), { message: error }, name);
  t.equal(fake.events.length, 0);
});

t.test('a long note is cut to the 1 KiB the API server allows, on a character boundary', async (t) => {
  const { kube, fake, pod } = await readPod(t);
  const record = await recordEvent(kube, pod, { action: 'annotate', status: 'done', reason: 'é'.repeat(2000) }, context);
  t.equal(record.recorded, true);
  const note = fake.events[0]?.note as string;
  t.ok(Buffer.byteLength(note) <= 1024, `${Buffer.byteLength(note)} bytes`);
  t.ok(Buffer.byteLength(note) > 1000, 'not cut more than needed');
  t.match(note, /^Done: é+…$/);
});

t.test('a long pod name still gives an Event name of at most 253 characters', async (t) => {
  const long = 'p'.repeat(253);
  const event = buildEvent({ metadata: { name: long, namespace: 'default', uid: podUid } }, deleted, { ruleName: 'r', alert, dryRun: false });
  t.equal(event.metadata?.name?.length, 253);
  t.equal(event.regarding?.name, long);
});

t.test('defaults: the host name as reporting instance and the current time', async (t) => {
  const before = Date.now();
  const event = buildEvent({ metadata: { name: podName, namespace: 'default', uid: podUid } }, deleted, { ruleName: 'r', alert, dryRun: false });
  t.equal(event.reportingInstance, hostname().slice(0, 128));
  t.ok(event.eventTime.getTime() >= before && event.eventTime.getTime() <= Date.now(), 'now');
  t.equal(reportingController, 'falco-drop.dev/drop');
});

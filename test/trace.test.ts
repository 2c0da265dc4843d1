import t, { type Test } from 'tap';
import { HTTP, type CloudEvent } from 'cloudevents';
import { parseDelivery } from '../src/incoming.ts';
import { childTraceparent, newSpanId, parseTraceparent, parseTracestate, traceContextOf } from '../src/trace.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { createTestApp, lower, type TestApp } from './helpers/app.ts';

// What Knative's tracing puts on the Broker's delivery (brokerHeaders carries this traceparent).
const hopTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
const hopSpan = '00f067aa0ba902b7';
const hopTraceparent = `00-${hopTrace}-${hopSpan}-01`;
// The trace the event itself carries (the distributed-tracing extension), started upstream.
const eventTrace = '0af7651916cd43dd8448eb211c80319c';
const eventSpan = 'b9c7c989f97918e1';
const eventTraceparent = `00-${eventTrace}-${eventSpan}-01`;

const validTraceparent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

async function dryRunApp(t: Test): Promise<TestApp> {
  const drop = await createTestApp();
  t.teardown(() => drop.close());
  return drop;
}

/** The one decision line of the event with this CloudEvent id. */
function lineOf(drop: TestApp, id: string): Record<string, unknown> {
  const lines = drop.logs.filter((l) => (l.ce as { id?: string } | undefined)?.id === id && l.msg !== 'incoming request');
  if (lines.length === 0) throw new Error(`no log line for ${id}`);
  return lines.at(-1)!;
}

/** The trace id, span id and flags of a reply's ce-traceparent, checked to be a valid version 00 value. */
function replyTrace(t: Test, headers: Record<string, unknown>): { traceId: string; spanId: string; flags: string } {
  const value = String(headers['ce-traceparent']);
  const found = validTraceparent.exec(value);
  t.ok(found, `ce-traceparent ${value} is a valid version 00 traceparent`);
  t.ok(parseTraceparent(value), 'and parses as one (ids not all zero)');
  return { traceId: found![1]!, spanId: found![2]!, flags: found![3]! };
}

function binary(drop: TestApp, id: string, extra: Record<string, string> = {}, drop_: string[] = []) {
  const headers: Record<string, string> = { ...lower(brokerHeaders(id)), ...extra };
  for (const name of drop_) delete headers[name];
  return drop.app.inject({ method: 'POST', url: '/', headers, payload: alertFor(id) });
}

/** An alert from a pod of its own, so no cooldown of an earlier event in the test skips it. */
function alertFor(id: string): string {
  return falcoPayload({ fields: { 'k8s.pod.name': `pod-${id}` } });
}

function structuredBody(id: string, extra: Record<string, unknown>): string {
  const attributes = JSON.stringify({
    specversion: '1.0',
    id,
    source: 'https://falco.org',
    type: 'falco.rule.output.v1',
    time: '2025-06-12T09:21:07.11840296Z',
    datacontenttype: 'application/json',
    rule: 'Terminal shell in container',
    priority: 'Notice',
    knativearrivaltime: '2025-06-12T09:21:07.2201Z',
    ...extra,
  });
  return `${attributes.slice(0, -1)},"data":${alertFor(id)}}`;
}

t.test('the Broker\'s traceparent: its trace id in the log line and in the reply\'s ce-traceparent', async (t) => {
  const drop = await dryRunApp(t);
  const res = await binary(drop, 'trace-1', { tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' });
  t.equal(res.statusCode, 200, res.body);
  t.equal(res.headers['ce-type'], 'dev.falcodrop.response.v1');
  const line = lineOf(drop, 'trace-1');
  t.equal(line.traceId, hopTrace, 'the log line carries the trace id');
  t.equal(line.spanId, hopSpan, 'and the span the Broker sent it from');
  t.equal(line.status, 200);
  const reply = replyTrace(t, res.headers);
  t.equal(reply.traceId, hopTrace, 'the reply continues the same trace');
  t.not(reply.spanId, hopSpan, 'with a span id of its own, the parent of what follows');
  t.equal(reply.flags, '01', 'sampled, as received');
  t.equal(res.headers['ce-tracestate'], 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE', 'tracestate passed through');
  // The reply is a valid CloudEvent carrying the distributed-tracing extension.
  const one = HTTP.toEvent({ headers: res.headers as Record<string, string>, body: res.body }) as CloudEvent;
  t.ok(one.validate());
  t.equal(one.traceparent, res.headers['ce-traceparent']);
  t.equal(one.tracestate, 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
});

t.test('no tracestate: the reply carries traceparent alone; an unsampled trace stays unsampled', async (t) => {
  const drop = await dryRunApp(t);
  const res = await binary(drop, 'trace-2', { traceparent: `00-${hopTrace}-${hopSpan}-00` });
  t.equal(res.statusCode, 200);
  t.equal(replyTrace(t, res.headers).flags, '00');
  t.notOk('ce-tracestate' in res.headers);
});

t.test('structured mode: the event\'s traceparent member wins over the hop\'s header', async (t) => {
  const drop = await dryRunApp(t);
  const res = await drop.app.inject({
    method: 'POST',
    url: '/',
    headers: { 'content-type': 'application/cloudevents+json', 'kn-namespace': 'falco-drop', prefer: 'reply', traceparent: hopTraceparent, tracestate: 'rojo=hop' },
    payload: structuredBody('trace-3', { traceparent: eventTraceparent, tracestate: 'congo=ucfJifl5GOE' }),
  });
  t.equal(res.statusCode, 200, res.body);
  const line = lineOf(drop, 'trace-3');
  t.equal(line.mode, 'structured');
  t.equal(line.traceId, eventTrace, 'the trace the event started in');
  t.equal(line.spanId, eventSpan);
  t.equal(replyTrace(t, res.headers).traceId, eventTrace);
  t.equal(res.headers['ce-tracestate'], 'congo=ucfJifl5GOE', 'the tracestate that came with the winning traceparent');
});

t.test('binary mode: ce-traceparent (the extension) wins over the traceparent header', async (t) => {
  const drop = await dryRunApp(t);
  const res = await binary(drop, 'trace-4', { 'ce-traceparent': eventTraceparent });
  t.equal(res.statusCode, 200);
  t.equal(lineOf(drop, 'trace-4').traceId, eventTrace);
  t.equal(replyTrace(t, res.headers).traceId, eventTrace);
  t.notOk('ce-tracestate' in res.headers, 'the header\'s tracestate does not go with the extension\'s traceparent');
});

t.test('an invalid extension falls back to a valid header', async (t) => {
  const drop = await dryRunApp(t);
  const res = await binary(drop, 'trace-5', { 'ce-traceparent': `00-${'0'.repeat(32)}-${eventSpan}-01`, 'ce-tracestate': 'congo=x', tracestate: 'rojo=y' });
  t.equal(res.statusCode, 200);
  t.equal(lineOf(drop, 'trace-5').traceId, hopTrace);
  t.equal(replyTrace(t, res.headers).traceId, hopTrace);
  t.equal(res.headers['ce-tracestate'], 'rojo=y');
});

t.test('an invalid traceparent is ignored: the alert is answered as usual, with no trace fields', async (t) => {
  const drop = await dryRunApp(t);
  const invalid = [
    `00-${hopTrace.toUpperCase()}-${hopSpan}-01`,
    `00-${'0'.repeat(32)}-${hopSpan}-01`,
    `00-${hopTrace}-${'0'.repeat(16)}-01`,
    `ff-${hopTrace}-${hopSpan}-01`,
    `00-${hopTrace}-${hopSpan}-01-extra`,
    `00-${hopTrace}-${hopSpan}`,
    `${hopTrace}-${hopSpan}-01`,
    'garbage',
    '',
  ];
  for (const [i, value] of invalid.entries()) {
    const id = `trace-bad-${i}`;
    const res = await binary(drop, id, { traceparent: value, tracestate: 'rojo=1' });
    t.equal(res.statusCode, 200, `${JSON.stringify(value)}: answered 200`);
    t.equal(res.headers['ce-type'], 'dev.falcodrop.response.v1', 'with the reply event');
    t.notOk('ce-traceparent' in res.headers, 'and no ce-traceparent');
    t.notOk('ce-tracestate' in res.headers, 'nor its tracestate');
    const line = lineOf(drop, id);
    t.equal(line.outcome, 'dry-run');
    t.notOk('traceId' in line, 'no traceId in the log line');
    t.notOk('spanId' in line);
  }
});

t.test('no traceparent: no trace field in the log, no ce-traceparent on the reply', async (t) => {
  const drop = await dryRunApp(t);
  const res = await binary(drop, 'trace-none', {}, ['traceparent']);
  t.equal(res.statusCode, 200);
  t.notOk(Object.keys(res.headers).some((h) => h.startsWith('ce-trace')));
  const line = lineOf(drop, 'trace-none');
  t.notOk('traceId' in line);
  t.notOk('spanId' in line);
});

t.test('a tracestate needing percent-encoding is encoded in ce-tracestate and reads back as sent', async (t) => {
  const drop = await dryRunApp(t);
  const res = await binary(drop, 'trace-6', { tracestate: ' congo=a b%"c ,, rojo=1 ' });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['ce-tracestate'], 'congo=a%20b%25%22c,rojo=1', 'empty members and the whitespace around members dropped');
  const [event] = parseDelivery(res.headers as Record<string, string>, res.body);
  t.equal(event!.context!.extensions.tracestate, 'congo=a b%"c,rojo=1');
});

t.test('an invalid tracestate is dropped and the traceparent kept', async (t) => {
  const drop = await dryRunApp(t);
  const res = await binary(drop, 'trace-7', { tracestate: 'Congo=upper-case-key' });
  t.equal(res.statusCode, 200);
  t.equal(replyTrace(t, res.headers).traceId, hopTrace);
  t.notOk('ce-tracestate' in res.headers);
});

t.test('a redelivery gets the first answer (its traceparent too) and logs its own trace id', async (t) => {
  const drop = await dryRunApp(t);
  const first = await binary(drop, 'trace-8');
  const retryTrace = '11111111111111111111111111111111';
  const again = await binary(drop, 'trace-8', { traceparent: `00-${retryTrace}-2222222222222222-01` });
  t.equal(again.statusCode, 200);
  t.equal(again.headers['ce-id'], first.headers['ce-id']);
  t.equal(again.headers['ce-traceparent'], first.headers['ce-traceparent'], 'the remembered reply, as first sent');
  const lines = drop.logs.filter((l) => (l.ce as { id?: string } | undefined)?.id === 'trace-8');
  t.same(
    lines.map((l) => [l.replayed, l.traceId]),
    [
      [false, hopTrace],
      [true, retryTrace],
    ],
  );
});

t.test('every event line carries the trace id: a skip, a refusal, an ignored event, a refusal before parsing', async (t) => {
  const drop = await dryRunApp(t);
  // A skip (no response rule matches a host process): 202, no reply, no ce-* headers.
  const hostAlert = falcoPayload({ fields: { 'container.id': 'host', 'k8s.ns.name': null, 'k8s.pod.name': null } });
  const skip = await drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders('trace-skip')), payload: hostAlert });
  t.equal(skip.statusCode, 202);
  t.notOk(Object.keys(skip.headers).some((h) => h.startsWith('ce-')));
  t.equal(lineOf(drop, 'trace-skip').traceId, hopTrace);
  // An invalid Falco payload: 400, logged with the trace id.
  const bad = await drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders('trace-bad')), payload: '{"rule":"x","priority":"Notice","output_fields":5}' });
  t.equal(bad.statusCode, 400);
  t.equal(lineOf(drop, 'trace-bad').traceId, hopTrace);
  // Not a Falco alert: ignored, logged with the trace id.
  const other = await drop.app.inject({ method: 'POST', url: '/', headers: { ...lower(brokerHeaders('trace-other')), 'ce-type': 'com.example.other' }, payload: '{"hello":1}' });
  t.equal(other.statusCode, 202);
  t.equal(lineOf(drop, 'trace-other').traceId, hopTrace);
  // An invalid CloudEvent, refused while parsing: its line has the header's trace id.
  const headers = lower(brokerHeaders('trace-invalid'));
  delete headers['ce-source'];
  const invalid = await drop.app.inject({ method: 'POST', url: '/', headers, payload: falcoPayload() });
  t.equal(invalid.statusCode, 400);
  const line = lineOf(drop, 'trace-invalid');
  t.match(line.msg, /^rejected:/);
  t.equal(line.traceId, hopTrace);
  t.equal(line.spanId, hopSpan);
});

t.test('a batch: each event\'s line has its own trace (its extension, else the hop\'s); no reply, so no ce-traceparent', async (t) => {
  const drop = await dryRunApp(t);
  const body = `[${structuredBody('trace-b1', { traceparent: eventTraceparent })},${structuredBody('trace-b2', {})}]`;
  const res = await drop.app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/cloudevents-batch+json', traceparent: hopTraceparent }, payload: body });
  t.equal(res.statusCode, 202);
  t.notOk(Object.keys(res.headers).some((h) => h.startsWith('ce-')));
  t.equal(lineOf(drop, 'trace-b1').traceId, eventTrace);
  t.equal(lineOf(drop, 'trace-b2').traceId, hopTrace);
});

t.test('parseTraceparent follows W3C Trace Context', async (t) => {
  t.same(parseTraceparent(hopTraceparent), { traceId: hopTrace, spanId: hopSpan, sampled: true });
  t.same(parseTraceparent(`00-${hopTrace}-${hopSpan}-00`), { traceId: hopTrace, spanId: hopSpan, sampled: false });
  t.same(parseTraceparent(`00-${hopTrace}-${hopSpan}-03`)?.sampled, true, 'the sampled bit is masked out of other flags');
  t.same(parseTraceparent(`00-${hopTrace}-${hopSpan}-02`)?.sampled, false);
  t.same(parseTraceparent(`01-${hopTrace}-${hopSpan}-01-future`), { traceId: hopTrace, spanId: hopSpan, sampled: true }, 'a later version: its first fields');
  t.same(parseTraceparent(`01-${hopTrace}-${hopSpan}-01`)?.traceId, hopTrace);
  t.equal(parseTraceparent(`01-${hopTrace}-${hopSpan}-01future`), undefined, 'flags must end the value or be followed by a dash');
  t.equal(parseTraceparent(`ff-${hopTrace}-${hopSpan}-01`), undefined, 'version ff is forbidden');
  t.equal(parseTraceparent(` ${hopTraceparent}`), undefined);
  t.equal(parseTraceparent(`${hopTraceparent}\n`), undefined);
  t.equal(parseTraceparent(5), undefined, 'an extension that is not a string');
  t.equal(parseTraceparent(undefined), undefined);
});

t.test('parseTracestate keeps a valid list and drops an invalid one whole', async (t) => {
  t.equal(parseTracestate('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'), 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
  t.equal(parseTracestate('tenant@vendor=v,a_b-c*/d=x'), 'tenant@vendor=v,a_b-c*/d=x', 'multi-tenant and punctuated keys');
  t.equal(parseTracestate(' rojo=1 ,\t,congo=2\t'), 'rojo=1,congo=2');
  t.equal(parseTracestate(''), undefined, 'empty');
  t.equal(parseTracestate(' , '), undefined, 'only empty members');
  t.equal(parseTracestate('rojo'), undefined, 'no value');
  t.equal(parseTracestate('rojo=a=b'), undefined, '"=" in a value');
  t.equal(parseTracestate('rojo=café'), undefined, 'not ASCII');
  t.equal(parseTracestate(`k=${'v'.repeat(257)}`), undefined, 'a value over 256 characters');
  t.equal(parseTracestate(Array.from({ length: 32 }, (_, i) => `k${i}=v`).join(',')), Array.from({ length: 32 }, (_, i) => `k${i}=v`).join(','));
  t.equal(parseTracestate(Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')), undefined, 'more than 32 members');
  t.equal(parseTracestate(Array.from({ length: 3 }, (_, i) => `k${i}=${'v'.repeat(200)}`).join(',')), undefined, 'longer than 512 characters');
  t.equal(parseTracestate(7), undefined);
});

t.test('traceContextOf reads repeated header fields as one list', async (t) => {
  const trace = traceContextOf({ traceparent: [hopTraceparent], tracestate: ['rojo=1', 'congo=2'] }, undefined);
  t.same(trace, { traceId: hopTrace, spanId: hopSpan, sampled: true, tracestate: 'rojo=1,congo=2' });
  t.equal(traceContextOf({ traceparent: [hopTraceparent, hopTraceparent] }, undefined), undefined, 'two traceparent fields are no traceparent');
  t.equal(traceContextOf({}, undefined), undefined);
});

t.test('a new span id is random, 16 hex digits, never all zero', async (t) => {
  t.match(newSpanId(), /^[0-9a-f]{16}$/);
  t.not(newSpanId(), newSpanId());
  t.equal(newSpanId(Buffer.alloc(8)), '0000000000000001');
  t.equal(childTraceparent({ traceId: hopTrace, spanId: hopSpan, sampled: false, tracestate: undefined }, 'abcdef0123456789'), `00-${hopTrace}-abcdef0123456789-00`);
});

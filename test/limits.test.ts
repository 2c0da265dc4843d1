import { once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { buildApp, type AppOptions } from '../src/app.ts';
import { maxEchoedChars } from '../src/clip.ts';
import { createKubeClient } from '../src/kube.ts';
import { createSafety } from '../src/safety.ts';
import { parsePolicy } from '../src/policy.ts';
import { FakeKube, makePod, statusBody } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { lower } from './helpers/app.ts';
import { exchange } from './helpers/raw-socket.ts';

/** Acts (in dry-run without a cluster) on any alert at Notice or above, whatever its rule. */
const anyRulePolicy = 'rules:\n  - name: any\n    match: {priority: ">=Notice"}\n    cooldownSeconds: 1\n    actions: [{action: delete}]\n';
const hugeRule = 'R'.repeat(900 * 1024);
const marker = `…[truncated: ${hugeRule.length} characters]`;

/** The app as main.ts builds it, with the bounds under test set small. */
async function dropApp(t: Test, extra: { maxBytes?: number; bodyBudgetBytes?: number; fake?: FakeKube } = {}) {
  const logs: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const policy = parsePolicy(anyRulePolicy, 'test-policy.yaml');
  const clock = { now: () => new Date('2025-06-12T09:21:08Z') };
  const kube = extra.fake ? createKubeClient(extra.fake.kubeConfig(), { timeoutMs: 2000 }) : undefined;
  const options: AppOptions = {
    logger: pino({ level: 'info' }, stream),
    replySource: '/falco-drop/falco-drop/drop',
    redelivery: { max: 10_000, ttlMs: 60_000, maxBytes: extra.maxBytes },
    bodyBudgetBytes: extra.bodyBudgetBytes,
    dryRunReason: kube ? undefined : 'no cluster',
    responder: {
      policy,
      kube,
      dryRun: !kube,
      protectedNamespaces: new Set(['kube-system']),
      gracePeriodSeconds: 1,
      retryAfterSeconds: 5,
      clock,
      safety: createSafety({ kube, dryRun: !kube, namespace: 'falco-drop', identity: 'drop-limits', clock, retryAfterSeconds: 5, destructivePerMinute: 1000, maxAlertAgeSeconds: 900 }),
    },
  };
  const app = buildApp(options);
  t.teardown(async () => {
    await app.close();
    kube?.close();
  });
  await app.ready();
  return { app, logs };
}

function deliver(app: Awaited<ReturnType<typeof dropApp>>['app'], id: string, body: string) {
  return app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders(id)), payload: body });
}

t.test('answers to alerts with 900 KB rule names stay within the byte bound, and redeliveries are still answered from memory', async (t) => {
  const maxBytes = 48 * 1024;
  const { app, logs } = await dropApp(t, { maxBytes });
  const answers = [];
  for (let i = 0; i < 16; i++) {
    const res = await deliver(app, `huge-${i}`, falcoPayload({ rule: hugeRule, fields: { 'k8s.pod.name': `web-${i}` } }));
    t.equal(res.statusCode, 200);
    answers.push(res);
  }
  t.ok(app.redelivery.bytes <= maxBytes, `${app.redelivery.bytes} bytes counted, bound ${maxBytes}`);
  t.ok(app.redelivery.size >= 6, `${app.redelivery.size} answers remembered: each a few KB, not 900 KB`);
  const last = answers[15]!;
  t.ok(last.body.length < 8 * 1024, `the reply is ${last.body.length} characters`);
  t.equal(JSON.parse(last.body).alert.rule, `${hugeRule.slice(0, maxEchoedChars)}${marker}`);
  const again = await deliver(app, 'huge-15', falcoPayload({ rule: hugeRule, fields: { 'k8s.pod.name': 'web-15' } }));
  t.equal(again.statusCode, 200);
  t.equal(again.headers['ce-id'], last.headers['ce-id'], 'the same reply event');
  t.equal(again.body, last.body);
  const replayed = logs.filter((l) => l.replayed === true);
  t.equal(replayed.length, 1);
  t.match(replayed[0], { ce: { id: 'huge-15' }, decision: 'act', status: 200, rule: `${hugeRule.slice(0, maxEchoedChars)}${marker}` });
});

t.test('the default byte bound is 16 MiB', async (t) => {
  const { app } = await dropApp(t);
  t.equal(app.redelivery.maxBytes, 16 * 1024 * 1024);
});

t.test('alert text is clipped and marked in the reply and the log line', async (t) => {
  const { app, logs } = await dropApp(t);
  const long = (c: string) => c.repeat(5000);
  const id = long('i');
  const source = `https://falco.org/${long('s')}`;
  const body = falcoPayload({ rule: hugeRule, hostname: long('h'), uuid: long('u'), fields: { 'evt.time': long('e') } });
  const res = await app.inject({ method: 'POST', url: '/', headers: { ...lower(brokerHeaders('x')), 'ce-id': id, 'ce-source': source }, payload: body });
  t.equal(res.statusCode, 200);
  const alert = JSON.parse(res.body).alert;
  for (const field of ['rule', 'hostname', 'uuid', 'evtTime']) {
    t.ok(alert[field].length < maxEchoedChars + 40 && alert[field].endsWith(' characters]'), `${field} clipped in the reply`);
  }
  t.equal(alert.cloudEvent.id, `${id.slice(0, maxEchoedChars)}…[truncated: 5000 characters]`);
  t.equal(alert.cloudEvent.source, `${source.slice(0, maxEchoedChars)}…[truncated: ${source.length} characters]`);
  const line = logs.find((l) => l.decision === 'act')!;
  t.ok(JSON.stringify(line).length < 16 * 1024, 'the log line is a few KB');
  t.equal(line.rule, `${hugeRule.slice(0, maxEchoedChars)}${marker}`);
  t.equal(line.evtTime, `${long('e').slice(0, maxEchoedChars)}…[truncated: 5000 characters]`);
  t.match(line.ce, { id: `${id.slice(0, maxEchoedChars)}…[truncated: 5000 characters]` });

  const skipped = await deliver(app, 'quiet', falcoPayload({ rule: hugeRule, priority: 'Debug' }));
  t.equal(skipped.statusCode, 202);
  const skip = logs.find((l) => l.decision === 'skip')!;
  t.ok(String(skip.msg).length < maxEchoedChars + 100, 'a reason quoting the rule is clipped');
  t.match(skip.msg, /^skip: no response rule matches rule "R+…\[truncated: \d+ characters\]$/);
});

t.test('an error body echoes clipped text: a refused action about an alert with a 900 KB rule', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  fake.addNamespace('default');
  fake.addPod(makePod('default', 'mysql-db-7d59548d75-g9msc', 'uid-1'));
  fake.fail({ method: 'DELETE', path: /pods/, status: 403, body: statusBody(403, 'forbidden') });
  const { app, logs } = await dropApp(t, { fake });
  const res = await deliver(app, 'refused', falcoPayload({ rule: hugeRule }));
  t.equal(res.statusCode, 422);
  t.ok(res.body.length < 8 * 1024, `the error body is ${res.body.length} characters`);
  t.equal(JSON.parse(res.body).error.details.alert.rule, `${hugeRule.slice(0, maxEchoedChars)}${marker}`);
  const line = logs.find((l) => l.ce && (l.ce as { id: string }).id === 'refused');
  t.equal(line?.level, 40, 'an answer the Broker dead-letters is a warning');
  t.match(line, { status: 422, outcome: 'failed' });
});

t.test('JSON nested deeper than 64 levels is refused before it is parsed; brackets in strings do not count', async (t) => {
  const { app } = await dropApp(t);
  const deep = `{"rule":"r","priority":"Notice","output_fields":${'['.repeat(400_000)}${']'.repeat(400_000)}}`;
  const res = await deliver(app, 'deep', deep);
  t.equal(res.statusCode, 400);
  t.same(JSON.parse(res.body).error, { code: 'DROP_INVALID_JSON', message: 'the body nests JSON deeper than 64 levels' });
  const edge = `{"rule":"r","priority":"Notice","output_fields":{"a":${'['.repeat(62)}${']'.repeat(62)}}}`;
  t.equal(JSON.parse((await deliver(app, 'edge', edge)).body).error.code, 'DROP_INVALID_ALERT', '64 levels are parsed');
  const text = falcoPayload({ output: `\\"${'[{'.repeat(200)}` });
  t.equal((await deliver(app, 'brackets-in-text', text)).statusCode, 200, 'an output full of brackets is an alert');
});

t.test('bodies beyond the budget wait their turn, and each is answered', async (t) => {
  const { app } = await dropApp(t, { bodyBudgetBytes: 16 * 1024 });
  const padded = (i: number) => falcoPayload({ output: 'x'.repeat(6000), fields: { 'k8s.pod.name': `web-${i}` } });
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => deliver(app, `wait-${i}`, padded(i))));
  t.same(answers.map((a) => a.statusCode), Array(12).fill(200));
  const big = await app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/json' }, payload: `{"x":"${'a'.repeat(1024 * 1024)}"}` });
  t.equal(big.statusCode, 413, 'a body declared over the limit is refused unread, whatever the budget');
});

t.test('a client that goes away while its body is read or waits gives its place back', async (t) => {
  const { app } = await dropApp(t, { bodyBudgetBytes: 8 * 1024 });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  const head = (id: string, length: number) =>
    `POST / HTTP/1.1\r\nHost: drop\r\nContent-Type: application/json\r\nCe-Specversion: 1.0\r\nCe-Id: ${id}\r\nCe-Source: https://falco.org\r\nCe-Type: falco.rule.output.v1\r\nContent-Length: ${length}\r\n\r\n`;
  const connect = async () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    return socket;
  };
  // One takes the whole budget and sends half its body; the next waits behind it.
  const holder = await connect();
  holder.write(head('holder', 8000) + 'x'.repeat(4000));
  const waiter = await connect();
  waiter.write(head('waiter', 8000) + 'x'.repeat(100));
  await new Promise((resolve) => setImmediate(resolve));
  holder.destroy();
  waiter.destroy();
  // Both places are back: a whole-budget alert is answered.
  const body = falcoPayload({ output: 'x'.repeat(7000) });
  const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: lower(brokerHeaders('after')), body });
  t.equal(res.status, 200);
  // A chunked body (no declared length) claims the whole budget, and is answered.
  const other = falcoPayload({ output: 'x'.repeat(7000), fields: { 'k8s.pod.name': 'chunked' } });
  const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
  const chunked = await exchange(
    port,
    `POST / HTTP/1.1\r\nHost: drop\r\nConnection: close\r\nContent-Type: application/json\r\nCe-Specversion: 1.0\r\nCe-Id: chunked\r\nCe-Source: https://falco.org\r\nCe-Type: falco.rule.output.v1\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(other.slice(0, 100))}${chunk(other.slice(100))}0\r\n\r\n`,
  );
  t.equal(chunked.status, 200);
});

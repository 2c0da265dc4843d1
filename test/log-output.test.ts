// The log's bound (src/log-output.ts): stdout is a pipe (a container's), and when its reader
// falls behind, drop reads no new request until the lines already made are out. No line is
// dropped, and the request that waited is answered once they are.
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { buildApp } from '../src/app.ts';
import { LogOutput } from '../src/log-output.ts';
import { parsePolicy } from '../src/policy.ts';
import { createSafety } from '../src/safety.ts';
import { lower } from './helpers/app.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';

/** A named pipe, written by a real sonic-boom (as main.ts writes stdout) and read only when the test says. */
function stdoutPipe(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'drop-log-'));
  const path = join(dir, 'stdout');
  execFileSync('mkfifo', [path]);
  // Read and write, so opening does not wait for a reader; nothing reads it until read() is called.
  const destination = pino.destination({ dest: openSync(path, 'r+'), sync: false, minLength: 0 });
  const text: string[] = [];
  let destroyed = false;
  destination.once('close', () => (destroyed = true));
  let reader: ReturnType<typeof createReadStream> | undefined;
  t.teardown(async () => {
    // The writer's end closed first: a read waiting on the pipe then ends, and so can the test.
    if (!destroyed) pipe.destination.destroy();
    if (reader) await new Promise<void>((resolve) => reader!.once('close', () => resolve()).destroy());
    rmSync(dir, { recursive: true, force: true });
  });
  const pipe = {
    destination,
    text,
    read: () => {
      reader = createReadStream(path, { encoding: 'utf8' });
      reader.on('data', (chunk) => text.push(chunk as string));
    },
  };
  return pipe;
}

t.test('LogOutput counts each line until it is out, and says when there is room again', async (t) => {
  const pipe = stdoutPipe(t);
  const output = new LogOutput(pipe.destination, 1024);
  t.equal(output.room(), undefined, 'room at first');
  const line = `${'x'.repeat(999)}\n`;
  // A pipe holds 64 KiB: 200 KB of lines cannot all be out before someone reads.
  for (let i = 0; i < 200; i++) output.write(line);
  t.equal(output.pending, 200_000, 'every byte written is pending');
  const room = output.room();
  t.ok(room, 'over the bound: a promise');
  let roomy = false;
  void room!.then(() => (roomy = true));
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(roomy, false, 'no room while nobody reads the pipe');
  t.ok(output.pending > 1024, `still pending: ${output.pending} bytes`);
  pipe.read();
  await room;
  t.ok(output.pending <= 1024, 'room once the reader took the lines');
  await new Promise<void>((resolve) => output.flush(() => resolve()));
  t.equal(output.pending, 0);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(pipe.text.join('').length, 200_000, 'every line came out, none dropped');
});

t.test('a stream that breaks lets everyone on: a log that can never drain must not stop the service', async (t) => {
  const pipe = stdoutPipe(t);
  const output = new LogOutput(pipe.destination, 10);
  output.write('a line longer than the bound\n');
  const room = output.room();
  t.ok(room);
  pipe.destination.destroy();
  await room;
  t.equal(output.room(), undefined, 'room from then on');
});

t.test('while the log is behind, a request waits unread; once its lines are out it is answered, and every event has its line', async (t) => {
  const pipe = stdoutPipe(t);
  const output = new LogOutput(pipe.destination, 4096);
  const policy = parsePolicy('rules:\n  - name: any\n    match: {priority: ">=Notice"}\n    actions: [{action: delete}]\n', 'test-policy.yaml');
  const clock = { now: () => new Date('2025-06-12T09:21:08Z') };
  const app = buildApp({
    logger: pino({ level: 'info' }, output),
    logRoom: () => output.room(),
    replySource: '/falco-drop/falco-drop/drop',
    redelivery: { max: 10_000, ttlMs: 60_000 },
    dryRunReason: 'no cluster',
    responder: {
      policy,
      kube: undefined,
      dryRun: true,
      protectedNamespaces: new Set(['kube-system']),
      gracePeriodSeconds: 1,
      retryAfterSeconds: 5,
      clock,
      safety: createSafety({ kube: undefined, dryRun: true, namespace: 'falco-drop', identity: 'drop-log', clock, retryAfterSeconds: 5, destructivePerMinute: 1000, maxAlertAgeSeconds: 900 }),
    },
  });
  t.teardown(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/`;

  // A batch of 300 alerts about 300 pods: 300 lines, more than the pipe holds unread.
  const members = Array.from({ length: 300 }, (_, i) => {
    const data = falcoPayload({ fields: { 'k8s.pod.name': `web-${i}` } });
    return `{"specversion":"1.0","id":"batch-${i}","source":"https://falco.org","type":"falco.rule.output.v1","datacontenttype":"application/json","data":${data}}`;
  });
  const batch = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/cloudevents-batch+json' }, body: `[${members.join(',')}]` });
  t.equal(batch.status, 202, 'the batch is answered: its lines are written, not yet out');
  t.ok(output.pending > 4096, `its lines wait in the log: ${output.pending} bytes`);

  let answered = false;
  const next = fetch(url, { method: 'POST', headers: lower(brokerHeaders('after-the-batch')), body: falcoPayload({ fields: { 'k8s.pod.name': 'db-0' } }) }).then((res) => {
    answered = true;
    return res;
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(answered, false, 'the next request waits while the log is behind');

  pipe.read();
  const res = await next;
  t.equal(res.status, 200, 'and is acted on (dry-run) once the log caught up');
  await new Promise<void>((resolve) => output.flush(() => resolve()));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const lines = pipe.text.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { ce?: { id?: string } });
  const ids = new Set(lines.flatMap((l) => (l.ce?.id ? [l.ce.id] : [])));
  t.equal(ids.size, 301, 'a line for each of the 300 events of the batch and for the one after');
  t.ok(ids.has('after-the-batch'));
});

import http from 'node:http';
import t from 'tap';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { lower } from './helpers/app.ts';
import { startService, stopService } from './helpers/service.ts';

interface Outcome {
  readonly sentAt: number;
  readonly endedAt: number;
  readonly status?: number;
  readonly connection?: string;
  readonly error?: string;
}

/** One POST on the keep-alive agent, as a proxy sends it: the answer or the connection error. */
function post(agent: http.Agent, port: number, id: string, body: string): Promise<Outcome> {
  const sentAt = Date.now();
  return new Promise((resolve) => {
    const request = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/', agent, headers: { ...lower(brokerHeaders(id)), 'content-length': Buffer.byteLength(body) } },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ sentAt, endedAt: Date.now(), status: response.statusCode, connection: response.headers.connection }));
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) => resolve({ sentAt, endedAt: Date.now(), error: error.code ?? error.message }));
    request.end(body);
  });
}

// SIGTERM while traffic still flows: the order of a node drain, a misordered kill and every
// plain Deployment's shutdown. A client keeps writing alerts on keep-alive connections (the way
// queue-proxy or the Broker's pool does) through the signal and the drain.
t.test('SIGTERM under load: the drain answers everything, resets nothing, and the service exits 0', async (t) => {
  const drainSeconds = 3;
  const service = await startService(t, { DROP_DRAIN_SECONDS: String(drainSeconds) });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());
  const outcomes: Outcome[] = [];
  let sending = true;
  let n = 0;
  // The alert is fresh (the service is in dry-run, no cluster: it answers 200 dry-run).
  const body = falcoPayload({ time: new Date().toISOString() });
  const worker = async () => {
    while (sending) outcomes.push(await post(agent, service.port, `drain-${++n}`, body));
  };
  const workers = Array.from({ length: 8 }, worker);
  while (outcomes.length < 200) await new Promise((resolve) => setTimeout(resolve, 20));

  const signalledAt = Date.now();
  const exited = stopService(service);
  const ready = await fetch(`http://127.0.0.1:${service.port}/readyz`);
  // From here on the service is known to have the signal (its delivery takes a moment).
  const drainingAt = Date.now();
  t.equal(ready.status, 503, '/readyz is 503 from the first moment');
  t.match(await ready.json(), { status: 'draining' });
  // Keep sending for most of the drain; stop a second before it ends, as endpoints would have.
  await new Promise((resolve) => setTimeout(resolve, (drainSeconds - 1) * 1000));
  sending = false;
  await Promise.all(workers);

  const before = outcomes.filter((o) => o.sentAt < signalledAt);
  const during = outcomes.filter((o) => o.sentAt >= signalledAt);
  t.ok(during.length > 50, `${during.length} alerts were sent during the drain (${before.length} before the signal)`);
  t.same(outcomes.filter((o) => o.error !== undefined).map((o) => o.error), [], 'no request was reset or refused');
  // The first alert about the pod is answered 200 (dry-run: what it would do), the rest 202 (cooldown).
  t.same([...new Set(outcomes.map((o) => o.status))].sort(), [200, 202], 'every alert got its usual answer');
  t.ok(
    outcomes.filter((o) => o.sentAt >= drainingAt).every((o) => o.connection === 'close'),
    'every answer after the signal asks the client to close the connection',
  );
  t.ok(
    before.filter((o) => o.endedAt < signalledAt).every((o) => o.connection !== 'close'),
    'before the signal, connections were kept alive',
  );
  t.equal(await exited, 0, 'exits 0');
  const messages = service.lines.map((l) => l.msg);
  t.equal(messages.at(-1), 'stopped', `the last log line was written: ${JSON.stringify(messages.slice(-3))}`);
  t.ok(messages.includes('stopping: no new connections; finishing requests in flight'), 'then it closed');
  const drainLine = service.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('stopping: not ready'));
  t.match(drainLine, { signal: 'SIGTERM', drainMs: drainSeconds * 1000 });
});

t.test('a second SIGTERM does not cut the drain short; Ctrl-C (SIGINT) does', async (t) => {
  const service = await startService(t, { DROP_DRAIN_SECONDS: '60' });
  service.child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 300));
  service.child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(service.child.exitCode, null, 'still draining after a second SIGTERM');
  const alert = await fetch(`http://127.0.0.1:${service.port}/`, {
    method: 'POST',
    headers: lower(brokerHeaders('during-drain')),
    body: falcoPayload({ time: new Date().toISOString() }),
  });
  t.equal(alert.status, 200, 'and still answering alerts');
  service.child.kill('SIGINT');
  const { code } = await service.exited;
  t.equal(code, 0, 'SIGINT ends the drain and the service exits 0');
  t.ok(service.lines.some((l) => l.msg === 'SIGTERM again: the drain goes on'));
  t.ok(service.lines.some((l) => l.msg === 'SIGINT: skipping the rest of the drain'));
  t.equal(service.lines.at(-1)?.msg, 'stopped', JSON.stringify(service.lines.slice(-6).map((l) => [l.msg, l.time, l.signal])));
});

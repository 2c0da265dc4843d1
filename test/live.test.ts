import { createHash } from 'node:crypto';
import { get, type IncomingMessage } from 'node:http';
import Fastify from 'fastify';
import t, { type Test } from 'tap';
import type { Decision } from '../src/decisions.ts';
import { DecisionLog, defaultMaxDecisions, liveRoutes, type LiveOptions } from '../src/live.ts';
import { livePageScript, livePageStyle } from '../src/live-page.ts';

let made = 0;
function decision(over: Partial<Decision> = {}): Decision {
  made++;
  return {
    time: new Date(Date.UTC(2026, 10, 26, 12, 0, made % 60)).toISOString(),
    mode: 'binary',
    status: 200,
    replayed: false,
    decision: 'act',
    outcome: 'dry-run',
    falco: { rule: 'Terminal shell in container', priority: 'Notice' },
    target: 'default/mysql-db-7d59548d75-g9msc',
    namespace: 'default',
    rules: ['shell-in-container'],
    actions: [{ action: 'kubernetes:terminate', status: 'dry-run', reason: 'would delete pod default/mysql-db-7d59548d75-g9msc' }],
    reason: 'act: dry-run: would terminate default/mysql-db-7d59548d75-g9msc',
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    dryRun: true,
    durationMs: 1.5,
    ...over,
  };
}

t.test('the log keeps the most recent decisions, newest first, at most maxCount', async (t) => {
  const log = new DecisionLog({ maxCount: 3 });
  for (let i = 1; i <= 5; i++) log.add(decision({ reason: `decision ${i}` }));
  t.same(
    log.recent().map((d) => [d.seq, d.reason]),
    [
      [5, 'decision 5'],
      [4, 'decision 4'],
      [3, 'decision 3'],
    ],
  );
  t.equal(log.size.count, 3);
  t.equal(log.size.bytes, log.recent().reduce((sum, d) => sum + Buffer.byteLength(JSON.stringify(d)), 0), 'bytes are the JSON the log keeps');
  t.equal(new DecisionLog().maxCount, defaultMaxDecisions);
});

t.test('the log is bounded by bytes too: large decisions push out the oldest, but the newest is always kept', async (t) => {
  const big = 'x'.repeat(1000);
  const log = new DecisionLog({ maxCount: 100, maxBytes: 4000 });
  for (let i = 0; i < 10; i++) log.add(decision({ reason: big }));
  t.ok(log.size.bytes <= 4000, `bytes ${log.size.bytes} within 4000`);
  t.ok(log.size.count >= 2 && log.size.count < 10, `${log.size.count} kept`);
  t.same(log.recent()[0]!.seq, 10, 'the newest is kept');

  const tiny = new DecisionLog({ maxBytes: 10 });
  tiny.add(decision());
  tiny.add(decision({ reason: 'the newest' }));
  t.same(tiny.recent().map((d) => d.reason), ['the newest'], 'a decision larger than the bound alone is still shown');
});

t.test('counters count every decision since start, by decision and by outcome, beyond what is kept', async (t) => {
  const log = new DecisionLog({ maxCount: 2 });
  log.add(decision());
  log.add(decision({ decision: 'skip', outcome: 'skipped', guard: 'cooldown' }));
  log.add(decision({ decision: 'skip', outcome: 'skipped', guard: 'no-rule' }));
  log.add(decision({ decision: 'reject', outcome: 'refused', code: 'DROP_INVALID_ALERT' }));
  t.same(log.counters(), { total: 4, decisions: { act: 1, skip: 2, reject: 1 }, outcomes: { 'dry-run': 1, skipped: 2, refused: 1 } });
  t.equal(log.size.count, 2);
});

t.test('subscribers hear each new decision; their number is bounded; one that throws is dropped and the rest still hear', async (t) => {
  const log = new DecisionLog({ maxSubscribers: 2 });
  const heard: number[] = [];
  const unsubscribe = log.subscribe((d, json) => {
    heard.push(d.seq);
    t.same(JSON.parse(json), d, 'the JSON is the decision as logged');
  });
  const failing = log.subscribe(() => {
    throw new Error('connection gone');
  });
  t.ok(unsubscribe && failing);
  t.equal(log.subscribe(() => {}), undefined, 'a third is refused');
  t.doesNotThrow(() => log.add(decision()), 'add never throws');
  t.equal(log.subscribers, 1, 'the failing listener is gone');
  log.add(decision());
  t.same(heard, [1, 2]);
  unsubscribe!();
  log.add(decision());
  t.same(heard, [1, 2], 'an unsubscribed listener hears nothing');
  t.equal(log.subscribers, 0);
});

const options: LiveOptions = { replica: 'drop-00001-deployment-7c9f-x2v4q', dryRun: true };

async function adminApp(t: Test, log: DecisionLog, live: Partial<LiveOptions> = {}) {
  const app = Fastify();
  liveRoutes(log, { ...options, ...live })(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { app, base: `http://127.0.0.1:${port}` };
}

/** An event stream read as it arrives: its events in order, and whether the server ended it. */
function openStream(url: string) {
  const events: { event: string; data: string }[] = [];
  const comments: string[] = [];
  let ended = false;
  let response: IncomingMessage | undefined;
  let request: ReturnType<typeof get> | undefined;
  const ready = new Promise<IncomingMessage>((resolve, reject) => {
    request = get(url, (res) => {
      response = res;
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let end: number;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const fields = Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trimStart()]));
          if (fields.event) events.push({ event: fields.event, data: fields.data ?? '' });
          else if ('' in fields) comments.push(block);
        }
      });
      res.on('end', () => (ended = true));
      res.on('close', () => (ended = true));
      // A stream the server cuts ends in 'aborted' (ECONNRESET) on this side: that is its end too.
      res.on('error', () => (ended = true));
      resolve(res);
    });
    request.on('error', reject);
  });
  // A request cut before its answer fails `ready`: no one need wait for that.
  ready.catch(() => undefined);
  // Closed before its answer's headers arrived, the request itself is cut: the server sees the page go either way.
  return { events, comments, ready, ended: () => ended, close: () => (response ?? request)?.destroy() };
}

async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

t.test('GET / serves the page with a Content-Security-Policy that runs its own script and style alone', async (t) => {
  const { app } = await adminApp(t, new DecisionLog());
  const page = await app.inject('/');
  t.equal(page.statusCode, 200);
  t.match(page.headers['content-type'], /^text\/html; charset=utf-8/);
  t.equal(page.headers['x-content-type-options'], 'nosniff');
  t.equal(page.headers['cache-control'], 'no-store');
  const csp = String(page.headers['content-security-policy']);
  const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
  t.match(csp, `default-src 'none'`);
  t.match(csp, `script-src ${hash(livePageScript)};`, 'the inline script is allowed by its hash alone');
  t.match(csp, `style-src ${hash(livePageStyle)};`);
  t.match(csp, `connect-src 'self'`);
  t.notMatch(csp, 'unsafe-inline');
  t.ok(page.body.includes(`<script>${livePageScript}</script>`), 'the script hashed is the one in the page');
  t.ok(page.body.includes(`<style>${livePageStyle}</style>`));
  t.notMatch(page.body, /\bsrc=|href=/, 'no external asset');
  t.notMatch(page.body, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'the script never writes HTML');
});

t.test('GET /decisions: the recent decisions, newest first, the counters, the replica and its mode', async (t) => {
  const log = new DecisionLog();
  const { app } = await adminApp(t, log);
  log.add(decision({ reason: 'first' }));
  log.add(decision({ decision: 'skip', outcome: 'skipped', guard: 'cooldown', reason: 'second' }));
  const answer = await app.inject('/decisions');
  t.equal(answer.statusCode, 200);
  t.equal(answer.headers['cache-control'], 'no-store');
  const body = answer.json();
  t.equal(body.replica, options.replica);
  t.equal(body.dryRun, true);
  t.equal(body.maxCount, defaultMaxDecisions);
  t.same(body.counters, { total: 2, decisions: { act: 1, skip: 1 }, outcomes: { 'dry-run': 1, skipped: 1 } });
  t.same(
    body.recent.map((d: Decision) => d.reason),
    ['second', 'first'],
  );
  t.same(body.recent[1], { ...decision({ reason: 'first', time: body.recent[1].time }), seq: 1 });
});

t.test('GET /decisions/events: a snapshot first, then each decision with the counters as it is made', async (t) => {
  const log = new DecisionLog();
  log.add(decision({ reason: 'before' }));
  const { base } = await adminApp(t, log);
  const stream = openStream(`${base}/decisions/events`);
  const response = await stream.ready;
  t.equal(response.statusCode, 200);
  t.match(response.headers['content-type'], /^text\/event-stream/);
  await until('the snapshot', () => stream.events.length === 1);
  const snapshot = JSON.parse(stream.events[0]!.data);
  t.equal(stream.events[0]!.event, 'snapshot');
  t.same(snapshot.recent.map((d: Decision) => d.reason), ['before']);
  t.equal(snapshot.replica, options.replica);
  await until('the subscription', () => log.subscribers === 1);
  log.add(decision({ decision: 'reject', outcome: 'refused', code: 'DROP_INVALID_ALERT', reason: 'after </script><img src=x onerror=alert(1)>' }));
  await until('the decision', () => stream.events.length === 2);
  const message = JSON.parse(stream.events[1]!.data);
  t.equal(stream.events[1]!.event, 'decision');
  t.equal(message.decision.seq, 2);
  t.equal(message.decision.reason, 'after </script><img src=x onerror=alert(1)>', 'text as it was, one event');
  t.same(message.counters, { total: 2, decisions: { act: 1, reject: 1 }, outcomes: { 'dry-run': 1, refused: 1 } });
  stream.close();
  await until('the unsubscription', () => log.subscribers === 0);
});

t.test('an idle stream carries a comment now and then, which EventSource ignores', async (t) => {
  const { base } = await adminApp(t, new DecisionLog(), { heartbeatMs: 20 });
  const stream = openStream(`${base}/decisions/events`);
  await until('two heartbeats', () => stream.comments.length >= 2);
  t.same(stream.comments.slice(0, 2), [':', ':']);
  t.equal(stream.events.length, 1, 'the snapshot alone');
  stream.close();
});

t.test('more pages than maxSubscribers: the next one is told to come back later', async (t) => {
  const log = new DecisionLog({ maxSubscribers: 1 });
  const { app, base } = await adminApp(t, log);
  const first = openStream(`${base}/decisions/events`);
  await until('the first subscription', () => log.subscribers === 1);
  const refused = await app.inject('/decisions/events');
  t.equal(refused.statusCode, 503);
  t.equal(refused.headers['retry-after'], '10');
  t.equal(refused.json().error.code, 'DROP_TOO_MANY_VIEWERS');
  first.close();
  await until('the unsubscription', () => log.subscribers === 0);
});

t.test('a page that reads nothing while decisions pour in is cut off, not buffered without bound', async (t) => {
  const log = new DecisionLog({ maxBytes: 64 * 1024 });
  const { base } = await adminApp(t, log, { maxUnreadBytes: 64 * 1024 });
  const stream = openStream(`${base}/decisions/events`);
  const response = await stream.ready;
  await until('the subscription', () => log.subscribers === 1);
  response.pause();
  const big = 'y'.repeat(1000);
  let added = 0;
  // Loopback socket buffers hold a few MB; the bound is met well before 50 MB.
  while (log.subscribers > 0 && added < 50_000) {
    for (let i = 0; i < 100; i++) log.add(decision({ reason: big }));
    added += 100;
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.equal(log.subscribers, 0, `the stream was ended after ${added} decisions`);
  response.resume();
  await until('the end of the stream', stream.ended);
});

t.test('closing the app ends the open streams, so they do not hold the close', async (t) => {
  const log = new DecisionLog();
  const app = Fastify();
  liveRoutes(log, options)(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const stream = openStream(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/decisions/events`);
  await until('the subscription', () => log.subscribers === 1);
  await app.close();
  await until('the end of the stream', stream.ended);
  t.equal(log.subscribers, 0);
});

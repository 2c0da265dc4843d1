// The admin listener (src/admin.ts): routes other modules register, no event path, and the
// one log line that says where it listens.
import { Writable } from 'node:stream';
import t from 'tap';
import { pino } from 'pino';
import { buildAdminApp, listenAdmin } from '../src/admin.ts';

function logger(level: string): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level }, stream), lines };
}

t.test('serves the routes it is given, and not POST /', async (t) => {
  const { log } = logger('info');
  const app = buildAdminApp({ logger: log, routes: [(a) => a.get('/one', async () => 'one'), (a) => a.get('/two', async () => 'two')] });
  t.teardown(() => app.close());
  t.equal((await app.inject({ url: '/one' })).body, 'one');
  t.equal((await app.inject({ url: '/two' })).body, 'two');
  const post = await app.inject({ method: 'POST', url: '/', payload: '{}' });
  t.equal(post.statusCode, 404, 'alerts are not taken here');
});

t.test('listens on a free port and logs its URL once, as adminUrl', async (t) => {
  const { log, lines } = logger('info');
  const app = buildAdminApp({ logger: log });
  t.teardown(() => app.close());
  const url = await listenAdmin(app, { port: 0, host: '127.0.0.1' }, log);
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal((await fetch(`${url}/nothing`)).status, 404);
  t.same(
    lines.map((l) => [l.msg, l.adminUrl]),
    [[`admin listening at ${url} (GET /metrics)`, url]],
    'one line names it (Fastify\'s own "Server listening" is not logged: it would read like the event listener\'s)',
  );
});

t.test('an IPv6 host is written in brackets', async (t) => {
  const { log } = logger('error');
  const app = buildAdminApp({ logger: log });
  t.teardown(() => app.close());
  const url = await listenAdmin(app, { port: 0, host: '::1' }, log);
  t.match(url, /^http:\/\/\[::1\]:\d+$/);
  t.equal((await fetch(`${url}/nothing`)).status, 404);
});

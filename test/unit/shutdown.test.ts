import t from 'tap';
import { Lifecycle, Shutdown, type ShutdownOptions } from '../../src/shutdown.ts';

/** A shutdown whose close() the test resolves, with every log line and phase change recorded. */
function harness(overrides: Partial<ShutdownOptions> = {}) {
  const lifecycle = new Lifecycle();
  const lines: { level: string; msg: string; fields: object }[] = [];
  let finishClose: () => void = () => {};
  const events: string[] = [];
  const shutdown = new Shutdown({
    lifecycle,
    drainMs: 60_000,
    closeTimeoutMs: 60_000,
    close: () => {
      events.push(`close while ${lifecycle.phase}`);
      return new Promise<void>((resolve) => (finishClose = resolve));
    },
    cutConnections: () => events.push('cut'),
    log: {
      info: (fields, msg) => lines.push({ level: 'info', msg, fields }),
      warn: (fields, msg) => lines.push({ level: 'warn', msg, fields }),
    },
    ...overrides,
  });
  return { lifecycle, lines, events, shutdown, finishClose: () => finishClose() };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

t.test('SIGTERM drains first: not ready and still answering, then closes once the drain is over', async (t) => {
  const h = harness({ drainMs: 30 });
  t.equal(h.lifecycle.phase, 'serving');
  const done = h.shutdown.signal('SIGTERM');
  t.equal(h.lifecycle.phase, 'draining', 'at once: /readyz 503, answers carry connection: close');
  t.same(h.events, [], 'the listener stays open during the drain');
  t.match(h.lines[0], { level: 'info', msg: /answering as usual for 0.03 s/, fields: { signal: 'SIGTERM', drainMs: 30 } });
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.same(h.events, ['close while closing'], 'then it stops accepting, in the closing phase');
  h.finishClose();
  t.equal(await done, 'closed');
  t.same(h.events, ['close while closing'], 'nothing is cut when every request finished');
});

t.test('a second SIGTERM does not cut the drain short', async (t) => {
  const h = harness({ drainMs: 40 });
  const first = h.shutdown.signal('SIGTERM');
  const second = h.shutdown.signal('SIGTERM');
  t.equal(second, first, 'the same shutdown');
  await tick();
  t.equal(h.lifecycle.phase, 'draining');
  t.same(h.events, []);
  t.match(h.lines.at(-1), { msg: 'SIGTERM again: the drain goes on' });
  await new Promise((resolve) => setTimeout(resolve, 70));
  h.finishClose();
  t.equal(await first, 'closed');
});

t.test('SIGINT skips the drain, and cuts one under way short', async (t) => {
  const ctrlC = harness();
  const done = ctrlC.shutdown.signal('SIGINT');
  await tick();
  t.same(ctrlC.events, ['close while closing'], 'Ctrl-C closes at once');
  ctrlC.finishClose();
  t.equal(await done, 'closed');

  const h = harness();
  const draining = h.shutdown.signal('SIGTERM');
  await tick();
  t.same(h.events, [], 'draining for a minute');
  h.shutdown.signal('SIGINT');
  await tick();
  t.same(h.events, ['close while closing'], 'SIGINT ends the drain');
  t.ok(h.lines.some((l) => l.msg === 'SIGINT: skipping the rest of the drain'), 'and says so');
  h.finishClose();
  t.equal(await draining, 'closed');
});

t.test('a drain of 0 seconds closes at once', async (t) => {
  const h = harness({ drainMs: 0 });
  const done = h.shutdown.signal('SIGTERM');
  await tick();
  t.same(h.events, ['close while closing']);
  h.finishClose();
  t.equal(await done, 'closed');
});

t.test('requests still in flight after the close timeout are cut, and it says so', async (t) => {
  const h = harness({ drainMs: 0, closeTimeoutMs: 20 });
  const result = await h.shutdown.signal('SIGTERM');
  t.equal(result, 'timed-out');
  t.same(h.events, ['close while closing', 'cut']);
  t.match(h.lines.at(-1), { level: 'warn', msg: /after the close timeout: cutting them/, fields: { closeTimeoutMs: 20 } });
});

import t from 'tap';
import { RedeliveryMemory } from '../../src/redelivery.ts';

class Retryable extends Error {
  override name = 'Retryable';
}
class Final extends Error {
  override name = 'Final';
}

function memory(max = 100): RedeliveryMemory<string> {
  return new RedeliveryMemory<string>({ max, ttlMs: 60_000, isFinalFailure: (error) => error instanceof Final });
}

/** A promise settled from outside, and how many times work was started. */
function deferred() {
  let resolve!: (value: string) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<string>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function counted(results: (() => Promise<string>)[]) {
  let calls = 0;
  const work = () => {
    const next = results[calls] ?? results[results.length - 1]!;
    calls++;
    return next();
  };
  return { work, calls: () => calls };
}

t.test('concurrent deliveries of one key run the work once and share its result', async (t) => {
  const m = memory();
  const gate = deferred();
  const work = counted([() => gate.promise]);
  const first = m.once('ce\u0000https://falco.org\u0000a', work.work);
  const second = m.once('ce\u0000https://falco.org\u0000a', work.work);
  gate.resolve('deleted');
  t.same(await Promise.all([first, second]), [
    { result: 'deleted', replayed: false },
    { result: 'deleted', replayed: true },
  ]);
  t.equal(work.calls(), 1);
});

t.test('a later delivery gets the remembered result, replayed', async (t) => {
  const m = memory();
  const work = counted([async () => 'deleted', async () => 'again']);
  t.same(await m.once('k', work.work), { result: 'deleted', replayed: false });
  t.same(await m.once('k', work.work), { result: 'deleted', replayed: true });
  t.equal(work.calls(), 1);
  t.equal(m.size, 1);
});

t.test('different keys run their own work', async (t) => {
  const m = memory();
  t.same(await m.once('a', async () => 'A'), { result: 'A', replayed: false });
  t.same(await m.once('b', async () => 'B'), { result: 'B', replayed: false });
  t.equal(m.size, 2);
});

t.test('a retryable failure is forgotten so the next delivery runs the work again', async (t) => {
  const m = memory();
  const work = counted([
    async () => {
      throw new Retryable('API server unreachable');
    },
    async () => 'deleted',
  ]);
  await t.rejects(m.once('k', work.work), { name: 'Retryable', message: 'API server unreachable' });
  t.equal(m.size, 0);
  t.same(await m.once('k', work.work), { result: 'deleted', replayed: false });
  t.equal(work.calls(), 2);
});

t.test('concurrent copies of a retryable failure all fail, and a retry runs the work again', async (t) => {
  const m = memory();
  const gate = deferred();
  const work = counted([() => gate.promise, async () => 'deleted']);
  const first = m.once('k', work.work);
  const second = m.once('k', work.work);
  gate.reject(new Retryable('timeout'));
  await t.rejects(first, { name: 'Retryable', message: 'timeout' });
  await t.rejects(second, { name: 'Retryable', message: 'timeout' });
  t.same(await m.once('k', work.work), { result: 'deleted', replayed: false });
  t.equal(work.calls(), 2);
});

t.test('a final failure is remembered and replayed without running the work', async (t) => {
  const m = memory();
  const failure = new Final('RBAC forbids delete');
  const work = counted([
    async () => {
      throw failure;
    },
    async () => 'deleted',
  ]);
  await t.rejects(m.once('k', work.work), failure);
  t.equal(m.size, 1);
  await t.rejects(m.once('k', work.work), failure);
  t.equal(work.calls(), 1);
});

t.test('max bounds the memory, forgetting the oldest first', async (t) => {
  const m = memory(2);
  for (const key of ['a', 'b', 'c']) await m.once(key, async () => key);
  t.equal(m.size, 2);
  t.same(await m.once('c', async () => 'new'), { result: 'c', replayed: true }, 'the newest is remembered');
  t.same(await m.once('a', async () => 'new'), { result: 'new', replayed: false }, 'the oldest was forgotten');
});

t.test('a late retryable failure does not forget a newer delivery of its key', async (t) => {
  const m = memory(1);
  const old = deferred();
  const first = m.once('k', () => old.promise);
  await m.once('other', async () => 'other');
  const newer = deferred();
  const second = m.once('k', () => newer.promise);
  old.reject(new Retryable('timeout'));
  await t.rejects(first, { name: 'Retryable', message: 'timeout' });
  t.equal(m.size, 1, 'the newer delivery is still remembered');
  newer.resolve('deleted');
  t.same(await second, { result: 'deleted', replayed: false });
  t.same(await m.once('k', async () => 'again'), { result: 'deleted', replayed: true });
});

t.test('forgets an outcome once its time to live has passed', async (t) => {
  const m = new RedeliveryMemory<string>({ max: 10, ttlMs: 20, isFinalFailure: () => true });
  await m.once('k', async () => 'first');
  await new Promise((resolve) => setTimeout(resolve, 40));
  t.same(await m.once('k', async () => 'second'), { result: 'second', replayed: false });
});

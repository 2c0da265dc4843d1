import t from 'tap';
import { entryOverheadBytes, RedeliveryMemory, stringBytes } from '../../src/redelivery.ts';

class Retryable extends Error {
  override name = 'Retryable';
}

function memory(max = 100, maxBytes = 1024 * 1024): RedeliveryMemory<string> {
  return new RedeliveryMemory<string>({ max, ttlMs: 60_000, maxBytes, textOf: (s) => s });
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

t.test('a failure is never remembered: the caller turns an answer to replay into an outcome', async (t) => {
  const m = memory();
  const work = counted([
    async () => {
      throw new Error('RBAC forbids delete');
    },
    async () => 'refused for good',
  ]);
  await t.rejects(m.once('k', work.work), { message: 'RBAC forbids delete' });
  t.equal(m.size, 0);
  t.same(await m.once('k', work.work), { result: 'refused for good', replayed: false });
  t.same(await m.once('k', work.work), { result: 'refused for good', replayed: true });
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
  const m = new RedeliveryMemory<string>({ max: 10, ttlMs: 20, maxBytes: 1024, textOf: (s) => s });
  await m.once('k', async () => 'first');
  await new Promise((resolve) => setTimeout(resolve, 40));
  t.same(await m.once('k', async () => 'second'), { result: 'second', replayed: false });
});

t.test('counts each outcome in bytes once its work ends, with its key and bookkeeping', async (t) => {
  const m = memory();
  const gate = deferred();
  const pending = m.once('key', () => gate.promise);
  t.equal(m.bytes, entryOverheadBytes + 3, 'while the work runs: the key and the entry');
  gate.resolve('x'.repeat(1000));
  await pending;
  t.equal(m.bytes, entryOverheadBytes + 3 + 1000);
  await m.once('wide', async () => 'é€'.repeat(100));
  t.equal(m.bytes - (entryOverheadBytes + 1003), entryOverheadBytes + 4 + 400, 'a character outside Latin-1 takes two bytes, as in V8');
});

t.test('the bytes never pass maxBytes: the least recently used are forgotten, an oversized outcome is not kept', async (t) => {
  const maxBytes = 64 * 1024;
  const m = memory(10_000, maxBytes);
  let most = 0;
  for (let i = 0; i < 500; i++) {
    await m.once(`k${i}`, async () => `${i}:${'r'.repeat(900)}`);
    most = Math.max(most, m.bytes);
  }
  t.ok(most <= maxBytes, `at most ${most} bytes over 500 outcomes`);
  const each = entryOverheadBytes + 4 + 904;
  t.equal(m.size, Math.floor(maxBytes / each), 'as many as fit');
  t.same(await m.once('k499', async () => 'again'), { result: `499:${'r'.repeat(900)}`, replayed: true }, 'the newest are replayed');
  t.same(await m.once('k0', async () => 'again'), { result: 'again', replayed: false }, 'the oldest were forgotten');
  const huge = await m.once('huge', async () => 'h'.repeat(maxBytes));
  t.equal(huge.result.length, maxBytes, 'an outcome larger than the whole budget is still answered');
  t.same(await m.once('huge', async () => 'second'), { result: 'second', replayed: false }, 'but not remembered');
  t.ok(m.bytes <= maxBytes);
});

t.test('a key of any length costs a bounded number of bytes', async (t) => {
  const m = memory();
  const id = `ce\u0000https://falco.org\u0000${'i'.repeat(512 * 1024)}`;
  await m.once(id, async () => 'done');
  t.ok(m.bytes < entryOverheadBytes + 200, `${m.bytes} bytes for a 512 KB key`);
  t.same(await m.once(id, async () => 'again'), { result: 'done', replayed: true }, 'the same long key is still the same delivery');
  t.same(await m.once(`${id}x`, async () => 'other'), { result: 'other', replayed: false });
});

t.test('an outcome forgotten while its work ran is not remembered when it ends', async (t) => {
  const m = memory(1);
  const gate = deferred();
  const first = m.once('a', () => gate.promise);
  await m.once('b', async () => 'B');
  gate.resolve('A');
  t.same(await first, { result: 'A', replayed: false });
  t.equal(m.size, 1);
  t.same(await m.once('b', async () => 'new'), { result: 'B', replayed: true });
});

t.test('equal outcomes are remembered as one object, and still each counted in full', async (t) => {
  const m = new RedeliveryMemory<{ status: number; msg: string }>({ max: 100, ttlMs: 60_000, maxBytes: 1024 * 1024, textOf: (o) => JSON.stringify(o) });
  const first = await m.once('a', async () => ({ status: 202, msg: 'skip: no response rule matches' }));
  const second = await m.once('b', async () => ({ status: 202, msg: 'skip: no response rule matches' }));
  const other = await m.once('c', async () => ({ status: 200, msg: 'act: deleted' }));
  t.not(first.result, second.result, 'the first deliveries get the answers their work made');
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((key) => m.once(key, async () => ({ status: 500, msg: 'ran again' }))));
  t.same(a, { result: first.result, replayed: true });
  t.equal(a!.result, b!.result, 'a and b are replayed from one object');
  t.same(c, { result: other.result, replayed: true }, 'a different outcome stays its own');
  const text = JSON.stringify(first.result).length;
  t.equal(m.bytes, 3 * (entryOverheadBytes + 1) + 2 * text + JSON.stringify(other.result).length, 'the bound counts a copy for each');
});

t.test('a long outcome is remembered as it is, not shared', async (t) => {
  const m = new RedeliveryMemory<{ msg: string }>({ max: 100, ttlMs: 60_000, maxBytes: 1024 * 1024, textOf: (o) => JSON.stringify(o) });
  const msg = 'x'.repeat(5000);
  const first = await m.once('a', async () => ({ msg }));
  const second = await m.once('b', async () => ({ msg }));
  t.not((await m.once('a', async () => ({ msg: '' }))).result, (await m.once('b', async () => ({ msg: '' }))).result);
  t.equal((await m.once('a', async () => ({ msg: '' }))).result, first.result);
  t.equal((await m.once('b', async () => ({ msg: '' }))).result, second.result);
});

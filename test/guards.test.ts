import t from 'tap';
import { Cooldowns, DestructiveBudget, optedOut } from '../src/guards.ts';

function clockAt(start: number) {
  let now = start;
  return { now: () => new Date(now), advance: (ms: number) => (now += ms) };
}

t.test('a pod opts out with the falco-drop/ignore label or annotation', async (t) => {
  t.ok(optedOut({ 'falco-drop/ignore': 'true' }));
  t.ok(optedOut(undefined, { 'falco-drop/ignore': 'True' }));
  t.notOk(optedOut({ 'falco-drop/ignore': 'false' }, { other: 'true' }));
  t.notOk(optedOut(undefined, undefined));
});

t.test('one response per rule and pod within the cooldown', async (t) => {
  const clock = clockAt(1_000_000);
  const cooldowns = new Cooldowns(clock);
  t.equal(cooldowns.remaining('kill', 'uid-1'), 0);
  cooldowns.start('kill', 'uid-1', 60);
  t.equal(cooldowns.remaining('kill', 'uid-1'), 60);
  t.equal(cooldowns.remaining('kill', 'uid-2'), 0, 'another pod');
  t.equal(cooldowns.remaining('label', 'uid-1'), 0, 'another rule');
  clock.advance(59_500);
  t.equal(cooldowns.remaining('kill', 'uid-1'), 1);
  clock.advance(500);
  t.equal(cooldowns.remaining('kill', 'uid-1'), 0);
});

t.test('cooldown memory is bounded', async (t) => {
  const cooldowns = new Cooldowns(clockAt(0), 2);
  cooldowns.start('r', 'a', 60);
  cooldowns.start('r', 'b', 60);
  cooldowns.start('r', 'c', 60);
  t.equal(cooldowns.remaining('r', 'a'), 0, 'the oldest entry was forgotten');
  t.equal(cooldowns.remaining('r', 'c'), 60);
});

t.test('the destructive budget is a sliding minute', async (t) => {
  const clock = clockAt(0);
  const budget = new DestructiveBudget(clock, 3);
  t.match(budget.take(2), { ok: true });
  clock.advance(20_000);
  t.match(budget.take(1), { ok: true });
  t.same(budget.take(1), { ok: false, retryAfterSeconds: 40 }, 'the first slot frees 60 s after it was taken');
  t.match(budget.take(0), { ok: true }, 'non-destructive work always passes');
  clock.advance(40_000);
  t.match(budget.take(2), { ok: true }, 'both slots of the first take are free again');
  t.same(budget.take(1), { ok: false, retryAfterSeconds: 20 });
  t.same(budget.take(5), { ok: false, retryAfterSeconds: 60 }, 'more than the budget never fits: wait a whole minute');
});

t.test('a chain longer than the whole budget waits a minute even on a fresh budget', async (t) => {
  const budget = new DestructiveBudget(clockAt(0), 3);
  t.same(budget.take(4), { ok: false, retryAfterSeconds: 60 });
});

t.test('slots given back are free again at once, and only the grant\'s own', async (t) => {
  const clock = clockAt(0);
  const budget = new DestructiveBudget(clock, 4);
  const first = budget.take(1);
  clock.advance(1_000);
  const second = budget.take(3);
  if (!second.ok || !first.ok) throw new Error('the budget had room');
  t.same(budget.take(1), { ok: false, retryAfterSeconds: 59 }, 'full');
  second.giveBack(2);
  t.match(budget.take(1), { ok: true }, 'a slot given back is taken by the next alert');
  second.giveBack(5);
  t.match(budget.take(2), { ok: true }, 'the grant gives back the one slot it still held');
  t.same(budget.take(1), { ok: false, retryAfterSeconds: 59 }, 'and no more: the first grant\'s slot is still spent');
  clock.advance(58_000);
  first.giveBack(1);
  const late = budget.take(1);
  t.match(late, { ok: true }, 'the first grant gave its slot back before it expired');
  t.same(budget.take(1), { ok: false, retryAfterSeconds: 2 });
  clock.advance(60_000);
  t.match(budget.take(4), { ok: true }, 'every slot has expired');
  if (late.ok) late.giveBack(1);
  t.same(budget.take(1), { ok: false, retryAfterSeconds: 60 }, 'giving back an expired slot frees none of the new ones');
});

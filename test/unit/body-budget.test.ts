import t from 'tap';
import { BodyBudget } from '../../src/body-budget.ts';

/** Whether a promise has settled, read after the microtasks queued so far have run. */
async function settled(promise: Promise<void>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

t.test('bodies that fit are granted at once; the next waits until bytes come back', async (t) => {
  const budget = new BodyBudget(100);
  const a = budget.claim(60);
  const b = budget.claim(40);
  t.ok(await settled(a.granted));
  t.ok(await settled(b.granted));
  t.equal(budget.inUse, 100);
  const c = budget.claim(10);
  t.notOk(await settled(c.granted), 'no room left: it waits');
  t.equal(budget.waiting, 1);
  a.done();
  t.ok(await settled(c.granted), 'granted once a body is done');
  t.equal(budget.inUse, 50);
  b.done();
  c.done();
  t.equal(budget.inUse, 0);
});

t.test('first come, first served: a small body does not overtake a large one waiting', async (t) => {
  const budget = new BodyBudget(100);
  const first = budget.claim(90);
  const large = budget.claim(50);
  const small = budget.claim(5);
  t.notOk(await settled(large.granted));
  t.notOk(await settled(small.granted), 'would fit, but waits its turn');
  first.done();
  t.ok(await settled(large.granted));
  t.ok(await settled(small.granted));
});

t.test('a claim larger than the budget takes the whole budget rather than waiting forever', async (t) => {
  const budget = new BodyBudget(100);
  const huge = budget.claim(5000);
  t.ok(await settled(huge.granted));
  t.equal(budget.inUse, 100);
  huge.done();
  t.equal(budget.inUse, 0);
});

t.test('leaving the queue before the grant frees the place, resolves the claim, and a second done does nothing', async (t) => {
  const budget = new BodyBudget(100);
  const holder = budget.claim(100);
  const gone = budget.claim(50);
  const next = budget.claim(50);
  gone.done();
  t.ok(await settled(gone.granted), 'whoever awaited it goes on');
  t.equal(budget.waiting, 1);
  holder.done();
  holder.done();
  t.ok(await settled(next.granted));
  t.equal(budget.inUse, 50, 'only what is granted is counted');
  next.done();
  gone.done();
  t.equal(budget.inUse, 0);
});

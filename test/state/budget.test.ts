import t from 'tap';
import { budgetAnnotation, budgetName, type BudgetAnswer } from '../../src/state/budget.ts';
import { statusBody } from '../helpers/fake-kube.ts';
import { leasesPath, namespace, setup } from './harness.ts';

const budgetPath = `${leasesPath}/${budgetName}`;

function stored(fake: Awaited<ReturnType<typeof setup>>['fake']): number[] {
  return JSON.parse(fake.leases.get(`${namespace}/${budgetName}`)?.metadata.annotations?.[budgetAnnotation] ?? '[]') as number[];
}

t.test('a budget of N is one budget across replicas: what one takes, the other cannot', async (t) => {
  const { fake, clock, replica } = await setup(t, { perMinute: 3 });
  const a = replica('drop-a');
  const b = replica('drop-b');
  t.match(await a.budget.take(2), { ok: true });
  t.match(fake.requests.map((r) => [r.method, r.path]), [['GET', budgetPath], ['POST', leasesPath]], 'read, then create on 404');
  t.match(fake.requests[1]!.body, {
    metadata: { name: 'drop-budget', namespace, labels: { 'app.kubernetes.io/managed-by': 'falco-drop', 'falco-drop/state': 'budget' }, annotations: { [budgetAnnotation]: JSON.stringify([clock.ms, clock.ms]) } },
    spec: { holderIdentity: 'drop-a', renewTime: '2026-11-26T08:00:00.000000Z', leaseDurationSeconds: 60 },
  });
  clock.advance(10);
  t.same(await b.budget.take(2), { ok: false, retryAfterSeconds: 50 }, "refused until a's first slot expires");
  t.equal(fake.requests.filter((r) => r.method !== 'GET').length, 1, 'a refusal writes nothing');
  t.match(await b.budget.take(1), { ok: true });
  t.match(fake.requests.at(-1), { method: 'PUT', path: budgetPath, body: { metadata: { resourceVersion: /^\d+$/ }, spec: { holderIdentity: 'drop-b' } } });
  t.same(stored(fake), [clock.ms - 10_000, clock.ms - 10_000, clock.ms]);
  t.same(await a.budget.take(1), { ok: false, retryAfterSeconds: 50 });
  clock.advance(50);
  t.match(await a.budget.take(2), { ok: true }, 'the window slides: a minute later the slots are free again');
  t.same(stored(fake), [clock.ms - 50_000, clock.ms, clock.ms], 'expired slots are dropped from the Lease');
  t.same(await a.budget.take(4), { ok: false, retryAfterSeconds: 60 }, 'more than the budget never fits: the longest wait');
});

t.test('concurrent takes from two replicas never grant more than N', async (t) => {
  const { fake, replica } = await setup(t, { perMinute: 4, attempts: 20 });
  const a = replica('drop-a');
  const b = replica('drop-b');
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).budget.take(1)));
  t.equal(answers.filter((x) => x.ok).length, 4);
  t.equal(stored(fake).length, 4);
  t.ok(fake.requests.some((r) => r.method === 'POST') && fake.requests.filter((r) => r.method === 'POST').length >= 1);
});

t.test('giveBack frees the slots of actions that did not happen, at most as many as were taken', async (t) => {
  const { fake, clock, replica } = await setup(t, { perMinute: 3 });
  const a = replica('drop-a');
  const b = replica('drop-b');
  const grant = (await a.budget.take(3)) as Extract<BudgetAnswer, { ok: true }>;
  t.equal(grant.ok, true);
  t.match(await b.budget.take(1), { ok: false });
  await grant.giveBack(2);
  t.equal(stored(fake).length, 1);
  t.match(await b.budget.take(2), { ok: true }, 'the slots given back are the other replica\'s now');
  await grant.giveBack(5);
  t.equal(stored(fake).length, 2, 'only the one slot left of the grant was given back');
  const calls = fake.requests.length;
  await grant.giveBack(1);
  t.equal(fake.requests.length, calls, 'a spent grant gives nothing back and calls nothing');
  const late = (await b.budget.take(1)) as Extract<BudgetAnswer, { ok: true }>;
  clock.advance(61);
  const before = fake.requests.length;
  await late.giveBack(1);
  t.same(fake.requests.slice(before).map((r) => r.method), ['GET'], 'a slot already expired has nothing to free: no write');
});

t.test('taking nothing is granted without a call', async (t) => {
  const { fake, replica } = await setup(t);
  const grant = await replica('drop-a').budget.take(0);
  t.equal(grant.ok, true);
  if (grant.ok) await grant.giveBack(1);
  t.equal(fake.requests.length, 0);
});

t.test('more than the whole budget at once is refused for a full minute, even when nothing is taken', async (t) => {
  const { fake, replica } = await setup(t, { perMinute: 3 });
  t.same(await replica('drop-a').budget.take(4), { ok: false, retryAfterSeconds: 60 });
  t.same(fake.requests.map((r) => r.method), ['GET']);
});

t.test('two replicas creating the budget at once: the loser reads it and updates it', async (t) => {
  const { fake, replica } = await setup(t, { perMinute: 5 });
  const a = replica('drop-a');
  const b = replica('drop-b');
  // Both read 404 before either creates: the second create is refused 409 AlreadyExists.
  fake.fail({ method: 'GET', path: /drop-budget$/, status: 404, body: statusBody(404, 'leases.coordination.k8s.io "drop-budget" not found'), times: 2 });
  const [ra, rb] = await Promise.all([a.budget.take(2), b.budget.take(2)]);
  t.match([ra, rb], [{ ok: true }, { ok: true }]);
  t.equal(stored(fake).length, 4, 'both takes are in the one budget');
  t.equal(fake.requests.filter((r) => r.method === 'POST').length, 2);
  t.equal(fake.requests.filter((r) => r.method === 'PUT').length, 1);
});

t.test('a storm of conflicts ends in a retryable error after the bounded attempts', async (t) => {
  const { fake, replica } = await setup(t, { attempts: 3 });
  const a = replica('drop-a');
  const grant = (await a.budget.take(1)) as Extract<BudgetAnswer, { ok: true }>;
  fake.fail({ method: 'PUT', path: /drop-budget$/, status: 409, body: statusBody(409, 'the object has been modified', undefined, 'Conflict'), times: 6 });
  t.match(await a.budget.take(1).catch((e: unknown) => e), { code: 'DROP_K8S_UNAVAILABLE', status: 503, retryAfterSeconds: 7, message: /^take 1 from the destructive budget \(Lease falco-drop\/drop-budget\): another replica changed it 3 times/ });
  t.match(await grant.giveBack(1).catch((e: unknown) => e), { code: 'DROP_K8S_UNAVAILABLE', message: /^give 1 back to the destructive budget/ });
  t.same(stored(fake).length, 1, 'nothing was written');
});

t.test('an API that is down or refuses is a DropError, never a grant', async (t) => {
  const { fake, replica } = await setup(t);
  const a = replica('drop-a');
  fake.fail({ method: 'GET', path: /drop-budget$/, status: 503 });
  t.match(await a.budget.take(1).catch((e: unknown) => e), { name: 'DropError', code: 'DROP_K8S_UNAVAILABLE', retryable: true, retryAfterSeconds: 7 });
  fake.fail({ method: 'POST', path: /leases$/, status: 403, body: statusBody(403, 'cannot create resource "leases"') });
  t.match(await a.budget.take(1).catch((e: unknown) => e), { code: 'DROP_K8S_REJECTED', retryable: false });
  const down = replica('drop-down', 'http://127.0.0.1:1');
  t.match(await down.budget.take(1).catch((e: unknown) => e), { code: 'DROP_K8S_UNAVAILABLE', message: /unreachable/ });
});

t.test('a budget Lease drop did not write is refused, not guessed; one without the annotation is empty', async (t) => {
  const { fake, replica } = await setup(t);
  const a = replica('drop-a');
  for (const value of ['{"not":"an array"}', '[1,"2"]', 'not json']) {
    fake.leases.set(`${namespace}/${budgetName}`, { metadata: { name: budgetName, namespace, resourceVersion: '9', annotations: { [budgetAnnotation]: value } } });
    t.match(await a.budget.take(1).catch((e: unknown) => e), { code: 'DROP_K8S_REJECTED', message: /not a JSON array of times; delete it to reset the budget/ }, value);
  }
  fake.leases.set(`${namespace}/${budgetName}`, { metadata: { name: budgetName, namespace, resourceVersion: '9' } });
  t.match(await a.budget.take(3), { ok: true });
  t.equal(stored(fake).length, 3);
});

t.test("a replica starts from its own last copy: one write per take while no other replica writes; a stale copy loses, is re-read, and the budget holds", async (t) => {
  const { fake, replica } = await setup(t, { perMinute: 4 });
  const a = replica('drop-a');
  const b = replica('drop-b');
  const calls = (from: number) => fake.requests.slice(from).map((r) => r.method);
  t.match(await a.budget.take(1), { ok: true });
  let mark = fake.requests.length;
  t.match(await a.budget.take(1), { ok: true });
  t.same(calls(mark), ['PUT'], 'the second take is one write, no read');

  // b writes: a's copy is stale. Its write loses on the version (409), it reads, and writes again.
  const fromB = await b.budget.take(1);
  mark = fake.requests.length;
  t.match(await a.budget.take(1), { ok: true });
  t.same(calls(mark), ['PUT', 'GET', 'PUT'], 'stale: lost, read, written');
  t.equal(stored(fake).length, 4, "b's slot was not overwritten");

  // The budget is full in a's copy; b gives its slot back. a's refusal would come from a stale
  // copy, so a reads before it answers: the freed slot is granted.
  if (!fromB.ok) throw new Error('b should have had its slot');
  await fromB.giveBack(1);
  mark = fake.requests.length;
  t.match(await a.budget.take(1), { ok: true }, 'granted from a fresh read');
  t.same(calls(mark), ['GET', 'PUT'], 'a refusal from its own copy is checked by a read first');
  t.same(await a.budget.take(1), { ok: false, retryAfterSeconds: 60 }, 'and a real refusal is still a refusal');
  t.equal(stored(fake).length, 4);
});

t.test('a budget Lease deleted by hand (a reset) is read again and created anew', async (t) => {
  const { fake, replica } = await setup(t, { perMinute: 3 });
  const a = replica('drop-a');
  t.match(await a.budget.take(2), { ok: true });
  fake.leases.delete(`${namespace}/${budgetName}`);
  fake.fail({ method: 'PUT', path: new RegExp(`${budgetName}$`), status: 404, body: statusBody(404, `leases.coordination.k8s.io "${budgetName}" not found`) });
  const mark = fake.requests.length;
  t.match(await a.budget.take(1), { ok: true });
  t.same(fake.requests.slice(mark).map((r) => r.method), ['PUT', 'GET', 'POST'], 'the write finds it gone: read (404), create');
  t.equal(stored(fake).length, 1, 'the reset budget holds only the new slot');
});

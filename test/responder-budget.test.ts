/**
 * The budget taken while the rules are claimed (src/responder.ts): what the claims won do not
 * need is given back, and an early take that does not fit what they need is replaced by a take
 * of exactly that, as when the budget was taken after the claims.
 */
import t, { type Test } from 'tap';
import { createKubeClient } from '../src/kube.ts';
import { budgetAnnotation, budgetName } from '../src/state/budget.ts';
import { ClaimStore } from '../src/state/claims.ts';
import { createFakeAndApp, lower, type TestApp } from './helpers/app.ts';
import { makePod } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { ManualClock } from './state/harness.ts';

const podName = 'mysql-db-7d59548d75-g9msc';
const podUid = '5f0a3c2e-9b1d-4e7a-8c6f-2b3d4e5f6a7b';
/** Two destructive rules on the same alert: an eviction, then a delete. */
const policy = (perMinute: number) =>
  [
    `guards: {destructivePerMinute: ${perMinute}}`,
    'rules:',
    '  - name: first',
    '    match: {rules: ["Terminal shell in container"]}',
    '    actions: [{action: evict}]',
    '  - name: second',
    '    match: {rules: ["Terminal shell in container"]}',
    '    actions: [{action: delete}]',
    '',
  ].join('\n');

async function setup(t: Test, perMinute: number) {
  const clock = new ManualClock(Date.parse('2025-06-12T09:21:08Z'));
  const { fake, drop } = await createFakeAndApp(t, [makePod('default', podName, podUid)], { policyYaml: policy(perMinute), now: () => clock.now() });
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 5000 });
  t.teardown(() => kube.close());
  const other = new ClaimStore({ leases: kube.coordination, namespace: 'falco-drop', identity: 'drop-other', clock, retryAfterSeconds: 5 });
  /** The other replica has answered this event for rule `first` already. */
  const firstDoneElsewhere = async (id: string) => {
    const claim = await other.claim({ rule: 'first', pod: { namespace: 'default', name: podName, uid: podUid }, event: { source: 'https://falco.org', id }, cooldownSeconds: 60 });
    if (!claim.won) throw new Error('the other replica claims first');
    await other.record(claim.claim, { outcomes: [{ action: 'evict', status: 'done', reason: 'evicted at drop-other' }] });
  };
  const slots = () => JSON.parse(fake.leases.get(`falco-drop/${budgetName}`)?.metadata.annotations?.[budgetAnnotation] ?? '[]').length as number;
  return { fake, drop, firstDoneElsewhere, slots };
}

function deliver(drop: TestApp, id: string) {
  return drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders(id)), payload: falcoPayload() });
}

t.test('two slots taken while claiming, one rule answered from the record: the other slot is given back', async (t) => {
  const { drop, firstDoneElsewhere, slots } = await setup(t, 10);
  await firstDoneElsewhere('ev-1');
  const res = await deliver(drop, 'ev-1');
  t.equal(res.statusCode, 200);
  t.match(JSON.parse(res.body).actions, [{ action: 'evict', reason: 'evicted at drop-other' }, { action: 'delete', status: 'done' }]);
  await drop.app.background.drain();
  t.equal(slots(), 1, 'one slot: the delete');
});

t.test('the early take refused for two slots while one is needed: one is taken then, and the delete happens', async (t) => {
  const { drop, firstDoneElsewhere, slots } = await setup(t, 1);
  await firstDoneElsewhere('ev-2');
  const res = await deliver(drop, 'ev-2');
  t.equal(res.statusCode, 200, 'not 429: one slot is free, and one is all it needs');
  t.match(JSON.parse(res.body).actions, [{ action: 'evict' }, { action: 'delete', status: 'done' }]);
  await drop.app.background.drain();
  t.equal(slots(), 1);
});

t.test('a rule thought lost that is won: the early take is given back and what is needed is taken', async (t) => {
  const { drop, slots } = await setup(t, 10);
  // As if this replica held rule second's claim for another event, then gave it back just before.
  drop.safety.expectsLoss = (rule: { name: string }) => rule.name === 'second';
  const res = await deliver(drop, 'ev-3');
  t.equal(res.statusCode, 200);
  t.match(JSON.parse(res.body).actions, [{ action: 'evict', status: 'done' }, { action: 'delete', status: 'done' }]);
  await drop.app.background.drain();
  t.equal(slots(), 2, 'two slots: the eviction and the delete, the early one given back');
});

t.test('the early take and the take of what is needed both fail: 503, the claim given back, nothing done', async (t) => {
  const { fake, drop, firstDoneElsewhere } = await setup(t, 10);
  await firstDoneElsewhere('ev-4');
  fake.fail({ method: 'GET', path: new RegExp(`/leases/${budgetName}$`), status: 503, times: 2 });
  const res = await deliver(drop, 'ev-4');
  t.equal(res.statusCode, 503);
  t.match(JSON.parse(res.body).error, { code: 'DROP_K8S_UNAVAILABLE', message: /destructive budget/ });
  t.ok(fake.pods.has(`default/${podName}`), 'not deleted');
  t.equal(fake.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/${budgetName}`)).length, 2, 'tried twice: early, then for what is needed');
  t.ok(fake.requests.some((r) => r.method === 'DELETE' && r.path.includes('/leases/drop-claim-')), 'the claim of rule second given back');
});

import t from 'tap';
import { evictAction } from '../../src/actions/evict.ts';
import { statusBody } from '../helpers/fake-kube.ts';
import { cluster, contextFor, podName, podPath, podUid, validator } from './context.ts';

const evictionPath = `${podPath}/eviction`;
const evictionBody = (grace = 1) => ({
  apiVersion: 'policy/v1',
  kind: 'Eviction',
  metadata: { name: podName, namespace: 'default' },
  deleteOptions: { gracePeriodSeconds: grace, preconditions: { uid: podUid } },
});
const budget = { namespace: 'default', name: 'web-pdb', matchLabels: { app: 'web' }, disruptionsAllowed: 0, desiredHealthy: 2, currentHealthy: 2 };

t.test('evicts the pod through the Eviction API, bound to its UID', async (t) => {
  const { fake, context } = await cluster(t);
  const outcome = await evictAction.run(await context(), { gracePeriodSeconds: 20 });
  t.same(outcome, { action: 'evict', status: 'done', reason: 'evicted pod default/web-7d59548d75-g9msc (grace 20s)' });
  t.same(fake.requests.map((r) => [r.method, r.path, r.query, r.contentType, r.body]), [['POST', evictionPath, {}, 'application/json', evictionBody(20)]]);
  t.equal(fake.pods.size, 0);
});

t.test('a disruption budget refusal is a retryable 429 that names the budget', async (t) => {
  const { fake, context } = await cluster(t);
  fake.addDisruptionBudget({ ...budget });
  await t.rejects(evictAction.run(await context(), {}), {
    code: 'DROP_K8S_THROTTLED',
    status: 429,
    retryAfterSeconds: 7,
    message:
      "evict pod default/web-7d59548d75-g9msc: its PodDisruptionBudget refused (The disruption budget web-pdb needs 2 healthy pods and has 2 currently); retry later: Kubernetes answered 429: Cannot evict pod as it would violate the pod's disruption budget.",
  });
  t.equal(fake.pods.size, 1, 'the pod stays');
});

t.test('a budget that allows a disruption lets the eviction through', async (t) => {
  const { fake, context } = await cluster(t);
  fake.addDisruptionBudget({ ...budget, disruptionsAllowed: 1 });
  t.equal((await evictAction.run(await context(), {})).status, 'done');
  t.equal(fake.disruptionBudgets[0]?.disruptionsAllowed, 0);
});

t.test('answers each API failure as the retry rule wants', async (t) => {
  const cases = [
    { status: 404, outcome: { status: 'done', reason: /already gone/ } },
    { status: 409, outcome: { status: 'skipped', reason: /UID precondition failed/ } },
    { status: 422, error: { code: 'DROP_K8S_REJECTED', retryable: false } },
    // An API-server throttle (priority and fairness) is no budget refusal: its Retry-After is kept.
    { status: 429, headers: { 'retry-after': '3' }, error: { code: 'DROP_K8S_THROTTLED', retryAfterSeconds: 3, message: /^evict pod default\/web-7d59548d75-g9msc: Kubernetes answered 429/ } },
    { status: 500, error: { code: 'DROP_K8S_UNAVAILABLE', retryAfterSeconds: 7 } },
  ];
  for (const c of cases) {
    const { fake, context } = await cluster(t);
    fake.fail({ method: 'POST', path: /eviction$/, status: c.status, body: statusBody(c.status, `answer ${c.status}`), headers: c.headers });
    const run = evictAction.run(await context(), {});
    if (c.outcome) t.match(await run, c.outcome, `${c.status}`);
    else await t.rejects(run, { message: new RegExp(`Kubernetes answered ${c.status}: answer ${c.status}`), ...c.error }, `${c.status}`);
  }
});

t.test('a 429 whose body is no Status (a proxy in front of the API server) is an ordinary throttle', async (t) => {
  const { fake, context } = await cluster(t);
  fake.fail({ method: 'POST', path: /eviction$/, status: 429, rawBody: 'Too Many Requests' });
  await t.rejects(evictAction.run(await context(), {}), { code: 'DROP_K8S_THROTTLED', message: `evict pod default/${podName}: Kubernetes answered 429: Too Many Requests` });
});

t.test('a new pod under the same name is not evicted', async (t) => {
  const { fake, context } = await cluster(t);
  const ctx = await context();
  fake.pods.get(`default/${podName}`)!.metadata.uid = 'another-uid';
  t.match(await evictAction.run(ctx, {}), { status: 'skipped', reason: /no longer the pod/ });
  t.equal(fake.pods.size, 1);
});

t.test('running twice evicts once and reports the pod already gone the second time', async (t) => {
  const { fake, context } = await cluster(t);
  const ctx = await context();
  t.equal((await evictAction.run(ctx, {})).status, 'done');
  t.match(await evictAction.run(ctx, {}), { status: 'done', reason: /already gone/ });
  t.same(fake.requests.map((r) => r.method), ['POST', 'POST']);
});

t.test('dry run asks the API server for a dry-run eviction', async (t) => {
  const { fake, context } = await cluster(t);
  t.same(await evictAction.run(await context({ dryRun: true }), {}), {
    action: 'evict',
    status: 'dry-run',
    reason: 'would evict pod default/web-7d59548d75-g9msc (grace 1s; server-side dry run accepted)',
  });
  t.same(fake.requests[0]?.query, { dryRun: 'All' });
  t.same(fake.requests[0]?.body, evictionBody());
  t.equal(fake.pods.size, 1);
});

t.test('dry run reports a budget refusal instead of asking for a retry', async (t) => {
  const { fake, context } = await cluster(t);
  fake.addDisruptionBudget({ ...budget });
  t.match(await evictAction.run(await context({ dryRun: true }), {}), { status: 'dry-run', reason: /PodDisruptionBudget refuses now: The disruption budget web-pdb needs 2/ });
});

t.test('dry run without a cluster only says what it would do', async (t) => {
  t.same(await evictAction.run(contextFor(undefined, undefined, { dryRun: true }), { gracePeriodSeconds: 5 }), {
    action: 'evict',
    status: 'dry-run',
    reason: 'would evict pod default/web-7d59548d75-g9msc (grace 5s; no cluster, budgets not checked)',
  });
});

t.test('the parameter schema takes a grace period only', async (t) => {
  const valid = validator(evictAction);
  t.equal(valid({ gracePeriodSeconds: 30 }), true);
  t.equal(valid({ gracePeriodSeconds: 1.5 }), false);
  t.equal(valid({ force: true }), false);
});

import t from 'tap';
import { annotateAction } from '../../src/actions/annotate.ts';
import { labelAction } from '../../src/actions/label.ts';
import { createKubeClient } from '../../src/kube.ts';
import { statusBody } from '../helpers/fake-kube.ts';
import { cluster, contextFor, podName, podPath, podUid, replicaSetPod, validator } from './context.ts';

const actions = [
  { action: labelAction, field: 'labels', past: 'labelled' },
  { action: annotateAction, field: 'annotations', past: 'annotated' },
] as const;

for (const { action, field, past } of actions) {
  t.test(`${action.name}: one merge patch sets and removes ${field}, bound to the pod's UID`, async (t) => {
    const { fake, context } = await cluster(t, replicaSetPod({ [field]: { app: 'web', stale: 'x' } }));
    const outcome = await action.run(await context(), { [field]: { 'falco-drop.dev/alert': 'shell', stale: null } });
    t.same(outcome, { action: action.name, status: 'done', reason: `${past} pod default/${podName}: falco-drop.dev/alert=shell, stale-` });
    t.same(fake.requests.map((r) => [r.method, r.path, r.query, r.contentType, r.body]), [
      ['PATCH', podPath, {}, 'application/merge-patch+json', { metadata: { [field]: { 'falco-drop.dev/alert': 'shell', stale: null }, uid: podUid } }],
    ]);
    t.same(fake.pods.get(`default/${podName}`)?.metadata[field], { app: 'web', 'falco-drop.dev/alert': 'shell' });
  });

  t.test(`${action.name}: running twice patches once and then skips without a request`, async (t) => {
    const { fake, context } = await cluster(t);
    const parameters = { [field]: { tier: 'suspect', gone: null } };
    t.equal((await action.run(await context(), parameters)).status, 'done');
    const again = await action.run(await context(), parameters);
    t.same(again, { action: action.name, status: 'skipped', reason: `pod default/${podName} is already ${past}: tier=suspect, gone-` });
    t.same(fake.requests, [], 'no request the second time');
  });

  t.test(`${action.name}: answers each API failure as the retry rule wants`, async (t) => {
    const cases = [
      { status: 404, outcome: { status: 'skipped', reason: /is already gone/ } },
      { status: 409, error: { code: 'DROP_K8S_REJECTED' } },
      { status: 422, error: { code: 'DROP_K8S_REJECTED', retryable: false } },
      { status: 429, error: { code: 'DROP_K8S_THROTTLED', retryAfterSeconds: 7 } },
      { status: 503, error: { code: 'DROP_K8S_UNAVAILABLE', retryAfterSeconds: 7 } },
    ];
    for (const c of cases) {
      const { fake, context } = await cluster(t);
      fake.fail({ method: 'PATCH', path: /pods/, status: c.status, body: statusBody(c.status, `answer ${c.status}`) });
      const run = action.run(await context(), { [field]: { tier: 'suspect' } });
      if (c.outcome) t.match(await run, c.outcome, `${c.status}`);
      else await t.rejects(run, { message: `patch pod default/${podName}: Kubernetes answered ${c.status}: answer ${c.status}`, ...c.error }, `${c.status}`);
    }
  });

  t.test(`${action.name}: a new pod under the same name is left alone (the API server refuses the UID)`, async (t) => {
    const { fake, context } = await cluster(t);
    const ctx = await context();
    fake.pods.get(`default/${podName}`)!.metadata.uid = 'another-uid';
    t.same(await action.run(ctx, { [field]: { tier: 'suspect' } }), {
      action: action.name,
      status: 'skipped',
      reason: `pod default/${podName} is no longer the pod that raised the alert (its UID changed)`,
    });
    t.notOk(fake.pods.get(`default/${podName}`)?.metadata[field]?.tier);
  });

  t.test(`${action.name}: dry run patches with dryRun=All, or only says what it would do without a cluster`, async (t) => {
    const { fake, context } = await cluster(t);
    t.same(await action.run(await context({ dryRun: true }), { [field]: { tier: 'suspect' } }), {
      action: action.name,
      status: 'dry-run',
      reason: `would set on pod default/${podName}: tier=suspect (server-side dry run accepted)`,
    });
    t.same(fake.requests[0]?.query, { dryRun: 'All' });
    t.notOk(fake.pods.get(`default/${podName}`)?.metadata[field]?.tier, 'nothing changed');
    t.same(await action.run(contextFor(undefined, undefined), { [field]: { tier: null } }), {
      action: action.name,
      status: 'dry-run',
      reason: `would set on pod default/${podName}: tier- (no cluster, not sent)`,
    });
  });
}

t.test('annotate shortens long values in its outcome but sends them whole', async (t) => {
  const { fake, context } = await cluster(t);
  const long = 'x'.repeat(100);
  t.match(await annotateAction.run(await context(), { annotations: { note: long } }), { reason: `annotated pod default/${podName}: note=${'x'.repeat(40)}…` });
  t.equal(fake.pods.get(`default/${podName}`)?.metadata.annotations?.note, long);
});

t.test('label keys and values are checked as Kubernetes checks them when the policy loads', async (t) => {
  const valid = validator(labelAction);
  const good = ['app', 'falco-drop.dev/quarantine', 'a.b-c/x_y.z', `${'a'.repeat(253)}/n`, 'N'.repeat(63)];
  for (const key of good) t.equal(valid({ labels: { [key]: 'v' } }), true, `key ${key}`);
  const badKeys = ['', '-app', 'app-', 'Example.com/x', 'a/b/c', '/x', 'x/', `${'a'.repeat(254)}/n`, 'N'.repeat(64), 'sp ace'];
  for (const key of badKeys) t.equal(valid({ labels: { [key]: 'v' } }), false, `key ${JSON.stringify(key)}`);
  for (const value of ['', 'v', 'a-b_c.d', 'V'.repeat(63), null]) t.equal(valid({ labels: { k: value } }), true, `value ${JSON.stringify(value)}`);
  for (const value of ['-v', 'v.', 'V'.repeat(64), 'a b', 1, true]) t.equal(valid({ labels: { k: value } }), false, `value ${JSON.stringify(value)}`);
  t.equal(valid({ labels: {} }), false, 'at least one label');
  t.equal(valid({}), false, 'labels are required');
  t.equal(valid({ labels: { k: 'v' }, annotations: { k: 'v' } }), false, 'nothing else');
});

t.test('annotation values may be any string, keys are checked like label keys', async (t) => {
  const valid = validator(annotateAction);
  t.equal(valid({ annotations: { 'falco-drop.dev/output': 'A shell was spawned: <bash> & more\n', gone: null } }), true);
  t.equal(valid({ annotations: { 'bad key': 'v' } }), false);
  t.equal(valid({ annotations: { k: 5 } }), false);
});

t.test('the merge-patch header keeps the client timeout: a hung patch is retried as unavailable', async (t) => {
  const { fake, context } = await cluster(t);
  const quick = createKubeClient(fake.kubeConfig(), { timeoutMs: 100 });
  t.teardown(() => quick.close());
  fake.fail({ method: 'PATCH', path: /pods/, delayMs: 400, status: 200, body: {} });
  await t.rejects(labelAction.run({ ...(await context()), kube: quick }, { labels: { tier: 'suspect' } }), {
    code: 'DROP_K8S_UNAVAILABLE',
    message: /^patch pod default\/\S+: Kubernetes API timed out/,
  });
});

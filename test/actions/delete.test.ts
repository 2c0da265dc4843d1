import t from 'tap';
import { deleteAction } from '../../src/actions/delete.ts';
import { statusBody } from '../helpers/fake-kube.ts';
import { cluster, contextFor, podName, podPath, podUid, replicaSetPod, validator } from './context.ts';

const deleteBody = (extra: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 1, preconditions: { uid: podUid }, ...extra });

t.test('deletes the pod bound to its UID with the default grace period', async (t) => {
  const { fake, context } = await cluster(t);
  const outcome = await deleteAction.run(await context(), {});
  t.same(outcome, { action: 'delete', status: 'done', reason: 'deleted pod default/web-7d59548d75-g9msc (grace 1s)' });
  t.same(fake.requests.map((r) => [r.method, r.path, r.query, r.contentType, r.body]), [['DELETE', podPath, {}, 'application/json', deleteBody()]]);
  t.equal(fake.pods.size, 0);
});

t.test('spares pods by owner kind or when standalone, and deletes the others', async (t) => {
  const owned = (kind: string) => replicaSetPod({ ownerReferences: [{ apiVersion: 'apps/v1', kind, name: 'owner', uid: 'o', controller: true }] });
  const cases = [
    { name: 'a DaemonSet pod', pod: owned('DaemonSet'), parameters: { skipOwnerKinds: ['DaemonSet'] }, reason: /owned by DaemonSet owner \(skipOwnerKinds\)/ },
    { name: "a CronJob's Job pod", pod: owned('Job'), parameters: { skipOwnerKinds: ['StatefulSet', 'Job'] }, reason: /owned by Job owner/ },
    { name: 'a standalone pod', pod: replicaSetPod({ ownerReferences: undefined }), parameters: { skipStandalone: true }, reason: /has no controller \(skipStandalone\)/ },
    {
      name: 'a pod whose only owner is not its controller',
      pod: replicaSetPod({ ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'n', uid: 'n' }] }),
      parameters: { skipStandalone: true },
      reason: /has no controller/,
    },
  ];
  for (const c of cases) {
    const { fake, context } = await cluster(t, c.pod);
    const outcome = await deleteAction.run(await context(), c.parameters);
    t.match(outcome, { status: 'skipped', reason: c.reason }, c.name);
    t.same(fake.requests, [], `${c.name}: no request`);
  }
  for (const [name, pod, parameters] of [
    ['a StatefulSet pod when only DaemonSets are spared', owned('StatefulSet'), { skipOwnerKinds: ['DaemonSet'] }],
    ['a standalone pod when standalone pods are not spared', replicaSetPod({ ownerReferences: undefined }), { skipOwnerKinds: ['Job'] }],
    ['a ReplicaSet pod when standalone pods are spared', replicaSetPod(), { skipStandalone: true }],
  ] as const) {
    const { context } = await cluster(t, pod);
    t.equal((await deleteAction.run(await context(), parameters)).status, 'done', name);
  }
});

t.test('answers each API failure as the retry rule wants', async (t) => {
  const cases = [
    { status: 404, outcome: { status: 'done', reason: /already gone/ } },
    { status: 409, outcome: { status: 'skipped', reason: /UID precondition failed/ } },
    { status: 422, error: { code: 'DROP_K8S_REJECTED', retryable: false } },
    { status: 429, error: { code: 'DROP_K8S_THROTTLED', retryAfterSeconds: 7 } },
    { status: 500, error: { code: 'DROP_K8S_UNAVAILABLE', retryAfterSeconds: 7 } },
  ];
  for (const c of cases) {
    const { fake, context } = await cluster(t);
    fake.fail({ method: 'DELETE', path: /pods/, status: c.status, body: statusBody(c.status, `answer ${c.status}`) });
    const run = deleteAction.run(await context(), {});
    if (c.outcome) t.match(await run, c.outcome, `${c.status}`);
    else await t.rejects(run, { ...c.error, message: new RegExp(`delete pod default/web-7d59548d75-g9msc: Kubernetes answered ${c.status}`) }, `${c.status}`);
  }
});

t.test('running twice deletes once and reports the pod already gone the second time', async (t) => {
  const { fake, context } = await cluster(t);
  const ctx = await context();
  t.equal((await deleteAction.run(ctx, {})).status, 'done');
  t.match(await deleteAction.run(ctx, {}), { status: 'done', reason: /already gone/ });
  t.equal(fake.requests.length, 2);
});

t.test('dry run sends a server-side dry-run delete, or only says what it would do without a cluster', async (t) => {
  const { fake, context } = await cluster(t);
  const outcome = await deleteAction.run(await context({ dryRun: true }), { gracePeriodSeconds: 30 });
  t.same(outcome, { action: 'delete', status: 'dry-run', reason: 'would delete pod default/web-7d59548d75-g9msc (grace 30s; server-side dry run accepted)' });
  t.same(fake.requests[0]?.body, deleteBody({ gracePeriodSeconds: 30, dryRun: ['All'] }));
  t.equal(fake.pods.size, 1, 'the pod is still there');
  t.match(await deleteAction.run(contextFor(undefined, undefined, { dryRun: true }), { skipStandalone: true }), { status: 'dry-run', reason: /no cluster/ });
});

t.test('the parameter schema accepts the owner kinds and refuses anything else', async (t) => {
  const valid = validator(deleteAction);
  t.equal(valid({ gracePeriodSeconds: 0, skipOwnerKinds: ['DaemonSet', 'StatefulSet', 'Job'], skipStandalone: true }), true);
  for (const bad of [{ skipOwnerKinds: ['ReplicaSet'] }, { skipOwnerKinds: ['Job', 'Job'] }, { skipStandalone: 'yes' }, { gracePeriodSeconds: -1 }, { grace: 1 }]) {
    t.equal(valid(bad), false, JSON.stringify(bad));
  }
});

t.test('a pod already being deleted at least as fast is not deleted again; a slower deletion is shortened', async (t) => {
  // As the API server keeps a terminating pod: deletionTimestamp and the grace period it was deleted with.
  const terminating = (grace: number) => replicaSetPod({ deletionTimestamp: '2025-06-12T09:21:10Z', deletionGracePeriodSeconds: grace });
  for (const grace of [0, 1]) {
    const { fake, context } = await cluster(t, terminating(grace));
    const outcome = await deleteAction.run(await context(), {});
    t.same(outcome, { action: 'delete', status: 'skipped', reason: `pod default/${podName} is already being deleted (grace ${grace}s, since 2025-06-12T09:21:10.000Z)` }, `grace ${grace}s`);
    t.same(fake.requests.filter((r) => r.method === 'DELETE'), [], `grace ${grace}s: no second DELETE`);
  }
  const { fake, context } = await cluster(t, terminating(30));
  const outcome = await deleteAction.run(await context(), {});
  t.equal(outcome.status, 'done', 'a deletion with 30 s of grace is cut to 1 s');
  t.same(fake.requests.filter((r) => r.method === 'DELETE').map((r) => r.body), [deleteBody()]);
});

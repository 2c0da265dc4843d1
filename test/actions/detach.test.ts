import t from 'tap';
import { detachAction, detachedFromAnnotation, detachedLabel, detachedLabelsAnnotation } from '../../src/actions/detach.ts';
import { statusBody, type FakeKube } from '../helpers/fake-kube.ts';
import { cluster, contextFor, podName, podPath, podUid, replicaSetPod, validator } from './context.ts';

const replicaSetPath = '/apis/apps/v1/namespaces/default/replicasets/web-7d59548d75';

function addReplicaSet(fake: FakeKube, selector: Record<string, unknown> = { matchLabels: { app: 'web', 'pod-template-hash': '7d59548d75' } }): void {
  fake.addObject('replicasets', { metadata: { name: 'web-7d59548d75', namespace: 'default' }, spec: { replicas: 2, selector } });
}

function ownedBy(kind: string, name: string) {
  return { ownerReferences: [{ apiVersion: kind === 'Job' ? 'batch/v1' : 'apps/v1', kind, name, uid: 'owner-uid', controller: true }] };
}

t.test('reads the ReplicaSet selector, then drops the owner reference and the selected labels in one merge patch', async (t) => {
  const { fake, context } = await cluster(t, replicaSetPod({ labels: { app: 'web', 'pod-template-hash': '7d59548d75', team: 'a' } }));
  addReplicaSet(fake);
  const outcome = await detachAction.run(await context(), {});
  t.same(outcome, {
    action: 'detach',
    status: 'done',
    reason: `detached pod default/${podName} from ReplicaSet/web-7d59548d75: owner reference and labels app, pod-template-hash removed`,
  });
  t.same(fake.requests.map((r) => [r.method, r.path, r.query, r.contentType, r.body]), [
    ['GET', replicaSetPath, {}, undefined, ''],
    [
      'PATCH',
      podPath,
      {},
      'application/merge-patch+json',
      {
        metadata: {
          ownerReferences: null,
          labels: { app: null, 'pod-template-hash': null, [detachedLabel]: 'true' },
          annotations: { [detachedFromAnnotation]: 'ReplicaSet/web-7d59548d75', [detachedLabelsAnnotation]: '{"app":"web","pod-template-hash":"7d59548d75"}' },
          uid: podUid,
        },
      },
    ],
  ]);
  const pod = fake.pods.get(`default/${podName}`)!;
  t.equal(pod.metadata.ownerReferences, undefined);
  t.same(pod.metadata.labels, { team: 'a', [detachedLabel]: 'true' });
});

t.test('running twice detaches once and then skips: the pod has no controller any more', async (t) => {
  const { fake, context } = await cluster(t);
  addReplicaSet(fake);
  t.equal((await detachAction.run(await context(), {})).status, 'done');
  t.same(await detachAction.run(await context(), {}), { action: 'detach', status: 'skipped', reason: `pod default/${podName} is already detached from ReplicaSet/web-7d59548d75` });
  t.same(fake.requests, []);
});

t.test('a pod without a controller has nothing to detach from', async (t) => {
  const { fake, context } = await cluster(t, replicaSetPod({ ownerReferences: undefined }));
  t.same(await detachAction.run(await context(), {}), { action: 'detach', status: 'skipped', reason: `pod default/${podName} has no controller to detach from` });
  t.same(fake.requests, []);
});

t.test('reads the selector of each owner kind and removes the keys that take the pod out of it', async (t) => {
  const cases = [
    {
      kind: 'DaemonSet',
      resource: 'daemonsets',
      path: '/apis/apps/v1/namespaces/default/daemonsets/agent',
      selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }, { key: 'team', operator: 'Exists' }, { key: 'canary', operator: 'DoesNotExist' }] },
      removed: { app: null, team: null },
    },
    {
      kind: 'Job',
      resource: 'jobs',
      path: '/apis/batch/v1/namespaces/default/jobs/agent',
      selector: { matchLabels: { 'batch.kubernetes.io/controller-uid': 'job-uid' } },
      removed: { 'batch.kubernetes.io/controller-uid': null },
    },
  ] as const;
  for (const c of cases) {
    const pod = replicaSetPod({ ...ownedBy(c.kind, 'agent'), labels: { app: 'web', team: 'a', 'batch.kubernetes.io/controller-uid': 'job-uid', 'job-name': 'agent' } });
    const { fake, context } = await cluster(t, pod);
    fake.addObject(c.resource, { metadata: { name: 'agent', namespace: 'default' }, spec: { selector: c.selector } });
    t.equal((await detachAction.run(await context(), {})).status, 'done', c.kind);
    t.same(fake.requests[0]?.path, c.path, `${c.kind}: read`);
    t.same((fake.requests[1]?.body as { metadata: { labels: unknown } }).metadata.labels, { ...c.removed, [detachedLabel]: 'true' }, `${c.kind}: labels`);
  }
});

t.test('a selector that removing labels cannot escape fails without touching the pod', async (t) => {
  const { fake, context } = await cluster(t);
  addReplicaSet(fake, { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['db'] }] });
  t.same(await detachAction.run(await context(), {}), {
    action: 'detach',
    status: 'failed',
    reason: `pod default/${podName}: no label to remove takes it out of ReplicaSet/web-7d59548d75's selector, not detached`,
  });
  t.same(fake.mutations(), []);
});

t.test('StatefulSet pods and unknown owners are skipped without a request', async (t) => {
  for (const [kind, reason] of [
    ['StatefulSet', /StatefulSet replaces a pod under the same name.*StatefulSet db would be blocked/],
    ['ReplicationController', /cannot detach from a ReplicationController \(only ReplicaSet, DaemonSet and Job\)/],
  ] as const) {
    const { fake, context } = await cluster(t, replicaSetPod(ownedBy(kind, 'db')));
    t.match(await detachAction.run(await context(), {}), { status: 'skipped', reason }, kind);
    t.same(fake.requests, [], `${kind}: no request`);
  }
});

t.test('an owner already deleted still has its reference dropped, saving the pod from the garbage collector', async (t) => {
  const { fake, context } = await cluster(t, replicaSetPod({ labels: undefined }));
  const outcome = await detachAction.run(await context(), {});
  t.same(outcome, {
    action: 'detach',
    status: 'done',
    reason: `detached pod default/${podName} from ReplicaSet/web-7d59548d75 (already deleted): owner reference and labels (none) removed`,
  });
  t.same((fake.requests[1]?.body as { metadata: unknown }).metadata, {
    ownerReferences: null,
    labels: { [detachedLabel]: 'true' },
    annotations: { [detachedFromAnnotation]: 'ReplicaSet/web-7d59548d75', [detachedLabelsAnnotation]: '{}' },
    uid: podUid,
  });
});

t.test('answers each failure of the owner read as the retry rule wants', async (t) => {
  for (const [status, code] of [
    [403, 'DROP_K8S_REJECTED'],
    [429, 'DROP_K8S_THROTTLED'],
    [500, 'DROP_K8S_UNAVAILABLE'],
  ] as const) {
    const { fake, context } = await cluster(t);
    addReplicaSet(fake);
    fake.fail({ method: 'GET', path: /replicasets/, status, body: statusBody(status, `answer ${status}`) });
    await t.rejects(detachAction.run(await context(), {}), { code, message: `read ReplicaSet default/web-7d59548d75: Kubernetes answered ${status}: answer ${status}` }, `${status}`);
    t.same(fake.mutations(), [], `${status}: no patch`);
  }
});

t.test('answers each failure of the pod patch as the retry rule wants', async (t) => {
  const cases = [
    { status: 404, outcome: { status: 'skipped', reason: /is already gone/ } },
    { status: 409, error: { code: 'DROP_K8S_REJECTED' } },
    { status: 422, error: { code: 'DROP_K8S_REJECTED' } },
    { status: 429, error: { code: 'DROP_K8S_THROTTLED' } },
    { status: 500, error: { code: 'DROP_K8S_UNAVAILABLE' } },
  ];
  for (const c of cases) {
    const { fake, context } = await cluster(t);
    addReplicaSet(fake);
    fake.fail({ method: 'PATCH', path: /pods/, status: c.status, body: statusBody(c.status, `answer ${c.status}`) });
    const run = detachAction.run(await context(), {});
    if (c.outcome) t.match(await run, c.outcome, `${c.status}`);
    else await t.rejects(run, { message: /^patch pod/, ...c.error }, `${c.status}`);
  }
});

t.test('a new pod under the same name keeps its owner', async (t) => {
  const { fake, context } = await cluster(t);
  addReplicaSet(fake);
  const ctx = await context();
  fake.pods.get(`default/${podName}`)!.metadata.uid = 'another-uid';
  t.match(await detachAction.run(ctx, {}), { status: 'skipped', reason: /no longer the pod that raised the alert/ });
  t.equal(fake.pods.get(`default/${podName}`)?.metadata.ownerReferences?.length, 1);
});

t.test('dry run reads the owner and patches with dryRun=All, or only says what it would do without a cluster', async (t) => {
  const { fake, context } = await cluster(t);
  addReplicaSet(fake);
  t.match(await detachAction.run(await context({ dryRun: true }), {}), { status: 'dry-run', reason: /^would detach pod \S+ from ReplicaSet\/web-7d59548d75: .* \(server-side dry run accepted\)$/ });
  t.same(fake.requests.map((r) => [r.method, r.query]), [['GET', {}], ['PATCH', { dryRun: 'All' }]]);
  t.equal(fake.pods.get(`default/${podName}`)?.metadata.ownerReferences?.length, 1, 'still owned');
  t.same(await detachAction.run(contextFor(undefined, undefined), {}), {
    action: 'detach',
    status: 'dry-run',
    reason: `would detach pod default/${podName} from its controller (no cluster, owner not read)`,
  });
});

t.test('detach takes no parameters', async (t) => {
  const valid = validator(detachAction);
  t.equal(valid({}), true);
  t.equal(valid({ keepLabels: true }), false);
});

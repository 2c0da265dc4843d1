import t from 'tap';
import { isolateAction, quarantineLabel } from '../../src/actions/isolate.ts';
import { statusBody } from '../helpers/fake-kube.ts';
import { cluster, contextFor, podName, podPath, podUid, replicaSetPod, validator } from './context.ts';

const policyName = `falco-drop-quarantine-${podUid}`;
const policiesPath = '/apis/networking.k8s.io/v1/namespaces/default/networkpolicies';
const dns = { allowEgress: [{ cidr: '10.96.0.10/32', ports: [{ port: 53, protocol: 'UDP' }, { port: 53 }] }] };

/** The NetworkPolicy drop sends for the pod: its own name, owned by the pod, deny-all but `egress`. */
function expectedPolicy(egress?: unknown[]) {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: policyName,
      namespace: 'default',
      labels: { 'app.kubernetes.io/managed-by': 'falco-drop' },
      annotations: { 'falco-drop/rule': 'quarantine-shells', 'falco-drop/falco-rule': 'Terminal shell in container' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: podName, uid: podUid }],
    },
    spec: { podSelector: { matchLabels: { [quarantineLabel]: podUid } }, policyTypes: ['Ingress', 'Egress'], ...(egress ? { egress } : {}) },
  };
}

const dnsEgress = [{ to: [{ ipBlock: { cidr: '10.96.0.10/32' } }], ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] }];

t.test('creates a deny-all NetworkPolicy for the pod, then labels the pod into it', async (t) => {
  const { fake, context } = await cluster(t);
  const outcome = await isolateAction.run(await context(), dns);
  t.same(outcome, {
    action: 'isolate',
    status: 'done',
    reason: `isolated pod default/${podName}: NetworkPolicy ${policyName} created, label ${quarantineLabel}=${podUid} set: deny all ingress, egress only to 10.96.0.10/32`,
  });
  t.same(fake.requests.map((r) => [r.method, r.path, r.query, r.contentType, r.body]), [
    ['POST', policiesPath, {}, 'application/json', expectedPolicy(dnsEgress)],
    ['PATCH', podPath, {}, 'application/merge-patch+json', { metadata: { labels: { [quarantineLabel]: podUid }, uid: podUid } }],
  ]);
  t.equal(fake.pods.get(`default/${podName}`)?.metadata.labels?.[quarantineLabel], podUid);
  t.same(fake.object('networkpolicies', 'default', policyName)?.spec, expectedPolicy(dnsEgress).spec);
});

t.test('with no allow-list the policy has no rule at all: every packet in and out is denied', async (t) => {
  const { fake, context } = await cluster(t);
  t.match(await isolateAction.run(await context(), {}), { status: 'done', reason: /deny all ingress, no egress$/ });
  t.same(fake.requests[0]?.body, expectedPolicy());
});

t.test('an allowance without ports opens every port to that CIDR', async (t) => {
  const { fake, context } = await cluster(t);
  await isolateAction.run(await context(), { allowEgress: [{ cidr: '10.0.0.0/8' }] });
  t.same((fake.requests[0]?.body as { spec: { egress: unknown } }).spec.egress, [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }]);
});

t.test('running twice finds the policy and the label in place and changes nothing', async (t) => {
  const { fake, context } = await cluster(t);
  t.equal((await isolateAction.run(await context(), dns)).status, 'done');
  const again = await isolateAction.run(await context(), dns);
  t.same(again, { action: 'isolate', status: 'skipped', reason: `pod default/${podName} is already isolated (${policyName})` });
  t.same(
    fake.requests.map((r) => `${r.method} ${r.path}`),
    [`POST ${policiesPath}`, `GET ${policiesPath}/${policyName}`],
    'a create answered AlreadyExists, a read, no write',
  );
  t.equal(fake.object('networkpolicies', 'default', policyName)?.metadata.generation, 1);
});

t.test('a changed allow-list replaces the existing policy, bound to its resourceVersion', async (t) => {
  const { fake, context } = await cluster(t);
  await isolateAction.run(await context(), {});
  const before = fake.object('networkpolicies', 'default', policyName)!;
  const outcome = await isolateAction.run(await context(), dns);
  t.match(outcome, { status: 'done', reason: /NetworkPolicy \S+ updated, label \S+ already set/ });
  const put = fake.requests.at(-1)!;
  t.same([put.method, put.path, put.contentType], ['PUT', `${policiesPath}/${policyName}`, 'application/json']);
  t.same(put.body, { ...expectedPolicy(dnsEgress), metadata: { ...expectedPolicy().metadata, resourceVersion: before.metadata.resourceVersion } });
  t.same(fake.object('networkpolicies', 'default', policyName)?.spec, expectedPolicy(dnsEgress).spec);
  t.equal(fake.object('networkpolicies', 'default', policyName)?.metadata.generation, 2);
});

t.test('a pod labelled earlier whose policy is missing gets the policy back', async (t) => {
  const { fake, context } = await cluster(t, replicaSetPod({ labels: { app: 'web', [quarantineLabel]: podUid } }));
  t.match(await isolateAction.run(await context(), {}), { status: 'done', reason: /created, label \S+ already set/ });
  t.same(fake.requests.map((r) => r.method), ['POST']);
});

t.test('answers each failure of the policy calls as the retry rule wants', async (t) => {
  const cases = [
    { method: 'POST', status: 403, error: { code: 'DROP_K8S_REJECTED', message: /^create NetworkPolicy default\/\S+: Kubernetes answered 403/ } },
    { method: 'POST', status: 422, error: { code: 'DROP_K8S_REJECTED' } },
    { method: 'POST', status: 429, error: { code: 'DROP_K8S_THROTTLED', retryAfterSeconds: 7 } },
    { method: 'POST', status: 500, error: { code: 'DROP_K8S_UNAVAILABLE' } },
    { method: 'GET', status: 404, error: { code: 'DROP_K8S_REJECTED', message: /^read NetworkPolicy/ } },
    { method: 'GET', status: 503, error: { code: 'DROP_K8S_UNAVAILABLE', message: /^read NetworkPolicy/ } },
    { method: 'PUT', status: 409, error: { code: 'DROP_K8S_REJECTED', message: /^replace NetworkPolicy/ } },
    { method: 'PUT', status: 500, error: { code: 'DROP_K8S_UNAVAILABLE', message: /^replace NetworkPolicy/ } },
  ];
  for (const c of cases) {
    const { fake, context } = await cluster(t);
    // An existing policy with another spec, so the read and the replace are reached.
    fake.addObject('networkpolicies', { metadata: { name: policyName, namespace: 'default' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } });
    if (c.method === 'POST') fake.objects.clear();
    fake.fail({ method: c.method, path: /networkpolicies/, status: c.status, body: statusBody(c.status, `answer ${c.status}`) });
    await t.rejects(isolateAction.run(await context(), {}), c.error, `${c.method} ${c.status}`);
    t.notOk(fake.pods.get(`default/${podName}`)?.metadata.labels?.[quarantineLabel], `${c.method} ${c.status}: the pod is not labelled`);
  }
});

t.test('answers each failure of the pod patch as the retry rule wants', async (t) => {
  const cases = [
    { status: 404, outcome: { status: 'skipped', reason: /is already gone/ } },
    { status: 422, error: { code: 'DROP_K8S_REJECTED', message: /^patch pod/ } },
    { status: 429, error: { code: 'DROP_K8S_THROTTLED' } },
    { status: 500, error: { code: 'DROP_K8S_UNAVAILABLE' } },
  ];
  for (const c of cases) {
    const { fake, context } = await cluster(t);
    fake.fail({ method: 'PATCH', path: /pods/, status: c.status, body: statusBody(c.status, `answer ${c.status}`) });
    const run = isolateAction.run(await context(), {});
    if (c.outcome) t.match(await run, c.outcome, `${c.status}`);
    else await t.rejects(run, c.error, `${c.status}`);
  }
});

t.test('a new pod under the same name is not labelled into quarantine', async (t) => {
  const { fake, context } = await cluster(t);
  const ctx = await context();
  fake.pods.get(`default/${podName}`)!.metadata.uid = 'another-uid';
  t.match(await isolateAction.run(ctx, {}), { status: 'skipped', reason: /no longer the pod that raised the alert/ });
  t.notOk(fake.pods.get(`default/${podName}`)?.metadata.labels?.[quarantineLabel]);
});

t.test('dry run sends every write with dryRun=All and stores nothing', async (t) => {
  const { fake, context } = await cluster(t);
  const outcome = await isolateAction.run(await context({ dryRun: true }), dns);
  t.match(outcome, { status: 'dry-run', reason: /^would isolate pod default\/\S+ \(server-side dry run accepted\): NetworkPolicy/ });
  t.same(fake.requests.map((r) => [r.method, r.query]), [['POST', { dryRun: 'All' }], ['PATCH', { dryRun: 'All' }]]);
  t.equal(fake.objects.size, 0);
  t.notOk(fake.pods.get(`default/${podName}`)?.metadata.labels?.[quarantineLabel]);
});

t.test('dry run replaces a differing policy with dryRun=All too', async (t) => {
  const { fake, context } = await cluster(t);
  await isolateAction.run(await context(), {});
  t.equal((await isolateAction.run(await context({ dryRun: true }), dns)).status, 'dry-run');
  t.same(fake.requests.at(-1)?.query, { dryRun: 'All' });
  t.same(fake.object('networkpolicies', 'default', policyName)?.spec, expectedPolicy().spec, 'unchanged');
});

t.test('dry run without a cluster only says what it would do', async (t) => {
  t.same(await isolateAction.run(contextFor(undefined, undefined), dns), {
    action: 'isolate',
    status: 'dry-run',
    reason: `would isolate pod default/${podName}: deny all ingress, egress only to 10.96.0.10/32 (no cluster, not sent)`,
  });
});

t.test('the allow-list takes CIDRs and ports, and refuses anything else when the policy loads', async (t) => {
  const valid = validator(isolateAction);
  for (const good of [{}, dns, { allowEgress: [{ cidr: '0.0.0.0/0' }, { cidr: 'fd00::/8', ports: [{ port: 443, protocol: 'TCP' }] }, { cidr: '2001:db8::1/128' }] }]) {
    t.equal(valid(good), true, JSON.stringify(good));
  }
  for (const bad of [
    { allowEgress: [{ cidr: '10.96.0.10' }] },
    { allowEgress: [{ cidr: '256.0.0.0/8' }] },
    { allowEgress: [{ cidr: '10.0.0.0/33' }] },
    { allowEgress: [{ cidr: 'kube-dns' }] },
    { allowEgress: [{ ports: [{ port: 53 }] }] },
    { allowEgress: [{ cidr: '10.0.0.0/8', ports: [] }] },
    { allowEgress: [{ cidr: '10.0.0.0/8', ports: [{ port: 0 }] }] },
    { allowEgress: [{ cidr: '10.0.0.0/8', ports: [{ port: 53, protocol: 'ICMP' }] }] },
    { allowEgress: [{ cidr: '10.0.0.0/8', namespace: 'x' }] },
    { allowIngress: [] },
  ]) {
    t.equal(valid(bad), false, JSON.stringify(bad));
  }
});

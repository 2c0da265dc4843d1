// The release without Knative (release-standalone.yaml): drop as a Deployment behind a ClusterIP
// Service, posted to directly by Falcosidekick, with the same RBAC, state store and policy as
// release.yaml, and a NetworkPolicy that admits Falcosidekick's pods only.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { config, find, release, releaseStandalone, root, standalone, type Json, type Manifest } from './documents.ts';

const isKnative = (doc: Json) => /\.knative\.dev\//.test(doc.apiVersion);
const key = ({ doc }: Manifest) => `${doc.apiVersion}/${doc.kind}/${doc.metadata.namespace ?? ''}/${doc.metadata.name}`;
/** The release tool stamps the version label and the image; compare objects without them. */
function unstamped(doc: Json): Json {
  const copy = structuredClone(doc);
  delete copy.metadata.labels?.['app.kubernetes.io/version'];
  for (const c of copy.spec?.template?.spec?.containers ?? []) delete c.image;
  return copy;
}
const envOf = (container: Json): Record<string, string> => Object.fromEntries(container.env.map((e: Json) => [e.name, e.value]));

const deployment = find(releaseStandalone, 'Deployment', 'drop');
const pod = deployment.spec.template;
const [container] = pod.spec.containers;
const knativeDrop = find(release, 'Service', 'drop').spec.template.spec;
const [knativeContainer] = knativeDrop.containers;

t.test('release-standalone.yaml is config/standalone/ plus config/\'s files without Knative, and nothing Knative', async (t) => {
  t.same(releaseStandalone.filter((m) => isKnative(m.doc)).map(key), [], 'no Knative object: it applies on a cluster without Knative');
  const shared = config.filter((m) => !isKnative(m.doc));
  t.same(releaseStandalone.map(key).sort(), [...shared, ...standalone].map(key).sort());
  t.same(
    shared.map((m) => m.doc.kind).sort(),
    ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Namespace', 'Role', 'RoleBinding', 'ServiceAccount'],
    'the namespace, drop\'s account, its RBAC, its state Role and its policy',
  );
  // The same objects, not copies that could drift: each is in release.yaml exactly as here.
  for (const { doc } of shared) {
    t.same(find(releaseStandalone, doc.kind, doc.metadata.name), find(release, doc.kind, doc.metadata.name), `${doc.kind} ${doc.metadata.name}: as in release.yaml`);
  }
  t.same(release.filter((m) => standalone.some((s) => key(s) === key(m))).map(key), [], 'release.yaml takes none of config/standalone/');
  // The header: two lines of text, then one line per file.
  const lines = readFileSync(join(root, 'release-standalone.yaml'), 'utf8').split('\n').slice(2);
  const header = lines.slice(0, lines.findIndex((l) => !l.startsWith('#   '))).map((l) => l.slice(4));
  const files = new Set([...shared, ...standalone].map((m) => m.where.replace(/^config\//, '').replace(/#\d+$/, '')));
  t.same(new Set(header), files, 'its header names the files it is made of');
  for (const { where, doc } of standalone) t.same(unstamped(find(releaseStandalone, doc.kind, doc.metadata.name)), unstamped(doc), `${where}: released as written`);
});

t.test('drop runs as the Knative Service runs it: image, account, resources, securityContext, env, policy', async (t) => {
  t.equal(container.image, knativeContainer.image, 'the same image, pinned the same way');
  t.equal(find(standalone, 'Deployment', 'drop').spec.template.spec.containers[0].image, 'ko://falco-drop', 'the placeholder the release tool resolves');
  t.equal(pod.spec.serviceAccountName, knativeDrop.serviceAccountName);
  t.same(container.resources, knativeContainer.resources);
  t.same(container.securityContext, knativeContainer.securityContext, 'identical, so Pod Security "restricted" admits it as it admits the Knative one');
  t.match(container.securityContext, { runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
  t.same(container.volumeMounts, knativeContainer.volumeMounts);
  t.same(pod.spec.volumes, knativeDrop.volumes);
  const { DROP_ALLOWED_SENDERS, ...knativeEnv } = envOf(knativeContainer);
  t.ok(DROP_ALLOWED_SENDERS, 'the Knative one lists its Triggers\' accounts');
  t.same(envOf(container), knativeEnv, 'the same settings, less the Knative sender accounts');
  t.equal(envOf(container).DROP_AUDIENCE, undefined, 'no token to check: no Broker sends one');
  t.equal(pod.spec.automountServiceAccountToken, undefined, 'drop calls the API with its account\'s token');
});

t.test('two replicas, on two nodes when it can, replaced one at a time with both kept ready', async (t) => {
  t.equal(deployment.spec.replicas, 2);
  t.match(pod.metadata.labels, deployment.spec.selector.matchLabels, 'the selector selects the pods');
  t.same(deployment.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
  const [spread] = pod.spec.topologySpreadConstraints;
  t.match(spread, { topologyKey: 'kubernetes.io/hostname', maxSkew: 1, whenUnsatisfiable: 'ScheduleAnyway' }, 'a preference: one node still runs both');
  t.match(pod.metadata.labels, spread.labelSelector.matchLabels);
  t.equal(pod.metadata.labels['app.kubernetes.io/component'], 'drop');
});

t.test('the kubelet probes /readyz and /healthz on drop\'s port', async (t) => {
  const [port, admin] = container.ports;
  t.match(port, { name: 'http', containerPort: Number(envOf(container).PORT ?? 8080) }, 'drop listens on PORT, 8080 by default');
  t.match(admin, { name: 'admin', containerPort: Number(envOf(container).DROP_ADMIN_PORT) }, 'and serves /metrics on DROP_ADMIN_PORT');
  const knativeAnnotations = find(release, 'Service', 'drop').spec.template.metadata.annotations;
  const scrape = Object.fromEntries(Object.entries(knativeAnnotations).filter(([k]) => k.startsWith('prometheus.io/')));
  t.same(pod.metadata.annotations, scrape, 'scraped as the Knative Service is');
  t.equal(scrape['prometheus.io/port'], String(admin.containerPort));
  t.equal(container.readinessProbe.httpGet.path, '/readyz', '503 from the first moment of a shutdown');
  t.equal(container.livenessProbe.httpGet.path, '/healthz');
  t.equal(container.readinessProbe.httpGet.port, port.name);
  t.equal(container.livenessProbe.httpGet.port, port.name);
  t.same(
    (({ periodSeconds, timeoutSeconds, failureThreshold }) => ({ periodSeconds, timeoutSeconds, failureThreshold }))(container.livenessProbe),
    (({ periodSeconds, timeoutSeconds, failureThreshold }) => ({ periodSeconds, timeoutSeconds, failureThreshold }))(knativeContainer.livenessProbe),
    'liveness as in the Knative Service',
  );
});

const service = find(releaseStandalone, 'Service', 'drop');
const address = `http://${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`;

t.test('the Service takes port 80 to drop\'s port, at the address Falcosidekick is given', async (t) => {
  t.equal(service.apiVersion, 'v1');
  t.equal(service.spec.type, 'ClusterIP', 'never outside the cluster');
  t.match(pod.metadata.labels, service.spec.selector);
  t.same(service.spec.ports, [{ name: 'http', port: 80, targetPort: container.ports[0].name, protocol: 'TCP' }]);
  t.equal(address, 'http://drop.falco-drop.svc.cluster.local', 'the same address the Knative release gives drop');
  const docs = readFileSync(join(root, 'docs', 'install-standalone.md'), 'utf8');
  for (const output of ['webhook', 'talon']) t.match(docs, `    ${output}:\n      address: ${address}\n`, `docs: Falcosidekick's ${output}.address`);
});

t.test('the PodDisruptionBudget keeps one drop answering through a drain, and never blocks one', async (t) => {
  const budget = find(releaseStandalone, 'PodDisruptionBudget', 'drop');
  t.match(pod.metadata.labels, budget.spec.selector.matchLabels);
  t.equal(budget.spec.maxUnavailable, 1, 'one at a time; with one replica left alone, a drain still proceeds');
  t.ok(budget.spec.maxUnavailable < deployment.spec.replicas, 'at least one stays up');
  t.equal(budget.spec.minAvailable, undefined);
});

// --- The NetworkPolicy, evaluated the way the API documents it (networking.k8s.io/v1). ---

interface Peer {
  readonly namespace: string;
  readonly namespaceLabels?: Record<string, string>;
  readonly labels: Record<string, string>;
}
/** matchLabels only: the release uses nothing else, and anything else is refused here. */
function selects(selector: Json, labels: Record<string, string>): boolean {
  if (selector === undefined) return true;
  if (Object.keys(selector).some((k) => k !== 'matchLabels')) throw new Error(`unsupported selector ${JSON.stringify(selector)}`);
  return Object.entries<string>(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}
/** Whether `policy` (in its namespace) lets `from` reach a pod with `labels` on `port` (a container port). */
function admits(policy: Json, from: Peer, port: { name: string; containerPort: number }): boolean {
  const namespaceLabels = { 'kubernetes.io/metadata.name': from.namespace, ...from.namespaceLabels };
  return policy.spec.ingress.some(
    (rule: Json) =>
      (rule.ports ?? [{}]).some((p: Json) => (p.protocol ?? 'TCP') === 'TCP' && (p.port === undefined || p.port === port.name || p.port === port.containerPort)) &&
      // No `from`: every source.
      (rule.from === undefined ||
        rule.from.some((peer: Json) => {
        if (peer.ipBlock) throw new Error('ipBlock peers are not evaluated here');
        // A peer with a podSelector alone means pods of the policy's own namespace.
        const namespaceOk = peer.namespaceSelector ? selects(peer.namespaceSelector, namespaceLabels) : from.namespace === policy.metadata.namespace;
          return namespaceOk && selects(peer.podSelector, from.labels);
        })),
  );
}

// The falcosidekick chart's pod labels (falcosecurity/charts, charts/falcosidekick/templates/
// _helpers.tpl "falcosidekick.labels", deployment.yaml and deployment-ui.yaml), as the Falco
// chart installs it with `falcosidekick.enabled: true` (release `falco`, namespace `falco`).
const chartLabels = {
  'helm.sh/chart': 'falcosidekick-0.14.0',
  'app.kubernetes.io/name': 'falcosidekick',
  'app.kubernetes.io/instance': 'falco',
  'app.kubernetes.io/version': '2.31.1',
  'app.kubernetes.io/part-of': 'falcosidekick',
  'app.kubernetes.io/managed-by': 'Helm',
};
const sidekick: Peer = { namespace: 'falco', labels: { ...chartLabels, 'app.kubernetes.io/component': 'core' } };

t.test('the NetworkPolicy admits Falcosidekick\'s pods to drop\'s port, and no one else', async (t) => {
  const policies = releaseStandalone.filter((m) => m.doc.kind === 'NetworkPolicy');
  t.equal(policies.length, 1);
  const policy = find(releaseStandalone, 'NetworkPolicy', 'drop');
  t.equal(policy.metadata.namespace, deployment.metadata.namespace);
  t.ok(selects(policy.spec.podSelector, pod.metadata.labels), 'it applies to drop\'s pods');
  t.same(policy.spec.policyTypes, ['Ingress'], 'egress stays open: drop calls the Kubernetes API');
  const [port] = container.ports;
  t.ok(admits(policy, sidekick, port), 'Falcosidekick (the chart\'s core pods) in falco');
  t.notOk(admits(policy, { ...sidekick, labels: { ...chartLabels, 'app.kubernetes.io/component': 'ui' } }, port), 'not the Falcosidekick web UI, which carries the same name label');
  t.notOk(admits(policy, { namespace: 'falco', labels: { 'app.kubernetes.io/name': 'falco', 'app.kubernetes.io/instance': 'falco' } }, port), 'not Falco itself');
  t.notOk(admits(policy, { ...sidekick, namespace: 'default' }, port), 'not a pod labelled like Falcosidekick in another namespace');
  t.notOk(admits(policy, { ...sidekick, namespace: 'falco-drop' }, port), 'not one in drop\'s own namespace');
  t.notOk(admits(policy, { namespace: 'falco', labels: {}, namespaceLabels: { 'app.kubernetes.io/name': 'falcosidekick' } }, port), 'not any pod of falco');
  t.notOk(admits(policy, sidekick, { name: 'admin', containerPort: 9464 }), 'only drop\'s port');
  // The evaluator itself: a bare rule admits everything, a podSelector-only peer means the own namespace.
  t.ok(admits({ metadata: { namespace: 'n' }, spec: { ingress: [{}] } }, { namespace: 'x', labels: {} }, port));
  t.notOk(admits({ metadata: { namespace: 'n' }, spec: { ingress: [{ from: [{ podSelector: {} }] }] } }, { namespace: 'x', labels: {} }, port));
  t.throws(() => selects({ matchExpressions: [] }, {}), /unsupported selector/);
  t.throws(() => admits({ metadata: { namespace: 'n' }, spec: { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }] } }, sidekick, port), /ipBlock/);
});

t.test('the docs name the namespace and labels the NetworkPolicy admits, and how to change them', async (t) => {
  const policy = find(releaseStandalone, 'NetworkPolicy', 'drop');
  const [peer] = policy.spec.ingress[0].from;
  const docs = readFileSync(join(root, 'docs', 'install-standalone.md'), 'utf8');
  t.match(docs, `\`${peer.namespaceSelector.matchLabels['kubernetes.io/metadata.name']}\``);
  for (const [k, v] of Object.entries<string>(peer.podSelector.matchLabels)) t.match(docs, `${k}: ${v}`);
  // The patch the docs give for another namespace and labels: applied, it admits those pods instead.
  const [, patch = '{}'] = /kubectl -n falco-drop patch networkpolicy drop --type json -p '([^']+)'/.exec(docs) ?? [];
  const patched = structuredClone(policy);
  for (const op of JSON.parse(patch)) {
    t.equal(op.op, 'replace');
    const path = (op.path as string).split('/').slice(1).map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = path.pop() as string;
    const parent = path.reduce((node: Json, p) => node[p], patched);
    t.ok(last in parent, `${op.path} exists`);
    parent[last] = op.value;
  }
  t.ok(admits(patched, { namespace: 'security', labels: { 'app.kubernetes.io/name': 'falcosidekick', 'app.kubernetes.io/instance': 'sidekick', 'app.kubernetes.io/component': 'core' } }, container.ports[0]), 'the patched policy admits the docs\' example');
  t.notOk(admits(patched, sidekick, container.ports[0]), 'and no longer the default');
});

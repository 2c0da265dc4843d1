import { readFileSync } from 'node:fs';
import * as apps from 'kubernetes-models/apps/v1';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as policyApi from 'kubernetes-models/policy/v1';
import * as rbac from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as core from 'kubernetes-models/v1';
import t, { type Test } from 'tap';
import { parsePolicy } from '../../src/policy.ts';
import { matchesName } from '../../src/match.ts';
import { parseSettings } from '../../src/settings.ts';
import { config, demo, find, readManifests, release, releaseStandalone, standalone, type Json, type Manifest } from './documents.ts';

const namespace = 'falco-drop';
const falcoType = 'falco.rule.output.v1';
const replyType = 'dev.falcodrop.response.v1';
const everything: readonly Manifest[] = [...config, ...demo];
/** Every manifest of both releases, as in config/ and as released. */
const all: readonly Manifest[] = [...everything, ...standalone, ...release, ...releaseStandalone];

/** Core, apps and RBAC objects are validated against the Kubernetes schemas. */
const kubernetesModels: Record<string, new (doc: Json) => { validate(): void }> = {
  'v1/Namespace': core.Namespace,
  'v1/ServiceAccount': core.ServiceAccount,
  'v1/ConfigMap': core.ConfigMap,
  'v1/Service': core.Service,
  'apps/v1/Deployment': apps.Deployment,
  'policy/v1/PodDisruptionBudget': policyApi.PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': networking.NetworkPolicy,
  'rbac.authorization.k8s.io/v1/ClusterRole': rbac.ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': rbac.ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': rbac.Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': rbac.RoleBinding,
};
const knativeKinds = new Set(['serving.knative.dev/v1/Service', 'eventing.knative.dev/v1/Broker', 'eventing.knative.dev/v1/Trigger']);
const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);

// What Knative Serving accepts in a revision template with its default feature flags
// (knative/serving pkg/apis/serving/fieldmask.go): anything else is refused by its webhook.
const knative = {
  podSpec: ['serviceAccountName', 'containers', 'volumes', 'imagePullSecrets', 'enableServiceLinks', 'automountServiceAccountToken', 'timeoutSeconds', 'containerConcurrency', 'responseStartTimeoutSeconds', 'idleTimeoutSeconds'],
  container: ['name', 'args', 'command', 'env', 'workingDir', 'envFrom', 'image', 'imagePullPolicy', 'livenessProbe', 'ports', 'readinessProbe', 'resources', 'securityContext', 'startupProbe', 'terminationMessagePath', 'terminationMessagePolicy', 'volumeMounts'],
  probe: ['httpGet', 'tcpSocket', 'exec', 'grpc', 'initialDelaySeconds', 'timeoutSeconds', 'periodSeconds', 'successThreshold', 'failureThreshold'],
  securityContext: ['capabilities', 'readOnlyRootFilesystem', 'runAsUser', 'runAsGroup', 'runAsNonRoot', 'allowPrivilegeEscalation', 'seccompProfile', 'privileged'],
  volume: ['name', 'configMap', 'secret', 'projected'],
};
const unknownKeys = (value: Json, allowed: readonly string[]): string[] => Object.keys(value ?? {}).filter((k) => !allowed.includes(k));
const isoDuration = /^P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$/;
const attributeName = /^[a-z][a-z0-9]*$/;

t.test('every document of config/, config/demo/, config/standalone/ and both releases parses and says what it is', async (t) => {
  t.ok(config.length >= 11 && demo.length >= 4 && release.length === config.length);
  t.ok(standalone.length >= 4 && releaseStandalone.length > standalone.length);
  for (const { where, doc } of all) {
    t.match(doc, { apiVersion: String, kind: String, metadata: { name: String } }, where);
    t.ok(kubernetesModels[`${doc.apiVersion}/${doc.kind}`] ?? knativeKinds.has(`${doc.apiVersion}/${doc.kind}`), `${where}: ${doc.apiVersion} ${doc.kind} is a kind these tests check`);
    t.equal(clusterScoped.has(doc.kind), doc.metadata.namespace === undefined, `${where}: namespaced objects name their namespace`);
  }
  t.throws(() => readManifests(['test/release/fixtures/not-yaml.yaml']), /not-yaml\.yaml document 0:/);
  t.throws(() => find(config, 'Service', 'nope'), /expected one Service nope, found 0/);
});

t.test('Kubernetes objects validate against the Kubernetes schemas', async (t) => {
  for (const { where, doc } of all) {
    const Model = kubernetesModels[`${doc.apiVersion}/${doc.kind}`];
    if (Model) t.doesNotThrow(() => new Model(doc).validate(), where);
  }
});

t.test('config/ objects live in the falco-drop namespace and carry the version label to stamp', async (t) => {
  for (const { where, doc } of [...config, ...standalone]) {
    if (!clusterScoped.has(doc.kind)) t.equal(doc.metadata.namespace, namespace, where);
    t.equal(doc.metadata.labels?.['app.kubernetes.io/version'], 'devel', where);
  }
  t.equal(find(config, 'Namespace', namespace).metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
});

t.test('Knative Services have what Knative Serving requires and nothing it refuses', async (t) => {
  for (const { where, doc } of everything.filter((m) => m.doc.kind === 'Service')) {
    const spec = doc.spec.template.spec;
    t.same(unknownKeys(spec, knative.podSpec), [], `${where}: pod spec fields`);
    t.not(spec.automountServiceAccountToken, true, `${where}: automountServiceAccountToken may only be false`);
    t.equal(spec.containers.length, 1, `${where}: one container`);
    for (const c of spec.containers) {
      t.match(c.image, /^[a-z0-9.-]+(:\d+)?\/[^\s:@]+(:[\w.-]+|@sha256:[0-9a-f]{64})?$|^ko:\/\/falco-drop$/, `${where}: image`);
      t.same(unknownKeys(c, knative.container), [], `${where}: container fields`);
      t.same(unknownKeys(c.securityContext, knative.securityContext), [], `${where}: securityContext fields`);
      t.match(c.securityContext, { runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } }, `${where}: restricted`);
      t.ok((c.ports ?? []).length <= 1 && (c.ports ?? []).every((p: Json) => ['http1', 'h2c'].includes(p.name)), `${where}: at most one port, named http1 or h2c`);
      for (const probe of [c.readinessProbe, c.livenessProbe].filter(Boolean)) {
        t.same(unknownKeys(probe, knative.probe), [], `${where}: probe fields`);
        t.equal(probe.httpGet.port, undefined, `${where}: Knative probes the container port itself`);
      }
    }
    for (const v of spec.volumes ?? []) t.same(unknownKeys(v, knative.volume), [], `${where}: volume ${v.name}`);
    for (const [key, value] of Object.entries<string>(doc.spec.template.metadata?.annotations ?? {})) {
      if (key.startsWith('autoscaling.knative.dev/')) t.match(value, /^\d+$/, `${where}: ${key} is a string of digits`);
    }
    // The rest is a Kubernetes pod spec: validate it as one, with the probe ports Knative fills in.
    const port = spec.containers[0].ports?.[0]?.containerPort ?? 8080;
    const { timeoutSeconds, containerConcurrency, ...podSpec } = structuredClone(spec);
    for (const c of podSpec.containers) for (const p of [c.readinessProbe, c.livenessProbe].filter(Boolean)) p.httpGet.port = port;
    t.doesNotThrow(() => new core.PodSpec(podSpec).validate(), `${where}: pod spec`);
    t.ok(timeoutSeconds === undefined || Number.isInteger(timeoutSeconds));
    t.equal(containerConcurrency, undefined);
  }
});

t.test('drop is cluster-local, runs as its service account, probes its endpoints, and mounts the policy', async (t) => {
  const drop = find(config, 'Service', 'drop');
  t.equal(drop.metadata.labels['networking.knative.dev/visibility'], 'cluster-local');
  const spec = drop.spec.template.spec;
  t.equal(spec.serviceAccountName, 'drop');
  t.equal(find(config, 'ServiceAccount', 'drop').metadata.namespace, namespace);
  const [c] = spec.containers;
  t.equal(c.image, 'ko://falco-drop', 'the placeholder the release tool resolves');
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.equal(c.livenessProbe.httpGet.path, '/healthz');
  t.match(c.resources, { requests: { cpu: String, memory: String }, limits: { cpu: String, memory: String } });
  t.equal(c.securityContext.readOnlyRootFilesystem, true);
  const scale = drop.spec.template.metadata.annotations;
  const [min, max] = [Number(scale['autoscaling.knative.dev/min-scale']), Number(scale['autoscaling.knative.dev/max-scale'])];
  t.ok(min >= 2, `min-scale ${min} >= 2: no single point of failure, no scale to zero on the security path`);
  t.ok(max > min, `max-scale ${max} > min-scale ${min}: room to scale out under a flood`);
  const env = Object.fromEntries(c.env.map((e: Json) => [e.name, e.value]));
  t.match(env, { DROP_POLICY: '/etc/falco-drop/policy.yaml', DROP_DRY_RUN: 'false', LOG_LEVEL: 'info' });
  const mount = c.volumeMounts.find((m: Json) => env.DROP_POLICY.startsWith(m.mountPath + '/'));
  const volume = spec.volumes.find((v: Json) => v.name === mount.name);
  const policyMap = find(config, 'ConfigMap', volume.configMap.name);
  const key = env.DROP_POLICY.slice(mount.mountPath.length + 1);
  t.doesNotThrow(() => parsePolicy(policyMap.data[key], 'config/300-policy-configmap.yaml'), 'the mounted policy is one drop loads');
});

/** Evaluates a Trigger's filters on an event the way Knative's Broker filter does. */
function filterMatches(filter: Json, event: Record<string, string>): boolean {
  if (filter.exact) return Object.entries<string>(filter.exact).every(([k, v]) => event[k] === v);
  if (filter.prefix) return Object.entries<string>(filter.prefix).every(([k, v]) => event[k]?.startsWith(v) === true);
  if (filter.suffix) return Object.entries<string>(filter.suffix).every(([k, v]) => event[k]?.endsWith(v) === true);
  if (filter.all) return filter.all.every((f: Json) => filterMatches(f, event));
  if (filter.any) return filter.any.some((f: Json) => filterMatches(f, event));
  if (filter.not) return !filterMatches(filter.not, event);
  throw new Error(`unsupported filter ${JSON.stringify(filter)}`);
}
function triggerMatches(trigger: Json, event: Record<string, string>): boolean {
  // As Knative does: `filters` when set, else the classic attribute filter, else everything.
  if (trigger.spec.filters) return trigger.spec.filters.every((f: Json) => filterMatches(f, event));
  return Object.entries<string>(trigger.spec.filter?.attributes ?? {}).every(([k, v]) => event[k] === v);
}
/** Every attribute name a filter tests, at any depth. */
function filteredAttributes(filter: Json): string[] {
  return Object.entries<Json>(filter).flatMap(([dialect, value]) =>
    ['exact', 'prefix', 'suffix'].includes(dialect) ? Object.keys(value) : dialect === 'not' ? filteredAttributes(value) : value.flatMap(filteredAttributes),
  );
}
function checkFilter(t: Test, filter: Json, where: string): void {
  const dialects = Object.keys(filter);
  t.equal(dialects.length, 1, `${where}: one dialect per filter`);
  for (const [dialect, value] of Object.entries<Json>(filter)) {
    if (['exact', 'prefix', 'suffix'].includes(dialect)) {
      for (const [k, v] of Object.entries(value)) t.ok(attributeName.test(k) && typeof v === 'string' && v !== '', `${where}: ${dialect} ${k}`);
    } else if (dialect === 'not') checkFilter(t, value, where);
    else if (dialect === 'all' || dialect === 'any') for (const f of value) checkFilter(t, f, where);
    else t.fail(`${where}: unknown filter dialect ${dialect}`);
  }
}

const triggers = everything.filter((m) => m.doc.kind === 'Trigger');
const dropTriggers = triggers.filter((m) => m.doc.spec.subscriber.ref?.name === 'drop');
const broker = find(config, 'Broker', 'default');

t.test('Triggers name an existing Broker and subscriber and use valid filters', async (t) => {
  t.ok(triggers.length >= 3 && dropTriggers.length >= 2);
  for (const { where, doc } of triggers) {
    t.equal(find(config, 'Broker', doc.spec.broker).metadata.namespace, doc.metadata.namespace, `${where}: broker`);
    const { ref, uri } = doc.spec.subscriber;
    t.ok((ref === undefined) !== (uri === undefined), `${where}: subscriber has ref or uri`);
    t.match(ref, { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: String }, where);
    t.equal(find(everything, 'Service', ref.name).metadata.namespace, doc.metadata.namespace, `${where}: subscriber in the same namespace`);
    for (const k of Object.keys(doc.spec.filter?.attributes ?? {})) t.match(k, attributeName, `${where}: attribute ${k}`);
    for (const f of doc.spec.filters ?? []) checkFilter(t, f, where);
  }
});

t.test('every Trigger to drop asks the Broker for a token for one audience, ready for DROP_AUDIENCE', async (t) => {
  const audiences = new Set(dropTriggers.map(({ doc }) => doc.spec.subscriber.audience));
  t.same([...audiences], ['falco-drop']);
  const text = readFileSync('config/400-service.yaml', 'utf8');
  t.match(text, /# - name: DROP_AUDIENCE\n\s+# {3}value: falco-drop\n/, 'the service shows the same audience, commented out until OIDC is on');
});

t.test('release.yaml allows exactly the OIDC accounts of the Triggers to drop, and drop starts with it', async (t) => {
  const envOf = (manifests: readonly Manifest[]) => Object.fromEntries(find(manifests, 'Service', 'drop').spec.template.spec.containers[0].env.map((e: Json) => [e.name, e.value]));
  t.equal(envOf(config).DROP_ALLOWED_SENDERS, 'knative://trigger-oidc-service-accounts', 'config/ holds the placeholder the release fills');
  const released = envOf(release);
  // Both Trigger names are short (<= 29 characters): Knative's plain <trigger>-oidc-eventing.knative.dev-trigger.
  const accounts = dropTriggers.filter((m) => config.includes(m)).map(({ doc }) => {
    t.ok(doc.metadata.name.length <= 29, `${doc.metadata.name}: short enough for the plain name`);
    return `system:serviceaccount:${doc.metadata.namespace}:${doc.metadata.name}-oidc-eventing.knative.dev-trigger`;
  });
  t.same(released.DROP_ALLOWED_SENDERS.split(','), accounts);
  t.same(accounts.length, 2);
  // Authentication is off in the release; the list must not stop drop from starting.
  t.equal(released.DROP_AUDIENCE, undefined);
  const settings = parseSettings(released);
  t.same(settings.allowedSenders, accounts);
  for (const account of accounts) t.ok(matchesName(settings.allowedSenders ?? [], account), account);
  t.notOk(matchesName(settings.allowedSenders ?? [], 'system:serviceaccount:team-a:drop-critical-oidc-eventing.knative.dev-trigger'), 'a Trigger of the same name elsewhere is no sender');
});

t.test('every Trigger to drop filters on the Falcosidekick type, and never on source', async (t) => {
  for (const { where, doc } of dropTriggers) {
    const typed = doc.spec.filters ? doc.spec.filters.some((f: Json) => f.exact?.type === falcoType) : doc.spec.filter?.attributes?.type === falcoType;
    t.ok(typed, `${where}: type ${falcoType} (drop's replies never loop back)`);
    const attributes = [...Object.keys(doc.spec.filter?.attributes ?? {}), ...(doc.spec.filters ?? []).flatMap(filteredAttributes)];
    t.notOk(attributes.includes('source'), `${where}: no source filter (falco.org became https://falco.org in 2.29)`);
  }
});

t.test('Falcosidekick alerts reach drop by rule and by priority; drop replies never do', async (t) => {
  const alert = (rule: string, priority: string, source = 'https://falco.org') => ({ type: falcoType, source, rule, priority, eventsource: 'syscall', hostname: 'node-1' });
  const routed = (event: Record<string, string>) => dropTriggers.filter((m) => triggerMatches(m.doc, event)).map((m) => m.doc.metadata.name).sort();
  t.same(routed(alert('Terminal shell in container', 'Notice')), ['drop-terminal-shell']);
  t.same(routed(alert('Terminal shell in container', 'Notice', 'falco.org')), ['drop-terminal-shell'], 'old Falcosidekick source too');
  t.same(routed(alert('Drop and execute new binary in container', 'Critical')), ['drop-critical']);
  t.same(routed(alert('Terminal shell in container', 'Emergency')), ['drop-terminal-shell'], 'once, not by both Triggers');
  t.same(routed(alert('Write below etc', 'Error')), []);
  for (const priority of ['Notice', 'Critical', 'Alert', 'Emergency']) {
    t.same(routed({ ...alert('Terminal shell in container', priority), type: replyType, source: '/falco-drop/falco-drop/drop' }), [], `a ${priority} reply`);
  }
  const sockeye = find(demo, 'Trigger', 'sockeye');
  t.ok(triggerMatches(sockeye, { type: replyType }) && triggerMatches(sockeye, alert('x', 'Debug')), 'Sockeye sees alerts and replies');
  t.throws(() => filterMatches({ cesql: 'true' }, {}), /unsupported filter/);
  t.ok(filterMatches({ all: [{ prefix: { type: 'falco.' } }, { suffix: { type: '.v1' } }, { not: { exact: { rule: 'x' } } }] }, { type: falcoType, rule: 'y' }));
});

t.test('no event reaches drop through two Triggers, and each Trigger still routes what it is for', async (t) => {
  const rules = ['Terminal shell in container', 'terminal shell in container', 'Terminal shell in container ', 'Drop and execute new binary in container', 'Write below etc', undefined];
  const priorities = ['Emergency', 'Alert', 'Critical', 'Error', 'Warning', 'Notice', 'Informational', 'Debug', 'critical', undefined];
  const types = [falcoType, replyType, 'dev.knative.kafka.event', undefined];
  const events: Record<string, string>[] = [];
  for (const type of types) {
    for (const rule of rules) {
      for (const priority of priorities) {
        events.push(Object.fromEntries(Object.entries({ type, source: 'https://falco.org', rule, priority }).filter(([, v]) => v !== undefined)) as Record<string, string>);
      }
    }
  }
  const byName = (name: string) => (dropTriggers.find((m) => m.doc.metadata.name === name) as Manifest).doc;
  const shell = byName('drop-terminal-shell');
  const critical = byName('drop-critical');
  t.equal(events.length, 240);
  const names = (event: Record<string, string>) => dropTriggers.filter((m) => triggerMatches(m.doc, event)).map((m) => m.doc.metadata.name);
  t.same(events.filter((e) => names(e).length > 1).map((e) => [e, names(e)]), [], 'no event matches two Triggers to drop');
  const shellAlert = (e: Record<string, string>) => e.type === falcoType && e.rule === 'Terminal shell in container';
  const severe = (e: Record<string, string>) => e.type === falcoType && ['Critical', 'Alert', 'Emergency'].includes(e.priority as string);
  t.same(events.filter((e) => triggerMatches(shell, e) !== shellAlert(e)), [], 'drop-terminal-shell: every terminal shell alert, at any priority, and nothing else');
  t.same(events.filter((e) => triggerMatches(critical, e) !== (severe(e) && !shellAlert(e))), [], 'drop-critical: every other alert at Critical or above, and nothing else');
  t.equal(events.filter((e) => names(e).length === 1).length, 10 + 5 * 3, 'reach drop: the terminal shell at all 10 priorities, the 5 other rule values (one absent) at 3');
  t.ok(triggerMatches(critical, { type: falcoType, priority: 'Critical' }), 'an alert without a rule extension still goes by priority');
});

t.test('delivery is chosen on purpose, and every Trigger to drop repeats the Broker\'s', async (t) => {
  const delivery = broker.spec.delivery;
  t.match(delivery, { retry: Number, backoffPolicy: /^(exponential|linear)$/, backoffDelay: isoDuration, timeout: isoDuration });
  t.match(delivery.deadLetterSink.ref, { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: String });
  t.equal(find(config, 'Service', delivery.deadLetterSink.ref.name).metadata.namespace, namespace, 'the dead-letter sink is in the release');
  for (const { where, doc } of dropTriggers) t.same(doc.spec.delivery, delivery, `${where}: a Trigger's delivery replaces the Broker's`);
});

/** Seconds of an ISO 8601 duration of the form Knative's delivery uses here (PT<seconds>S). */
function seconds(duration: string): number {
  const match = /^PT(\d+(?:\.\d+)?)S$/.exec(duration);
  if (!match) throw new Error(`unsupported duration ${duration}`);
  return Number(match[1]);
}

t.test('the operations page\'s Retry-After opt-in patches every Trigger to drop and keeps the retries inside the alert-age limit', async (t) => {
  const readme = readFileSync('docs/operations.md', 'utf8');
  t.match(readme, `kubectl -n knative-eventing patch configmap config-features --type merge -p '{"data":{"delivery-retryafter":"enabled"}}'`);
  const [, names = '', patch = '{}'] = /\nfor trigger in ([\w -]+); do\n {2}kubectl -n falco-drop patch trigger "\$trigger" --type merge -p '([^']+)'\ndone\n/.exec(readme) ?? [];
  t.same(names.trim().split(/\s+/).sort(), dropTriggers.filter((m) => config.includes(m)).map((m) => m.doc.metadata.name).sort(), 'every Trigger to drop: each replaces the Broker\'s delivery');
  const { retryAfterMax } = JSON.parse(patch).spec.delivery;
  t.match(retryAfterMax, isoDuration);
  // Knative (pkg/kncloudevents/retries.go): wait n (from 0) is the longer of Retry-After, capped
  // at retryAfterMax, and the backoff, backoffDelay * 2^n for the exponential policy.
  const { retry, backoffPolicy, backoffDelay } = broker.spec.delivery;
  t.equal(backoffPolicy, 'exponential');
  let worst = 0;
  for (let n = 0; n < retry; n++) worst += Math.max(seconds(retryAfterMax), seconds(backoffDelay) * 2 ** n);
  const policy = parsePolicy(find(config, 'ConfigMap', 'drop-policy').data['policy.yaml'], 'config/300-policy-configmap.yaml');
  t.ok(worst < policy.guards.maxAlertAgeSeconds, `${worst} s of waits < ${policy.guards.maxAlertAgeSeconds} s: a retried alert is still acted on`);
  t.match(readme, `about ${Math.round(worst)} s, still inside drop's ${policy.guards.maxAlertAgeSeconds} s alert-age limit`, 'the README\'s figures');
  t.throws(() => seconds('PT1M'), /unsupported duration/);
});

t.test('Falcosidekick is pinned at 2.30 or later and posts CloudEvents to the Broker ingress', async (t) => {
  const sidekick = find(config, 'Service', 'falcosidekick');
  const [c] = sidekick.spec.template.spec.containers;
  const [, major, minor] = /^docker\.io\/falcosecurity\/falcosidekick:(\d+)\.(\d+)\.\d+$/.exec(c.image) ?? [];
  t.ok(Number(major) > 2 || (Number(major) === 2 && Number(minor) >= 30), `${c.image}: CloudEvents output broken in 2.25-2.29`);
  const env = Object.fromEntries(c.env.map((e: Json) => [e.name, e.value]));
  t.equal(env.CLOUDEVENTS_ADDRESS, `http://broker-ingress.knative-eventing.svc.cluster.local/${namespace}/${broker.metadata.name}`);
  t.equal(c.ports[0].containerPort, 2801);
  t.equal(sidekick.metadata.labels['networking.knative.dev/visibility'], 'cluster-local');
});

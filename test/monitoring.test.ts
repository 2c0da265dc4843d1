// config/monitoring/ and the scrape annotations: every metric the Grafana dashboard queries is
// one /metrics exposes after traffic, and every way of scraping points at the admin port.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';
import { buildAdminApp } from '../src/admin.ts';
import { DropMetrics } from '../src/metrics.ts';
import { defaultAdminPort } from '../src/settings.ts';
import { pino } from 'pino';
import { createTestApp, lower, type TestApp } from './helpers/app.ts';
import { FakeKube, makePod } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { config, find, release, root } from './release/documents.ts';

type Json = any;

/** Every PromQL query of the dashboard: its panels' targets and its template variables. */
function queries(dashboard: Json): string[] {
  const panels: Json[] = dashboard.panels.flatMap((p: Json) => [p, ...(p.panels ?? [])]);
  const targets = panels.flatMap((p) => (p.targets ?? []).map((target: Json) => String(target.expr)));
  const variables = dashboard.templating.list.filter((v: Json) => v.type === 'query').map((v: Json) => String(v.query.query ?? v.query));
  return [...targets, ...variables];
}

/** The metric names a query selects: names followed by a selector or a range, or given to label_values(). */
function metricNames(query: string): string[] {
  const withoutStrings = query.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const selected = [...withoutStrings.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{[]/g)].map((m) => m[1]!);
  const labelValues = [...withoutStrings.matchAll(/label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,/g)].map((m) => m[1]!);
  return [...selected, ...labelValues];
}

t.test('every metric the Grafana dashboard queries is one /metrics exposes after traffic', async (t) => {
  const dashboard = JSON.parse(readFileSync(`${root}/config/monitoring/grafana-dashboard.json`, 'utf8')) as Json;
  const all = queries(dashboard);
  t.ok(all.length >= 15, `${all.length} queries`);
  const used = new Set(all.flatMap(metricNames));

  // Two replicas on one API, one registry: an alert acted on, its copy answered from the
  // record (a conflict), a later one in the cooldown.
  const fake = await new FakeKube({ terminatingPods: true }).start();
  fake.addNamespace('default');
  fake.addPod(makePod('default', 'web-1', 'uid-1'));
  const metrics = new DropMetrics();
  const replicas: TestApp[] = [];
  for (const identity of ['drop-a', 'drop-b']) replicas.push(await createTestApp({ fake, identity, observe: metrics.observe, observeApi: metrics.observeApiCall }));
  const admin = buildAdminApp({ logger: pino({ level: 'silent' }), routes: [metrics.routes] });
  t.teardown(async () => {
    await admin.close();
    for (const r of replicas) await r.close();
    await fake.stop();
  });
  const payload = falcoPayload({ fields: { 'k8s.pod.name': 'web-1' } });
  const deliver = (drop: TestApp, id: string) => drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders(id)), payload });
  t.equal((await deliver(replicas[0]!, 'd-1')).statusCode, 200);
  t.equal((await deliver(replicas[1]!, 'd-1')).statusCode, 200);
  t.equal((await deliver(replicas[1]!, 'd-2')).statusCode, 202);

  const exposed = new Set(parseMetrics((await admin.inject({ url: '/metrics' })).body).map((s) => s.name));
  for (const name of [...used].sort()) t.ok(exposed.has(name), `${name} is exposed`);
  const families = ['alerts_received_total', 'answers_total', 'decisions_total', 'actions_total', 'guard_skips_total', 'falco_alerts_total', 'answer_duration_seconds_bucket', 'state_conflicts_total', 'kube_api_requests_total', 'kube_api_request_duration_seconds_bucket'];
  for (const family of families) t.ok(used.has(`falco_drop_${family}`), `the dashboard shows falco_drop_${family}`);
});

t.test('the scrape annotations and the PodMonitor point at the admin port, outside release.yaml', async (t) => {
  const drop = find(config, 'Service', 'drop');
  const annotations = drop.spec.template.metadata.annotations;
  t.match(annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(defaultAdminPort), 'prometheus.io/path': '/metrics' });
  const env = Object.fromEntries(drop.spec.template.spec.containers[0].env.map((e: Json) => [e.name, e.value]));
  t.equal(env.DROP_ADMIN_PORT, annotations['prometheus.io/port'], 'the port drop listens on is the one scraped');

  const monitor = parse(readFileSync(`${root}/config/monitoring/podmonitor.yaml`, 'utf8')) as Json;
  t.match(monitor, { apiVersion: 'monitoring.coreos.com/v1', kind: 'PodMonitor', metadata: { namespace: drop.metadata.namespace } });
  const podLabels = drop.spec.template.metadata.labels;
  for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels)) t.equal(podLabels[key], value, `drop's pods carry ${key}=${value}`);
  const [endpoint] = monitor.spec.podMetricsEndpoints;
  t.equal(endpoint.port, 'user-port', 'the one port Knative declares on the container');
  t.equal(endpoint.path, annotations['prometheus.io/path']);
  const address = endpoint.relabelings.find((r: Json) => r.targetLabel === '__address__');
  t.same(address.sourceLabels, ['__meta_kubernetes_pod_ip']);
  t.equal(address.replacement, `$1:${annotations['prometheus.io/port']}`, 'scraped on the admin port');
  t.notOk(release.some((m) => m.doc.kind === 'PodMonitor'), 'optional: not in release.yaml, which needs no Prometheus Operator');
});

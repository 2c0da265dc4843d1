// The built service (dist/main.js, `npm run build`) as an operator meets it: the admin URL
// from its log, /metrics scraped there after alerts sent to $PORT, POST / not served on the
// admin port, and the metrics still scrapable while the service drains.
import t from 'tap';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { logLine, startService, stopService } from './helpers/service.ts';
import { parseMetrics } from './helpers/metrics.ts';

t.test('the built service serves /metrics on its admin port, apart from POST /', async (t) => {
  const service = await startService(t, { DROP_DRY_RUN: 'true', DROP_DRAIN_SECONDS: '3' });
  const line = await logLine(service, (l) => typeof l.adminUrl === 'string');
  const adminUrl = String(line.adminUrl);
  t.match(adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/, 'on the same host as the event listener');
  t.not(new URL(adminUrl).port, String(service.port), 'on a port of its own');
  t.match(line.msg, `admin listening at ${adminUrl}`);

  const alert = (id: string, body: string) => fetch(`http://127.0.0.1:${service.port}/`, { method: 'POST', headers: brokerHeaders(id), body });
  t.equal((await alert('e2e-1', falcoPayload({ time: new Date().toISOString() }))).status, 200);
  t.equal((await alert('e2e-1', falcoPayload({ time: new Date().toISOString() }))).status, 200, 'a redelivery');
  t.equal((await alert('e2e-2', falcoPayload({ rule: 'Other', time: new Date().toISOString() }))).status, 202);

  const onAdmin = await fetch(`${adminUrl}/`, { method: 'POST', headers: brokerHeaders('e2e-3'), body: falcoPayload() });
  t.equal(onAdmin.status, 404, 'alerts are not taken on the admin port');
  const onMain = await fetch(`http://127.0.0.1:${service.port}/metrics`);
  t.equal(onMain.status, 404, 'and the metrics are not on $PORT');

  const res = await fetch(`${adminUrl}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain/);
  const samples = parseMetrics(await res.text());
  const value = (name: string, labels: Record<string, string>) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
  t.equal(value('falco_drop_alerts_received_total', { mode: 'binary', decision: 'act', outcome: 'dry-run' }), 2);
  t.equal(value('falco_drop_decisions_total', { rule: 'terminal-shell', decision: 'act', outcome: 'dry-run' }), 1);
  t.equal(value('falco_drop_actions_total', { action: 'delete', outcome: 'dry-run' }), 1);
  t.equal(value('falco_drop_guard_skips_total', { guard: 'no-rule' }), 1);
  t.equal(value('falco_drop_answers_total', { status: '200' }), 2);
  t.equal(value('falco_drop_kube_api_requests_total', {}), 0, 'no cluster, no API call');
  t.ok(value('falco_drop_process_resident_memory_bytes', {}) > 0, 'the process\'s own metrics');

  // SIGTERM: the event listener drains, the admin listener still answers.
  service.child.kill('SIGTERM');
  await logLine(service, (l) => String(l.msg).startsWith('stopping: not ready'));
  const draining = await fetch(`${adminUrl}/metrics`);
  t.equal(draining.status, 200, 'scrapable while draining');
  await draining.text();
  t.equal(await stopService(service), 0);
});

/**
 * The built service answers once the action is done and writes the outcome record on the claim
 * after the answer: a SIGTERM while that record is still on its way (held, then refused, by the
 * API server) waits for it, tries it again, and exits only once it is written.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { claimAnnotations, claimName } from '../src/state/claims.ts';
import { FakeKube, makePod } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { logLine, startService, stopService } from './helpers/service.ts';

t.test('SIGTERM with an outcome record pending: the service writes it before it exits', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  fake.addNamespace('default');
  fake.addPod(makePod('default', 'web-1', 'uid-web-1'));
  const dir = mkdtempSync(join(tmpdir(), 'drop-kubeconfig-'));
  writeFileSync(join(dir, 'config'), fake.kubeConfigYaml());
  const service = await startService(t, { KUBECONFIG: join(dir, 'config'), DROP_NAMESPACE: 'falco-drop', HOSTNAME: 'drop-0', DROP_DRAIN_SECONDS: '0' });

  // The first try of the record is held for a second, then answered 503.
  fake.fail({ method: 'PUT', path: /\/leases\/drop-claim-/, status: 503, delayMs: 1000 });
  const res = await fetch(`http://127.0.0.1:${service.port}/`, {
    method: 'POST',
    headers: brokerHeaders('term-1'),
    body: falcoPayload({ time: new Date().toISOString(), fields: { 'k8s.pod.name': 'web-1' } }),
  });
  t.equal(res.status, 200, 'answered: the pod is deleted');
  t.notOk(fake.pods.has('default/web-1'));
  await fake.arrived('PUT', /\/leases\/drop-claim-/);
  const lease = `falco-drop/${claimName('terminal-shell', 'uid-web-1')}`;
  t.equal(fake.leases.get(lease)?.metadata.annotations?.[claimAnnotations.outcome], undefined, 'the record is on its way');

  t.equal(await stopService(service), 0, 'exits 0');
  t.match(JSON.parse(fake.leases.get(lease)?.metadata.annotations?.[claimAnnotations.outcome] ?? 'null'), { outcomes: [{ action: 'delete', status: 'done' }] }, 'written before the exit');
  t.equal(fake.requests.filter((r) => r.method === 'PUT' && r.path.includes('/drop-claim-')).length, 2, 'at the second try');
  t.ok(fake.requests.some((r) => r.method === 'POST' && r.path.endsWith('/events')), 'and the Event');
  await logLine(service, (l) => l.msg === 'waiting for 1 outcome records and Events to be written' || /^waiting for \d+ outcome records/.test(String(l.msg)));
  const order = service.lines.map((l) => String(l.msg));
  t.ok(order.findIndex((m) => m.startsWith('waiting for')) < order.indexOf('stopped'), 'the wait is logged before "stopped"');
  t.notOk(service.lines.some((l) => /could not record/.test(String(l.msg))), 'nothing lost');
});

import { rmSync } from 'node:fs';
import t from 'tap';
import { ConfigMapVolume } from './helpers/configmap-volume.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { logLine, startService, stopService, type Service } from './helpers/service.ts';

// The built service (npm run build) with DROP_POLICY in a ConfigMap volume laid out as the
// kubelet lays it out, updated as the kubelet updates it: no restart between the policies.

function policy(name: string, labels = '{ falco-drop/suspicious: "true" }'): string {
  return `rules:
  - name: ${name}
    match:
      rules: ["Terminal shell in container"]
    actions:
      - action: label
        parameters: { labels: ${labels} }
`;
}

interface Readiness {
  status: string;
  policy: { sha256: string; loadedAt: string; lastError: { message: string; problems: unknown[] } | null; files: string[] };
}

async function readyz(service: Service): Promise<Readiness> {
  return (await (await fetch(`http://127.0.0.1:${service.port}/readyz`)).json()) as Readiness;
}

/** Polls /readyz until `done` holds; a generous two minutes before giving up. */
async function until(service: Service, done: (ready: Readiness) => boolean, what: string): Promise<Readiness> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const ready = await readyz(service);
    if (done(ready)) return ready;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}: /readyz says ${JSON.stringify(ready)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Posts a Falco alert as the Broker delivers it, timed now. */
async function post(service: Service, id: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${service.port}/`, { method: 'POST', headers: brokerHeaders(id), body: falcoPayload({ time: new Date().toISOString() }) });
  return { status: res.status, body: await res.text() };
}

t.test('a kubelet update of the mounted policy changes decisions without a restart; a broken one changes nothing and says why', async (t) => {
  const volume = new ConfigMapVolume({ 'policy.yaml': policy('shell-label') });
  t.teardown(() => rmSync(volume.dir, { recursive: true }));
  // The timer set to an hour: only the watch on the volume's directory can see the swap.
  const service = await startService(t, { DROP_POLICY: volume.path('policy.yaml'), DROP_POLICY_CHECK_SECONDS: '3600', DROP_DRAIN_SECONDS: '0' });
  t.match(await logLine(service, (l) => String(l.msg).startsWith('watching the policy files')), { dirs: [volume.dir], everySeconds: 3600 });
  const first = await readyz(service);
  t.match(first.policy, { sha256: /^[0-9a-f]{64}$/, lastError: null, files: [volume.path('policy.yaml')] });

  const before = await post(service, 'e2e-1');
  t.equal(before.status, 200);
  t.match(JSON.parse(before.body), { result: 'dry-run', rules: ['shell-label'] });

  volume.update({ 'policy.yaml': policy('shell-label-v2', '{ falco-drop/reviewed: "no" }') });
  const reloaded = await until(service, (r) => r.policy.sha256 !== first.policy.sha256, 'the new policy in force');
  t.equal(reloaded.policy.lastError, null);
  t.not(reloaded.policy.loadedAt, first.policy.loadedAt);
  t.match(await logLine(service, (l) => String(l.msg).startsWith('policy reloaded')), {
    level: 30,
    policy: { from: first.policy.sha256, to: reloaded.policy.sha256 },
    rules: ['shell-label-v2'],
  });
  const after = await post(service, 'e2e-2');
  t.equal(after.status, 200, 'the renamed rule has no cooldown on this pod yet');
  t.match(JSON.parse(after.body), { result: 'dry-run', rules: ['shell-label-v2'], actions: [{ reason: /falco-drop\/reviewed=no/ }] });

  volume.update({ 'policy.yaml': 'rules:\n  - name: shell-label-v3\n    match: { rules: ["Terminal shell in container"] }\n    actions:\n      - action: explode\n' });
  const broken = await until(service, (r) => r.policy.lastError !== null, 'the broken policy refused');
  t.equal(broken.status, 'ready');
  t.equal(broken.policy.sha256, reloaded.policy.sha256, 'the policy in force is unchanged');
  t.match(broken.policy.lastError, { message: /unknown action "explode"/, problems: [{ path: '/rules/0/actions/0/action', line: 5, column: 9 }] });
  t.match(await logLine(service, (l) => l.level === 50), { msg: /^policy reload refused/, problems: [{ line: 5, message: /unknown action "explode"/ }] });
  const still = await post(service, 'e2e-3');
  t.equal(still.status, 202);
  t.match(await logLine(service, (l) => (l.ce as { id?: string } | undefined)?.id === 'e2e-3'), { decision: 'skip', msg: /cooldown: .*\(shell-label-v2 \d+ s left\)/ }, 'decided by the policy in force');

  t.equal(await stopService(service), 0);
});

t.test('without DROP_POLICY the built-in default is in force, and nothing is watched', async (t) => {
  const service = await startService(t, { DROP_DRAIN_SECONDS: '0' });
  const ready = await readyz(service);
  t.match(ready.policy, { sha256: /^[0-9a-f]{64}$/, lastError: null, files: [] });
  t.notOk(service.lines.some((l) => String(l.msg).startsWith('watching the policy files')));
  t.equal(await stopService(service), 0);
});

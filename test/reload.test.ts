import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { ActivePolicy } from '../src/active-policy.ts';
import { buildApp } from '../src/app.ts';
import { createKubeClient } from '../src/kube.ts';
import { loadPolicyFiles, type Guards, type LoadedPolicy } from '../src/policy.ts';
import { createSafety } from '../src/safety.ts';
import { FakeKube, makePod } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';

const podName = 'mysql-db-7d59548d75-g9msc';
const podUid = 'uid-reload-1';

/** A policy of one response rule on "Terminal shell in container". */
function policyYaml(name: string, action = 'label: { labels: { falco-drop/suspicious: "true" } }', extra = ''): string {
  const [verb, parameters] = action.split(/:\s(.*)/s) as [string, string | undefined];
  return `rules:
  - name: ${name}
    match:
      rules: ["Terminal shell in container"]
    actions:
      - action: ${verb}${parameters ? `\n        parameters: ${parameters}` : ''}
${extra}`;
}

interface Setup {
  readonly app: ReturnType<typeof buildApp>;
  readonly active: ActivePolicy;
  readonly logs: Record<string, unknown>[];
  /** Guards each new safety state was built for. */
  readonly rebuilt: Guards[];
  /** Rewrites the policy file (a reload reads it when asked). */
  write(yaml: string): void;
  readonly file: string;
  /** Posts the alert as the Broker delivers it, with this CloudEvent id; the decision's log line. */
  post(id: string): Promise<{ status: number; body: string; line: Record<string, unknown> }>;
  now: Date;
}

/**
 * The app wired as main.ts wires it: a policy file on disk, the ActivePolicy over it, and a
 * safety state rebuilt when a reload changes its guards. With `fake`, it acts on that cluster.
 */
async function setup(t: Test, yaml: string, fake?: FakeKube, load?: () => Promise<LoadedPolicy>): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'drop-reload-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, yaml);
  const logs: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'info' }, stream);
  const kube = fake ? createKubeClient(fake.kubeConfig(), { timeoutMs: 5000 }) : undefined;
  const dryRun = !kube;
  const state = { now: new Date('2025-06-12T09:21:08Z') };
  const clock = { now: () => state.now };
  const safetyFor = (guards: Guards) =>
    createSafety({ kube, dryRun, namespace: 'falco-drop', identity: 'drop-test', clock, retryAfterSeconds: 5, ...guards });
  const loaded = await loadPolicyFiles(file);
  const rebuilt: Guards[] = [];
  const active = new ActivePolicy({
    loaded,
    load: load ?? (() => loadPolicyFiles(file)),
    ownNamespace: 'falco-drop',
    safety: safetyFor(loaded.policy.guards),
    rebuildSafety: kube
      ? (guards) => {
          rebuilt.push(guards);
          return safetyFor(guards);
        }
      : undefined,
    log: logger,
    clock,
  });
  const app = buildApp({
    logger,
    replySource: '/falco-drop/falco-drop/drop',
    redelivery: { max: 1000, ttlMs: 60_000 },
    dryRunReason: dryRun ? 'no cluster' : undefined,
    responder: { ...active.current(), kube, dryRun, gracePeriodSeconds: 1, retryAfterSeconds: 5, clock },
    policy: active,
  });
  await app.ready();
  t.teardown(async () => {
    await app.close();
    kube?.close();
    rmSync(dir, { recursive: true });
  });
  return {
    app,
    active,
    logs,
    rebuilt,
    file,
    write: (text) => writeFileSync(file, text),
    post: async (id) => {
      const res = await app.inject({ method: 'POST', url: '/', headers: brokerHeaders(id), payload: falcoPayload() });
      const line = logs.find((l) => (l.ce as { id?: string } | undefined)?.id === id && 'decision' in l);
      return { status: res.statusCode, body: res.body, line: line ?? {} };
    },
    get now() {
      return state.now;
    },
    set now(value: Date) {
      state.now = value;
    },
  };
}

async function cluster(t: Test): Promise<FakeKube> {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  fake.addNamespace('default');
  fake.addPod(makePod('default', podName, podUid));
  return fake;
}

t.test('a changed valid policy is in force from the next alert, and /readyz and the log say which', async (t) => {
  const drop = await setup(t, policyYaml('shell-label'));
  const before = drop.active.status();
  t.match((await drop.post('a-1')).line, { decision: 'act', rules: ['shell-label'], actions: [{ action: 'label' }] });

  drop.now = new Date('2025-06-12T09:22:00Z');
  drop.write(policyYaml('shell-annotate', 'annotate: { annotations: { falco-drop/seen: "true" } }'));
  t.equal(await drop.active.reload(), 'reloaded');
  t.match((await drop.post('a-2')).line, { decision: 'act', rules: ['shell-annotate'], actions: [{ action: 'annotate' }] });

  const after = (await drop.app.inject({ method: 'GET', url: '/readyz' })).json();
  t.match(after.policy, { loadedAt: '2025-06-12T09:22:00.000Z', lastError: null, files: [drop.file] });
  t.match(after.policy.sha256, /^[0-9a-f]{64}$/);
  t.not(after.policy.sha256, before.sha256, 'the sha256 of the new bytes');
  t.equal(after.policy.sha256, (await loadPolicyFiles(drop.file)).sha256, 'the one `check` computes for these files');
  const reloaded = drop.logs.find((l) => String(l.msg).startsWith('policy reloaded'));
  t.match(reloaded, {
    level: 30,
    policy: { from: before.sha256, to: after.policy.sha256, files: [drop.file] },
    rules: ['shell-annotate'],
    added: ['shell-annotate'],
    removed: ['shell-label'],
    msg: 'policy reloaded, response rules: shell-annotate; the cooldowns of shell-label no longer apply',
  });
  t.notOk(drop.logs.some((l) => l.level === 40 && /guards/.test(String(l.msg))), 'no guard changed: no warning');
});

t.test('the same files read again change nothing and log nothing', async (t) => {
  const drop = await setup(t, policyYaml('shell-label'));
  const status = drop.active.status();
  const lines = drop.logs.length;
  t.equal(await drop.active.reload(), 'unchanged');
  t.same(drop.active.status(), status);
  t.equal(drop.logs.length, lines);
});

t.test('the same bytes read from other files are a reload: /readyz names the files in force', async (t) => {
  let renamed = false;
  const drop = await setup(t, policyYaml('shell-label'), undefined, async () => {
    const loaded = await loadPolicyFiles(drop.file);
    return renamed ? { ...loaded, files: ['/etc/falco-drop/rules.d/10-shell.yaml'] } : loaded;
  });
  const { sha256 } = drop.active.status();
  renamed = true;
  t.equal(await drop.active.reload(), 'reloaded');
  t.match(drop.active.status(), { sha256, files: ['/etc/falco-drop/rules.d/10-shell.yaml'] });
});

t.test('a broken edit changes nothing, is logged once at error with every problem and its place, and /readyz shows it', async (t) => {
  const good = policyYaml('shell-label');
  const drop = await setup(t, good);
  const status = drop.active.status();
  drop.write(`rules:
  - name: shell-label
    match:
      rules: ["Terminal shell in container"]
      priority: ">= Nonsense"
    actions:
      - action: explode
`);
  t.equal(await drop.active.reload(), 'refused');
  t.match((await drop.post('b-1')).line, { decision: 'act', rules: ['shell-label'], actions: [{ action: 'label' }] }, 'the old policy still decides');
  const errors = drop.logs.filter((l) => l.level === 50);
  t.equal(errors.length, 1);
  t.match(errors[0], {
    policy: { sha256: status.sha256, files: [drop.file] },
    problems: [
      { path: '/rules/0/match/priority', line: 5, column: 7, message: /Nonsense/ },
      { path: '/rules/0/actions/0/action', line: 7, column: 9, message: /unknown action "explode"/ },
    ],
    msg: /^policy reload refused; the policy loaded at 2025-06-12T09:21:08.000Z stays in force: invalid policy .*policy.yaml \(2 problems\)/,
  });
  const ready = (await drop.app.inject({ method: 'GET', url: '/readyz' })).json();
  t.equal(ready.status, 'ready', 'still ready: the old policy serves');
  t.same({ ...ready.policy, lastError: undefined }, { ...status, lastError: undefined }, 'the policy in force is the old one');
  t.match(ready.policy.lastError, { at: '2025-06-12T09:21:08.000Z', message: /unknown action "explode"/, problems: [{ line: 5 }, { line: 7 }] });

  // The timer reads the same broken files again: not logged again.
  t.equal(await drop.active.reload(), 'refused');
  t.equal(drop.logs.filter((l) => l.level === 50).length, 1);

  // A file that cannot be read is refused too, and said, since it is another error.
  rmSync(drop.file);
  t.equal(await drop.active.reload(), 'refused');
  t.match(drop.logs.filter((l) => l.level === 50)[1], { problems: [{ message: /cannot read/ }] });

  // Put back as it was: nothing to reload, and the error is gone.
  drop.write(good);
  t.equal(await drop.active.reload(), 'unchanged');
  t.same(drop.active.status(), status);
  t.match(drop.logs.at(-1), { level: 30, msg: 'the policy files are valid again, and the same as the policy in force' });
});

t.test('a load that fails for another reason is refused with the error logged', async (t) => {
  let fail: unknown;
  const drop = await setup(t, policyYaml('shell-label'), undefined, async () => {
    if (fail) throw fail;
    return loadPolicyFiles(drop.file);
  });
  fail = new TypeError('the policy loader broke');
  t.equal(await drop.active.reload(), 'refused');
  t.match(drop.logs.at(-1), { level: 50, problems: [], err: { type: 'TypeError', message: 'the policy loader broke' } });
  t.match(drop.active.status().lastError, { message: 'the policy loader broke', problems: [] });
  // Something thrown that is no Error at all is still said.
  fail = 'EIO';
  t.equal(await drop.active.reload(), 'refused');
  t.match(drop.active.status().lastError, { message: 'EIO', problems: [] });
});

t.test('an alert in flight finishes with the policy it started with', async (t) => {
  const fake = await cluster(t);
  const drop = await setup(t, policyYaml('shell-label'), fake);
  // The pod read is held, so the alert is mid-way when the policy changes.
  fake.fail({ method: 'GET', path: new RegExp(`/pods/${podName}$`), status: 200, delayMs: 500, body: { apiVersion: 'v1', kind: 'Pod', ...makePod('default', podName, podUid) } });
  const inFlight = drop.post('f-1');
  await fake.arrived('GET', new RegExp(`/pods/${podName}$`));
  drop.write(policyYaml('shell-annotate', 'annotate: { annotations: { falco-drop/seen: "true" } }'));
  t.equal(await drop.active.reload(), 'reloaded');
  const first = await inFlight;
  t.equal(first.status, 200);
  t.match(JSON.parse(first.body), { rules: ['shell-label'], actions: [{ action: 'label', status: 'done' }] });
  t.match(fake.mutations().filter((r) => r.path.includes('/pods/')), [{ method: 'PATCH', body: { metadata: { labels: { 'falco-drop/suspicious': 'true' } } } }]);
});

t.test('cooldowns survive a reload for a rule that keeps its name, not for a renamed one', async (t) => {
  const fake = await cluster(t);
  const drop = await setup(t, policyYaml('shell-label', undefined, '    cooldownSeconds: 600\n'), fake);
  t.match((await drop.post('c-1')).line, { decision: 'act', rules: ['shell-label'] });

  // Same name, another label and a shorter cooldown: the claim on this pod still holds.
  drop.write(policyYaml('shell-label', 'label: { labels: { falco-drop/reviewed: "no" } }', '    cooldownSeconds: 300\n'));
  t.equal(await drop.active.reload(), 'reloaded');
  const kept = await drop.post('c-2');
  t.equal(kept.status, 202);
  t.match(kept.line, { decision: 'skip', msg: /^skip: cooldown: already responded to pod default\/mysql-db-7d59548d75-g9msc \(shell-label 600 s left\)/ });

  // Renamed: another rule, with no claim on this pod yet.
  drop.write(policyYaml('shell-label-v2', 'label: { labels: { falco-drop/reviewed: "no" } }', '    cooldownSeconds: 300\n'));
  t.equal(await drop.active.reload(), 'reloaded');
  const renamed = await drop.post('c-3');
  t.equal(renamed.status, 200);
  t.match(renamed.line, { decision: 'act', rules: ['shell-label-v2'], actions: [{ action: 'label', status: 'done' }] });
  t.same(
    fake.mutations().filter((r) => r.path.includes('/pods/')).map((r) => (r.body as { metadata: { labels: unknown } }).metadata.labels),
    [{ 'falco-drop/suspicious': 'true' }, { 'falco-drop/reviewed': 'no' }],
    'two responses: the first rule, then the renamed one',
  );
});

t.test('the guards follow a reload, with a warning: budget, alert age limit, protected namespaces', async (t) => {
  const fake = await cluster(t);
  fake.addPod(makePod('default', 'mysql-db-7d59548d75-other', 'uid-other'));
  const drop = await setup(t, policyYaml('shell-delete', 'delete', 'guards:\n  destructivePerMinute: 1\n  maxAlertAgeSeconds: 60\n'), fake);
  t.equal((await drop.post('g-1')).status, 200, 'one delete: the budget of 1 is spent');

  // The alert now 100 s old: past the 60 s limit.
  drop.now = new Date('2025-06-12T09:22:47Z');
  fake.addPod(makePod('default', podName, 'uid-2'));
  t.match((await drop.post('g-2')).line, { decision: 'skip', msg: /older than 60 s/ });

  drop.write(policyYaml('shell-delete', 'delete', 'guards:\n  destructivePerMinute: 5\n  maxAlertAgeSeconds: 900\nprotectedNamespaces: [payments]\n'));
  t.equal(await drop.active.reload(), 'reloaded');
  t.same(drop.rebuilt, [{ cooldownSeconds: 60, destructivePerMinute: 5, maxAlertAgeSeconds: 900 }], 'a safety state for the new budget');
  t.match(drop.logs.find((l) => l.level === 40), {
    guards: { from: { destructivePerMinute: 1, maxAlertAgeSeconds: 60 }, to: { destructivePerMinute: 5, maxAlertAgeSeconds: 900 } },
    protectedNamespaces: { added: ['payments'], removed: [] },
    msg: 'the reload changes the guards (destructivePerMinute 1 -> 5; maxAlertAgeSeconds 60 -> 900; protected payments): in force from the next alert',
  });
  // Within the same minute: the shared budget (the same Lease) holds 1 of 5 now.
  t.match((await drop.post('g-3')).line, { decision: 'act', rules: ['shell-delete'], actions: [{ action: 'delete', status: 'done' }] });

  drop.write(policyYaml('shell-delete', 'delete', 'guards:\n  destructivePerMinute: 5\n  maxAlertAgeSeconds: 900\nprotectedNamespaces: [default]\n'));
  t.equal(await drop.active.reload(), 'reloaded');
  t.equal(drop.rebuilt.length, 1, 'same budget and age limit: the same safety state');
  t.match(drop.logs.filter((l) => l.level === 40).at(-1), { msg: 'the reload changes the guards (protected default; no longer protected payments): in force from the next alert' });
  fake.addPod(makePod('default', podName, 'uid-3'));
  t.match((await drop.post('g-4')).line, { decision: 'skip', msg: 'skip: namespace default is protected' });
});

t.test('under the global dry-run the in-memory state is kept across a reload of the guards, cooldowns with it', async (t) => {
  const drop = await setup(t, policyYaml('shell-label'));
  const safety = drop.active.current().safety;
  t.match((await drop.post('d-1')).line, { decision: 'act', outcome: 'dry-run' });
  drop.write(policyYaml('shell-label', undefined, 'guards:\n  destructivePerMinute: 2\n'));
  t.equal(await drop.active.reload(), 'reloaded');
  t.equal(drop.active.current().safety, safety);
  t.match(drop.logs.filter((l) => l.level === 40).at(-1), { msg: 'the reload changes the guards (destructivePerMinute 30 -> 2): in force from the next alert' });
  t.match((await drop.post('d-2')).line, { decision: 'skip', msg: /cooldown/ });
});

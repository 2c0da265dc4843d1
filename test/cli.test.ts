import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli, usage, type AlertReport } from '../src/check.ts';
import { falcoPayload } from './helpers/falco.ts';

const root = new URL('..', import.meta.url).pathname;
const talonRules = join(root, 'test/fixtures/talon/rules.yaml');
const alerts = (name: string): string => join(root, 'test/fixtures/alerts', name);
const samples = ['terminal-shell.json', 'k8s-audit-exec.json', 'host-event.json', 'cloudevent-structured.json'].map(alerts);

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'drop-check-'));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The block of output about one alert file. */
function section(stdout: string, path: string): string {
  return stdout.split('\n\n').find((s) => s.startsWith(`alert ${path}`)) ?? '';
}

t.test('explains the decision for each sample alert under the Talon fixture', async (t) => {
  const { code, stdout, stderr } = await run('check', '--policy', talonRules, ...samples);
  t.equal(code, 0);
  t.equal(stderr, '');
  t.match(stdout, /^policy .*rules\.yaml: valid, 4 response rules: Shell in a workload, Exec into a pod, Sensitive files read, Quarantine critical payments\n/);
  t.match(stdout, /guards: cooldown 60 s per \(rule, pod\), 30 destructive actions per minute, alerts older than 900 s skipped/);
  t.match(stdout, /protected namespaces: kube-system, kube-public, kube-node-lease, knative-serving, knative-eventing, falco\n/);

  const shell = section(stdout, samples[0]!);
  t.match(shell, 'Falco rule "Terminal shell in container" (Notice, syscall) at 2025-06-12T09:21:07.11840296Z');
  t.match(shell, 'target: pod default/mysql-db-7d59548d75-g9msc (container 2d90926af63e)');
  t.match(shell, /\n {4}match {8}Shell in a workload\n/);
  t.match(shell, /not reached {2}Exec into a pod {15}"Shell in a workload" matched and has continue: false/);
  t.match(shell, 'decision: act on pod default/mysql-db-7d59548d75-g9msc (container 2d90926af63e), running (dry run, nothing sent):');
  t.match(shell, '1. Shell in a workload: label: would set on pod default/mysql-db-7d59548d75-g9msc: falco-drop/suspicious=true');
  t.match(shell, '2. Shell in a workload: delete: would delete pod default/mysql-db-7d59548d75-g9msc (grace 2s');
  t.notMatch(shell, 'annotate', 'the annotation after terminate never runs');

  const exec = section(stdout, samples[1]!);
  t.match(exec, 'target: pod default/mysql-db-7d59548d75-g9msc\n');
  t.match(exec, /no match {5}Shell in a workload {11}rule "Attach\/Exec Pod" is not one of Terminal shell in container/);
  t.match(exec, '1. Exec into a pod: annotate: would set on pod default/mysql-db-7d59548d75-g9msc: falco-drop/exec=someone ran a command in this pod, falco-drop/alert=');

  const host = section(stdout, samples[2]!);
  t.match(host, 'target: none: a host process: no pod to act on');
  t.match(host, /match {8}Sensitive files read\n/);
  t.match(host, 'decision: skip: a host process: no pod to act on');

  const event = section(stdout, samples[3]!);
  t.match(event, 'Falco rule "Drop and execute new binary in container" (Critical, syscall) at 2025-06-12T09:35:40.771Z');
  t.match(event, 'target: pod payments/checkout-api-6c9f8d7b5-x2x4q (uid 7f9d2c3e-1a4b-4c5d-9e8f-0a1b2c3d4e5f, container 8f3c1a2b4d5e)');
  t.match(event, /match {8}Quarantine critical payments {2}\[dryRun: only reports, in the cluster too\]/);
  t.match(event, '1. Quarantine critical payments: isolate: would isolate pod payments/checkout-api-6c9f8d7b5-x2x4q: deny all ingress, egress only to 10.96.0.10/32');

  t.match(stdout, /\nChecked without a cluster: .*the clock set to the alert's own time\n\(so the age guard does not skip these samples\)/);
});

t.test('a guard rail that skips is named: a protected namespace, --namespace among them', async (t) => {
  const { code, stdout } = await run('check', '--policy', talonRules, '--namespace', 'payments', samples[3]!);
  t.equal(code, 0);
  t.match(stdout, /protected namespaces: .*falco, payments\n/);
  t.match(stdout, 'decision: skip: namespace payments is protected');
});

t.test("the clock stands at the alert's own time, so an old sample is not skipped for its age", async (t) => {
  const old = file('old.json', falcoPayload({ time: '2019-01-01T00:00:00Z' }));
  const { stdout } = await run('check', '--policy', talonRules, old);
  t.match(stdout, 'decision: act on pod default/mysql-db-7d59548d75-g9msc');
});

t.test("an alert without a time is refused, as the service refuses it (400); its CloudEvent's time stands in", async (t) => {
  const payload = JSON.parse(falcoPayload()) as Record<string, unknown>;
  delete payload.time;
  const timeless = file('timeless.json', JSON.stringify(payload));
  const { code, stdout } = await run('check', '--policy', talonRules, '--json', timeless);
  t.equal(code, 2);
  t.match((JSON.parse(stdout) as { alerts: { error: string }[] }).alerts[0]!.error, /^not a valid Falco alert: it has no valid time/);
  const event = { specversion: '1.0', id: '1', source: 'https://falco.org', type: 'falco.rule.output.v1', time: '2025-06-12T09:21:07Z', data: payload };
  const checked = await run('check', '--policy', talonRules, '--json', file('timeless-event.json', JSON.stringify(event)));
  t.equal(checked.code, 0);
  const report = (JSON.parse(checked.stdout) as { alerts: AlertReport[] }).alerts[0]!;
  t.match(report, { clock: '2025-06-12T09:21:07.000Z', alert: { time: '2025-06-12T09:21:07Z' }, decision: 'act' }, "its CloudEvent's time stands in");
});

t.test('a drop-format policy: every rule not matching says why, and a single rule is counted so', async (t) => {
  const policy = file('one-rule.yaml', 'rules:\n  - name: critical-only\n    match: {priority: ">=Critical"}\n    actions: [{action: evict}]\n');
  const { code, stdout } = await run('check', '--policy', policy, samples[0]!);
  t.equal(code, 0);
  t.match(stdout, /valid, 1 response rule: critical-only\n/);
  t.match(stdout, /no match {5}critical-only {2}priority Notice is not >=Critical\n/);
  t.match(stdout, 'decision: skip: no response rule matches rule "Terminal shell in container" at priority Notice');
});

t.test('a policy without rules is refused, and says why', async (t) => {
  const { code, stderr } = await run('check', '--policy', file('empty.yaml', '[]\n'), samples[0]!);
  t.equal(code, 1);
  t.match(stderr, /empty\.yaml \/: no response rule: the file holds 0 "- action:" blocks and no "- rule:" block/);
});

t.test("prints the policy's sha256, the sha256sum of its files in load order, as /readyz shows it", async (t) => {
  const policy = readFileSync(talonRules);
  const sha256 = createHash('sha256').update(policy).digest('hex');
  const { stdout } = await run('check', '--policy', talonRules);
  t.match(stdout, `\n  sha256: ${sha256}\n`);
  t.notMatch(stdout, 'files, in load order', 'one file: its name is the policy');
  const json = JSON.parse((await run('check', '--policy', talonRules, '--json')).stdout) as { policy: { sha256: string; files: string[]; skipped: unknown[] } };
  t.equal(json.policy.sha256, sha256);
  t.same(json.policy.files, [talonRules]);
  t.same(json.policy.skipped, []);
});

t.test("Talon's chart files: refused by default, loaded with --talon-unsupported skip, which lists what it left out", async (t) => {
  const chart = join(root, 'test/fixtures/talon/chart');
  const refused = await run('check', '--policy', chart);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /invalid policy .*chart \(21 problems\):\n  .*chart\/rules\.yaml:12:5 \/1\/parameters\/allow: unknown parameter "allow"/);
  const both = `${join(chart, 'rules.yaml')},${join(chart, 'rules_override.yaml')}`;
  const { code, stdout } = await run('check', '--policy', both, '--talon-unsupported', 'skip', samples[0]!);
  t.equal(code, 0);
  t.match(stdout, `policy ${both}: valid, 1 response rule: Shell in a pod\n  files, in load order: ${join(chart, 'rules.yaml')}, ${join(chart, 'rules_override.yaml')}\n  sha256: `);
  t.match(stdout, /\n  skipped \(--talon-unsupported skip\), 20:\n    .*chart\/rules\.yaml:64:7 \/7\/actions\/0: rule "Egress to an odd place": action "Cilium egress policy" skipped: /);
  t.match(stdout, /2\. Shell in a pod: delete: would delete pod default\/mysql-db-7d59548d75-g9msc \(grace 3s;/, "the override's grace period");
  const json = JSON.parse((await run('check', '--policy', both, '--talon-unsupported', 'skip', '--json')).stdout) as { policy: { skipped: { file: string; line: number }[] } };
  t.equal(json.policy.skipped.length, 20);
  t.match(json.policy.skipped[0], { file: join(chart, 'rules.yaml'), line: 64 });
});

t.test('a policy alone is validated, with no alert to check', async (t) => {
  const { code, stdout } = await run('check', '--policy', talonRules);
  t.equal(code, 0);
  t.match(stdout, 'valid, 4 response rules');
  t.notMatch(stdout, 'Checked without a cluster');
});

t.test('--json gives the same decisions to machines', async (t) => {
  const { code, stdout } = await run('check', '--policy', talonRules, '--json', samples[0]!, samples[2]!);
  t.equal(code, 0);
  const result = JSON.parse(stdout) as { policy: { valid: boolean; rules: string[]; protectedNamespaces: string[] }; alerts: AlertReport[] };
  t.equal(result.policy.valid, true);
  t.same(result.policy.rules, ['Shell in a workload', 'Exec into a pod', 'Sensitive files read', 'Quarantine critical payments']);
  const [shell, host] = result.alerts as [AlertReport, AlertReport];
  t.equal(shell.clock, '2025-06-12T09:21:07.118Z');
  t.same(shell.target, { namespace: 'default', name: 'mysql-db-7d59548d75-g9msc', containerId: '2d90926af63e' });
  t.same(
    shell.rules.map((r) => r.result),
    ['match', 'not reached', 'not reached', 'not reached'],
  );
  t.same(
    shell.actions.map((a) => [a.rule, a.action, a.status]),
    [
      ['Shell in a workload', 'label', 'dry-run'],
      ['Shell in a workload', 'delete', 'dry-run'],
    ],
  );
  t.equal(host.decision, 'skip');
  t.equal(host.noTarget, 'a host process: no pod to act on');
  t.same(host.actions, []);
});

t.test('an invalid policy exits 1 listing every problem with its place', async (t) => {
  const bad = join(root, 'test/fixtures/talon/bad-priority.yaml');
  const { code, stdout, stderr } = await run('check', '--policy', bad, samples[0]!);
  t.equal(code, 1);
  t.equal(stdout, '');
  t.match(stderr, /^falco-drop: invalid policy .*bad-priority\.yaml \(2 problems\):\n/);
  t.match(stderr, /bad-priority\.yaml:7:5 \/1\/match\/priority: incorrect priority ">=Loud"/);
  t.match(stderr, /bad-priority\.yaml:13:5 \/2\/match\/priority: incorrect priority ">= Critical"/);

  const json = await run('check', '--policy', bad, '--json');
  t.equal(json.code, 1);
  const result = JSON.parse(json.stdout) as { policy: { valid: boolean; problems: { line: number }[] } };
  t.equal(result.policy.valid, false);
  t.same(
    result.policy.problems.map((p) => p.line),
    [7, 13],
  );
});

t.test('an unreadable policy exits 1 as the service would', async (t) => {
  const { code, stderr } = await run('check', '--policy', join(dir, 'nope.yaml'));
  t.equal(code, 1);
  t.match(stderr, /nope\.yaml \/: cannot read: ENOENT/);
});

interface UsageCase {
  readonly name: string;
  readonly argv: readonly string[];
  readonly message: RegExp;
}

const usageCases: UsageCase[] = [
  { name: 'no command', argv: [], message: /no command given/ },
  { name: 'an unknown command', argv: ['validate', '--policy', 'x'], message: /unknown command "validate"/ },
  { name: 'check without --policy', argv: ['check', 'alert.json'], message: /check needs --policy FILES/ },
  { name: 'a --talon-unsupported that is neither error nor skip', argv: ['check', '--policy', 'x', '--talon-unsupported', 'ignore'], message: /--talon-unsupported "ignore": error or skip/ },
  { name: 'an unknown option', argv: ['check', '--policy', 'x', '--verbose'], message: /Unknown option '--verbose'/ },
  { name: '--policy without its value', argv: ['check', '--policy'], message: /--policy/ },
  { name: 'a namespace that is not a namespace name', argv: ['check', '--policy', 'x', '--namespace', 'Prod_1'], message: /--namespace "Prod_1" is not a namespace name/ },
];

for (const c of usageCases) {
  t.test(`exits 2 with the usage for ${c.name}`, async (t) => {
    const { code, stdout, stderr } = await run(...c.argv);
    t.equal(code, 2);
    t.equal(stdout, '');
    t.match(stderr, c.message);
    t.match(stderr, /\n\nUsage: falco-drop check --policy FILES/);
  });
}

t.test('--help prints the usage and exits 0', async (t) => {
  for (const argv of [['--help'], ['check', '-h']]) {
    const { code, stdout } = await run(...argv);
    t.equal(code, 0);
    t.equal(stdout, usage);
  }
});

const badAlerts: { name: string; text: string | undefined; message: RegExp }[] = [
  { name: 'a missing file', text: undefined, message: /cannot read: ENOENT/ },
  { name: 'not JSON', text: 'Notice A shell was spawned', message: /not JSON: / },
  { name: 'JSON that is not an alert', text: '[{"rule": "x"}]', message: /not a Falco alert: it needs a string "rule" and "priority" and an "output_fields" object/ },
  { name: 'an alert with a bad field', text: '{"rule": "x", "priority": "Notice", "output_fields": {"a": {"b": 1}}}', message: /not a valid Falco alert: output_fields\.a must be a string, number, boolean or null/ },
  { name: 'an invalid CloudEvent', text: '{"specversion": "1.0", "source": "https://falco.org", "type": "falco.rule.output.v1", "data": {}}', message: /not a valid CloudEvent: .*required attribute "id"/ },
  { name: 'a CloudEvent without data', text: '{"specversion": "1.0", "id": "1", "source": "https://falco.org", "type": "falco.rule.output.v1"}', message: /not a Falco alert/ },
];

t.test('alert files that cannot be read or are not alerts exit 2, and the others are still checked', async (t) => {
  const paths = badAlerts.map((b, i) => (b.text === undefined ? join(dir, 'missing.json') : file(`bad-${i}.json`, b.text)));
  const { code, stdout, stderr } = await run('check', '--policy', talonRules, samples[0]!, ...paths);
  t.equal(code, 2);
  t.match(stdout, `alert ${samples[0]}`, 'the good alert is reported');
  const lines = stderr.trimEnd().split('\n');
  t.equal(lines.length, badAlerts.length);
  badAlerts.forEach((b, i) => t.match(lines[i], new RegExp(`^falco-drop: alert ${paths[i]}: ${b.message.source}`), b.name));

  const json = await run('check', '--policy', talonRules, '--json', paths[1]!);
  t.equal(json.code, 2);
  t.equal(json.stderr, '');
  t.same((JSON.parse(json.stdout) as { alerts: unknown[] }).alerts, [{ file: paths[1], error: 'not JSON: Unexpected token \'N\', "Notice A s"... is not valid JSON' }]);
});

t.test('the built falco-drop command runs the check as a process, through its bin', async (t) => {
  const cli = join(root, 'dist/cli.js');
  t.match(readFileSync(cli, 'utf8').split('\n', 1)[0], /^#!\/usr\/bin\/env node$/, 'the bundle starts with its shebang');
  const env = { PATH: process.env.PATH, HOME: dir };
  const direct = spawnSync(cli, ['check', '--policy', talonRules, samples[0]!], { cwd: root, env, encoding: 'utf8' });
  t.equal(direct.status, 0, direct.stderr);
  t.match(direct.stdout, 'decision: act on pod default/mysql-db-7d59548d75-g9msc');
  // `npx falco-drop` inside the clone: npm exec runs the project's own bin, offline.
  const npx = spawnSync('npm', ['exec', '--offline', '--no', '--', 'falco-drop', 'check', '--policy', 'test/fixtures/talon/bad-priority.yaml'], { cwd: root, env, encoding: 'utf8' });
  t.equal(npx.status, 1);
  t.match(npx.stderr, 'bad-priority.yaml:7:5 /1/match/priority: incorrect priority ">=Loud"');
});

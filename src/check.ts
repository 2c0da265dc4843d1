/**
 * `falco-drop check`: the offline check users run in CI before rolling a policy out. It loads
 * the policy as the service does at startup, then puts each sample alert through the service's
 * own parsing and `respond()` with no cluster and dry-run on. cli.ts is only the process entry.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { ActionOutcome } from './actions/action.ts';
import { alertTimeMs, noAlertTime, parseFalcoAlert, type FalcoAlert } from './falco.ts';
import { Cooldowns, DestructiveBudget } from './guards.ts';
import { MemorySafety } from './safety.ts';
import { Background } from './background.ts';
import { parseDelivery } from './incoming.ts';
import { parseJson, type Json } from './json.ts';
import { evaluateRules, loadPolicyFiles, type LoadedPolicy, type Policy, type PolicyError } from './policy.ts';
import { formatProblem } from './policy-problems.ts';
import { buildProtectedNamespaces } from './protection.ts';
import { respond, type Response } from './responder.ts';
import { parseSettings } from './settings.ts';
import { isNamespaceName, selectTarget, type PodTarget } from './target.ts';

export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

export const usage = `Usage: falco-drop check --policy FILES [--talon-unsupported error|skip] [--namespace NAME] [--json] [ALERT.json ...]

Checks a response policy (drop's format, or a Falco Talon rules file) without a cluster: it
validates the policy as the service does at startup, then for each alert file (a Falco payload as
Falco or Falcosidekick sends it, or a CloudEvent in structured JSON) says which response rules
match and why the others do not, which pod is the target, whether a guard rail skips it, and which
actions would run on which pod.

Options:
  --policy FILES     the policy to check (required), as DROP_POLICY takes it: a file, a
                     comma-separated list of files, or a directory (its .yaml and .yml files
                     in name order); several files are Talon rules files, merged in order
  --talon-unsupported error|skip
                     as DROP_TALON_UNSUPPORTED: a Talon action drop cannot run is an error
                     (the default), or is skipped and listed
  --namespace NAME   the namespace drop runs in: protected like the built-in ones
  --json             one JSON document on stdout instead of text
  -h, --help         show this help

Exit status: 0 the policy is valid (whatever the alerts say); 1 the policy is invalid (every
problem is listed); 2 a usage error, or an alert file that cannot be read or is not an alert.
`;

/** How one response rule fared for an alert. */
export interface RuleReport {
  readonly name: string;
  readonly result: 'match' | 'no match' | 'not reached';
  /** Why it does not match, or which rule stopped the evaluation before it. */
  readonly reason: string | undefined;
  /** The rule only reports, in the cluster too. */
  readonly dryRun: boolean;
}

export interface ActionReport extends ActionOutcome {
  readonly rule: string;
}

/** What the service would decide about one alert file. */
export interface AlertReport {
  readonly file: string;
  readonly alert: { readonly rule: string; readonly priority: string; readonly source: string; readonly time: string };
  /** The time the check's clock was set to: the alert's own (else its CloudEvent's). */
  readonly clock: string;
  readonly target: PodTarget | undefined;
  /** Why there is no target pod. */
  readonly noTarget: string | undefined;
  readonly rules: readonly RuleReport[];
  readonly decision: Response['decision'];
  readonly reason: string;
  readonly actions: readonly ActionReport[];
}

interface Options {
  readonly policy: Policy;
  readonly protectedNamespaces: ReadonlySet<string>;
}

function isRecord(value: Json | undefined): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads an alert file: a Falco payload, or a structured CloudEvent carrying one. A string says what is wrong. */
async function readAlert(file: string): Promise<{ alert: FalcoAlert; eventTime: string | undefined; at: number } | string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return `cannot read: ${(error as Error).message}`;
  }
  let data: Json | undefined;
  try {
    data = parseJson(text);
  } catch (error) {
    return `not JSON: ${(error as Error).message}`;
  }
  let eventTime: string | undefined;
  if (isRecord(data) && typeof data.specversion === 'string') {
    try {
      const [event] = parseDelivery({ 'content-type': 'application/cloudevents+json' }, text);
      data = event!.data;
      eventTime = event!.context!.time;
    } catch (error) {
      return `not a valid CloudEvent: ${(error as Error).message}`;
    }
  }
  const alert = data === undefined ? undefined : parseFalcoAlert(data);
  if (alert === undefined) return 'not a Falco alert: it needs a string "rule" and "priority" and an "output_fields" object';
  if (typeof alert === 'string') return `not a valid Falco alert: ${alert}`;
  // The service refuses (400) an alert with no time, so the check does too.
  const at = alertTimeMs(alert, eventTime);
  if (at === undefined) return `not a valid Falco alert: ${noAlertTime}`;
  return { alert, eventTime, at };
}

function ruleReports(policy: Policy, alert: FalcoAlert, namespace: string | undefined): RuleReport[] {
  const evaluations = evaluateRules(policy, alert, namespace);
  const reports: RuleReport[] = evaluations.map(({ rule, mismatch }) => ({
    name: rule.name,
    result: mismatch === undefined ? 'match' : 'no match',
    reason: mismatch,
    dryRun: rule.dryRun,
  }));
  const stopper = evaluations.at(-1)?.rule.name;
  for (const rule of policy.rules.slice(evaluations.length)) {
    reports.push({ name: rule.name, result: 'not reached', reason: `"${stopper}" matched and has continue: false`, dryRun: rule.dryRun });
  }
  return reports;
}

/** Each outcome with the rule that asked for it: without a cluster every step says what it would do, one outcome per step. */
function actionReports(policy: Policy, response: Response): ActionReport[] {
  if (response.decision === 'skip') return [];
  const steps = response.rules.flatMap((name) => policy.rules.find((r) => r.name === name)!.actions.map(() => name));
  return response.outcomes.map((outcome, i) => ({ rule: steps[i]!, ...outcome }));
}

async function checkAlert(file: string, alert: FalcoAlert, eventTime: string | undefined, at: number, options: Options): Promise<AlertReport> {
  // The clock stands at the alert's own time, so the age guard does not skip a sample written long ago.
  const now = new Date(at);
  const clock = { now: () => now };
  const defaults = parseSettings({});
  const response = await respond(
    {
      policy: options.policy,
      kube: undefined,
      dryRun: true,
      protectedNamespaces: options.protectedNamespaces,
      gracePeriodSeconds: defaults.gracePeriodSeconds,
      retryAfterSeconds: defaults.retryAfterSeconds,
      clock,
      safety: new MemorySafety(new Cooldowns(clock), new DestructiveBudget(clock, options.policy.guards.destructivePerMinute)),
      // Without a cluster nothing is written after the answer, so nothing is logged either.
      background: new Background(console),
    },
    alert,
    { time: eventTime, event: { source: 'falco-drop check', id: file } },
  );
  const selection = selectTarget(alert);
  return {
    file,
    alert: { rule: alert.rule, priority: alert.priority, source: alert.source, time: (alert.time ?? eventTime)! },
    clock: now.toISOString(),
    target: selection.target,
    noTarget: selection.target ? undefined : selection.reason,
    rules: ruleReports(options.policy, alert, selection.target?.namespace),
    decision: response.decision,
    reason: response.reason,
    actions: actionReports(options.policy, response),
  };
}

function describePod(target: PodTarget): string {
  const identity = [target.uid ? `uid ${target.uid}` : '', target.containerId ? `container ${target.containerId}` : ''].filter(Boolean).join(', ');
  return `pod ${target.namespace}/${target.name}${identity ? ` (${identity})` : ''}`;
}

function formatReport(report: AlertReport): string {
  const { alert } = report;
  const lines = [`alert ${report.file}`, `  Falco rule "${alert.rule}" (${alert.priority}, ${alert.source}) at ${alert.time}`];
  lines.push(`  target: ${report.target ? describePod(report.target) : `none: ${report.noTarget}`}`);
  lines.push('  response rules:');
  const width = Math.max(...report.rules.map((r) => r.name.length));
  for (const rule of report.rules) {
    const why = rule.reason ?? (rule.dryRun ? '[dryRun: only reports, in the cluster too]' : '');
    lines.push(`    ${rule.result.padEnd(11)}  ${rule.name.padEnd(width)}  ${why}`.trimEnd());
  }
  if (report.decision === 'skip') lines.push(`  decision: skip: ${report.reason}`);
  else {
    lines.push(`  decision: act on ${describePod(report.target!)}, running (dry run, nothing sent):`);
    report.actions.forEach((a, i) => lines.push(`    ${i + 1}. ${a.rule}: ${a.action}: ${a.reason}`));
  }
  return `${lines.join('\n')}\n`;
}

function formatPolicy(loaded: LoadedPolicy, protectedNamespaces: ReadonlySet<string>): string {
  const { policy } = loaded;
  const { guards } = policy;
  const count = `${policy.rules.length} response rule${policy.rules.length === 1 ? '' : 's'}`;
  return [
    `policy ${policy.origin}: valid, ${count}: ${policy.rules.map((r) => r.name).join(', ')}`,
    ...(loaded.files.length > 1 ? [`  files, in load order: ${loaded.files.join(', ')}`] : []),
    `  sha256: ${loaded.sha256}`,
    ...(loaded.skipped.length > 0
      ? [`  skipped (--talon-unsupported skip), ${loaded.skipped.length}:`, ...loaded.skipped.map((p) => `    ${formatProblem(p, policy.origin)}`)]
      : []),
    `  guards: cooldown ${guards.cooldownSeconds} s per (rule, pod), ${guards.destructivePerMinute} destructive actions per minute, alerts older than ${guards.maxAlertAgeSeconds} s skipped`,
    `  protected namespaces: ${[...protectedNamespaces].join(', ')}`,
    '',
  ].join('\n');
}

const offlineNote = `Checked without a cluster: each alert alone (no cooldown from the others), the clock set to the alert's own time
(so the age guard does not skip these samples), every action in dry run. Not checked: the live pod (gone, replaced,
opted out with falco-drop/ignore: "true" on it or its namespace) and the destructive budget.
`;

function usageError(io: CliIo, message: string): number {
  io.stderr.write(`falco-drop: ${message}\n\n${usage}`);
  return 2;
}

/**
 * Runs `falco-drop` with the arguments after the program name; writes to `io` and returns the
 * exit status (the entry point sets it), so tests run it in-process.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        policy: { type: 'string' },
        'talon-unsupported': { type: 'string' },
        namespace: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    return usageError(io, (error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(usage);
    return 0;
  }
  const [command, ...files] = positionals;
  if (command !== 'check') return usageError(io, command === undefined ? 'no command given' : `unknown command "${command}"`);
  if (values.policy === undefined) return usageError(io, 'check needs --policy FILES');
  const talonUnsupported = values['talon-unsupported'] ?? 'error';
  if (talonUnsupported !== 'error' && talonUnsupported !== 'skip') return usageError(io, `--talon-unsupported ${JSON.stringify(talonUnsupported)}: error or skip`);
  if (values.namespace !== undefined && !isNamespaceName(values.namespace)) return usageError(io, `--namespace ${JSON.stringify(values.namespace)} is not a namespace name`);

  let loaded: LoadedPolicy;
  try {
    loaded = await loadPolicyFiles(values.policy, { talonUnsupported });
  } catch (error) {
    // loadPolicyFiles throws PolicyError only: unreadable, not YAML, or invalid, every problem listed.
    const invalid = error as PolicyError;
    if (values.json) io.stdout.write(`${JSON.stringify({ policy: { origin: values.policy, valid: false, problems: invalid.problems } }, null, 2)}\n`);
    else io.stderr.write(`falco-drop: ${invalid.message}\n`);
    return 1;
  }
  const { policy } = loaded;
  const options: Options = { policy, protectedNamespaces: buildProtectedNamespaces(policy.protectedNamespaces, values.namespace) };
  if (!values.json) io.stdout.write(formatPolicy(loaded, options.protectedNamespaces));

  const reports: (AlertReport | { file: string; error: string })[] = [];
  for (const file of files) {
    const read = await readAlert(file);
    if (typeof read === 'string') {
      reports.push({ file, error: read });
      if (!values.json) io.stderr.write(`falco-drop: alert ${file}: ${read}\n`);
      continue;
    }
    const report = await checkAlert(file, read.alert, read.eventTime, read.at, options);
    reports.push(report);
    if (!values.json) io.stdout.write(`\n${formatReport(report)}`);
  }
  if (values.json) {
    const summary = {
      origin: policy.origin,
      valid: true,
      files: loaded.files,
      sha256: loaded.sha256,
      skipped: loaded.skipped,
      rules: policy.rules.map((r) => r.name),
      guards: policy.guards,
      protectedNamespaces: [...options.protectedNamespaces],
    };
    io.stdout.write(`${JSON.stringify({ policy: summary, alerts: reports }, null, 2)}\n`);
  } else if (reports.some((r) => !('error' in r))) io.stdout.write(`\n${offlineNote}`);
  return reports.some((r) => 'error' in r) ? 2 : 0;
}

import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ErrorObject } from 'ajv';
import { LineCounter, isSeq, parseDocument, type Document } from 'yaml';
import { actionModules } from './actions/index.ts';
import type { FalcoAlert } from './falco.ts';
import { matchMismatch, type FieldCondition, type Match } from './match.ts';
import { parsePriorityCondition, type PriorityCondition } from './priority-expression.ts';
import { PolicyError, ProblemList, describeSchemaError, type PolicyProblem } from './policy-problems.ts';
import { convertTalonFiles, type TalonUnsupported } from './talon.ts';
import { parametersValidator, policyValidator } from './validators.ts';

export { PolicyError, type PolicyProblem } from './policy-problems.ts';
export type { TalonUnsupported } from './talon.ts';

/** One step of a response rule's action chain. */
export interface ActionStep {
  readonly action: string;
  readonly parameters: Readonly<Record<string, unknown>>;
  /** Run the next steps even when this one fails. */
  readonly continueOnError: boolean;
}

/** A response rule: which alerts, and what to do about them. */
export interface ResponseRule {
  readonly name: string;
  readonly match: Match;
  readonly actions: readonly ActionStep[];
  readonly dryRun: boolean;
  /** When false, a match stops the evaluation of later rules. */
  readonly continue: boolean;
  /** One response per (rule, pod) within this many seconds. */
  readonly cooldownSeconds: number;
}

/** Guard rails: tunable within bounds, never off. */
export interface Guards {
  readonly cooldownSeconds: number;
  readonly destructivePerMinute: number;
  readonly maxAlertAgeSeconds: number;
}

export interface Policy {
  /** Where the policy came from: a file path, or "built-in default". */
  readonly origin: string;
  readonly rules: readonly ResponseRule[];
  /** Namespaces the policy adds to the built-in protected ones (never removes). */
  readonly protectedNamespaces: readonly string[];
  readonly guards: Guards;
}

export const defaultGuards: Guards = { cooldownSeconds: 60, destructivePerMinute: 30, maxAlertAgeSeconds: 900 };

/** The original falco-drop's behaviour: delete the pod on "Terminal shell in container". */
export const defaultPolicyYaml = `rules:
  - name: terminal-shell
    match:
      rules: ["Terminal shell in container"]
    actions:
      - action: delete
`;

type Scalar = string | number | boolean;
interface RawMatch {
  rules?: string[];
  priority?: string;
  tags?: { anyOf?: string[]; allOf?: string[] };
  source?: string | string[];
  outputFields?: ({ field: string } & Record<string, Scalar | Scalar[]>)[];
  namespaces?: { include?: string[]; exclude?: string[] };
  anyOf?: RawMatch[];
}
interface RawRule {
  name: string;
  match: RawMatch;
  actions: { action: string; parameters?: Record<string, unknown>; continueOnError?: boolean }[];
  dryRun?: boolean;
  continue?: boolean;
  cooldownSeconds?: number;
}
interface RawPolicy {
  rules: RawRule[];
  protectedNamespaces?: string[];
  guards?: Partial<Guards>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every `priority` in a match and its alternatives, with its path. */
function priorities(match: unknown, at: string): { path: string; value: string }[] {
  if (!isRecord(match)) return [];
  const own = typeof match.priority === 'string' ? [{ path: `${at}/priority`, value: match.priority }] : [];
  const alternatives = Array.isArray(match.anyOf) ? match.anyOf.flatMap((m: unknown, i) => priorities(m, `${at}/anyOf/${i}`)) : [];
  return [...own, ...alternatives];
}

/**
 * What the schema cannot say: priorities, action names and their parameters, duplicate names.
 * It runs even when the shape has errors (reading only what has the right type) so that one
 * startup lists every problem in the file.
 */
function checkSemantics(value: unknown, problems: ProblemList): void {
  const rules = isRecord(value) && Array.isArray(value.rules) ? value.rules : [];
  const guards = isRecord(value) && isRecord(value.guards) ? value.guards : {};
  const budget = typeof guards.destructivePerMinute === 'number' ? guards.destructivePerMinute : defaultGuards.destructivePerMinute;
  if (isRecord(value) && Array.isArray(value.rules) && value.rules.length === 0) problems.add('/rules', 'no response rule: the list is empty, so drop would act on nothing');
  const names = new Map<string, number>();
  rules.forEach((rule: unknown, i) => {
    if (!isRecord(rule)) return;
    const at = `/rules/${i}`;
    if (typeof rule.name === 'string') {
      const earlier = names.get(rule.name);
      if (earlier !== undefined) problems.add(`${at}/name`, `duplicate rule name "${rule.name}" (also /rules/${earlier})`);
      else names.set(rule.name, i);
    }
    for (const { path, value: text } of priorities(rule.match, `${at}/match`)) {
      const parsed = parsePriorityCondition(text);
      if (typeof parsed === 'string') problems.add(path, parsed);
    }
    const steps = Array.isArray(rule.actions) ? rule.actions : [];
    // A response that needs more destructive actions than the budget could never run.
    const destructive = steps.filter((s: unknown) => isRecord(s) && actionModules.get(String(s.action))?.destructive === true).length;
    if (destructive > budget) {
      problems.add(`${at}/actions`, `${destructive} destructive actions in one response, more than guards.destructivePerMinute (${budget}): it could never run`);
    }
    steps.forEach((step: unknown, j) => {
      if (!isRecord(step) || typeof step.action !== 'string') return;
      const validate = parametersValidator(step.action);
      if (!validate) {
        problems.add(`${at}/actions/${j}/action`, `unknown action "${step.action}" (known: ${[...actionModules.keys()].join(', ')})`);
        return;
      }
      if (!isRecord(step.parameters) || validate(step.parameters)) return;
      // ajv sets `errors` whenever validation fails.
      for (const error of validate.errors as ErrorObject[]) {
        const { path, message } = describeSchemaError(error);
        problems.add(`${at}/actions/${j}/parameters${path}`, message);
      }
    });
  });
}

function buildFieldCondition(raw: { field: string } & Record<string, Scalar | Scalar[]>): FieldCondition {
  const { field, ...rest } = raw;
  const [op, value] = Object.entries(rest)[0] as [string, Scalar | Scalar[]];
  if (op === 'oneOf') return { field, oneOf: (value as Scalar[]).map(String) };
  return { field, [op]: String(value) } as FieldCondition;
}

function buildMatch(raw: RawMatch): Match {
  return {
    ...(raw.rules ? { rules: raw.rules } : {}),
    ...(raw.priority !== undefined ? { priority: parsePriorityCondition(raw.priority) as PriorityCondition } : {}),
    ...(raw.tags ? { tags: raw.tags } : {}),
    ...(raw.source !== undefined ? { source: typeof raw.source === 'string' ? [raw.source] : raw.source } : {}),
    ...(raw.outputFields ? { outputFields: raw.outputFields.map(buildFieldCondition) } : {}),
    ...(raw.namespaces ? { namespaces: raw.namespaces } : {}),
    ...(raw.anyOf ? { anyOf: raw.anyOf.map(buildMatch) } : {}),
  };
}

function build(raw: RawPolicy, origin: string): Policy {
  const guards = { ...defaultGuards, ...raw.guards };
  return {
    origin,
    protectedNamespaces: raw.protectedNamespaces ?? [],
    guards,
    rules: raw.rules.map((rule) => ({
      name: rule.name,
      match: buildMatch(rule.match),
      actions: rule.actions.map((step) => ({ action: step.action, parameters: step.parameters ?? {}, continueOnError: step.continueOnError ?? false })),
      dryRun: rule.dryRun ?? false,
      continue: rule.continue ?? true,
      cooldownSeconds: rule.cooldownSeconds ?? guards.cooldownSeconds,
    })),
  };
}

/**
 * Validates a policy given as a plain object (drop's format, or a Talon file converted to it)
 * and builds it; throws PolicyError listing every problem. `problems` places them in the file.
 */
export function policyFromObject(value: unknown, origin: string, problems = new ProblemList(undefined, undefined)): Policy {
  const validateShape = policyValidator();
  if (!validateShape(value)) {
    for (const error of validateShape.errors as ErrorObject[]) {
      const { path, message } = describeSchemaError(error);
      problems.add(path, message);
    }
  }
  checkSemantics(value, problems);
  if (problems.problems.length > 0) throw new PolicyError(origin, problems.sorted());
  return build(value as RawPolicy, origin);
}

export interface PolicyOptions {
  /**
   * DROP_TALON_UNSUPPORTED: what a Talon action drop cannot run does to the policy: "error" (the
   * default) refuses it; "skip" leaves the action out and reports it.
   */
  readonly talonUnsupported?: TalonUnsupported;
}

/** A policy built from its text, with what was skipped in it (Talon actions left out on request). */
export interface ParsedPolicy {
  readonly policy: Policy;
  readonly skipped: readonly PolicyProblem[];
}

/**
 * Parses and validates a policy given as one or more files' text, in load order; throws
 * PolicyError listing every problem with its file, line and column. One file whose top level is
 * a mapping is drop's own format; otherwise every file is a Falco Talon rules file (a YAML list,
 * or empty), merged as Talon merges them.
 */
export function parsePolicyFiles(texts: readonly { readonly file: string; readonly text: string }[], origin: string, options: PolicyOptions = {}): ParsedPolicy {
  const parsed = texts.map(({ file, text }) => {
    const lines = new LineCounter();
    const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    return { file, lines, document: document as Document };
  });
  const named = (file: string): { file?: string } => (file === origin ? {} : { file });
  const problems: PolicyProblem[] = parsed.flatMap(({ file, lines, document }) =>
    document.errors.map((e) => {
      const position = lines.linePos(e.pos[0]);
      return { path: '', line: position.line, column: position.col, message: e.message.split('\n')[0] as string, ...named(file) };
    }),
  );
  if (problems.length > 0) throw new PolicyError(origin, problems);
  // A top-level list (or nothing) is a Falco Talon rules file; drop's own format is a mapping.
  const talon = (p: (typeof parsed)[number]): boolean => isSeq(p.document.contents) || p.document.contents === null;
  const only = parsed.length === 1 ? parsed[0]! : undefined;
  if (only && !talon(only)) {
    return { policy: policyFromObject(only.document.toJS(), origin, new ProblemList(only.document, only.lines, named(only.file).file)), skipped: [] };
  }
  const mappings = parsed.filter((p) => !talon(p));
  if (mappings.length > 0) {
    throw new PolicyError(
      origin,
      mappings.map((p) => ({ path: '', line: 1, column: 1, message: "drop's own format (a mapping with rules:) is one file on its own; with several files, each is a Falco Talon rules file (a list)", ...named(p.file) })),
    );
  }
  const converted = convertTalonFiles(parsed, origin, options.talonUnsupported);
  return { policy: policyFromObject(converted.policy, origin), skipped: converted.skipped };
}

/** Parses and validates a policy document; throws PolicyError listing every problem. */
export function parsePolicy(text: string, origin: string): Policy {
  return parsePolicyFiles([{ file: origin, text }], origin).policy;
}

/**
 * A policy as loaded: the policy, the files it was read from in load order (none for the
 * built-in default), the sha256 (hex) of those files' bytes in that order (of the built-in
 * default's text when there are none), which /readyz and `check` show so a user can compare, and
 * what DROP_TALON_UNSUPPORTED=skip left out of it (to be logged at warn).
 */
export interface LoadedPolicy {
  readonly policy: Policy;
  readonly files: readonly string[];
  readonly sha256: string;
  readonly skipped: readonly PolicyProblem[];
}

function unreadable(origin: string, file: string, message: string): PolicyError {
  return new PolicyError(origin, [{ path: '', line: undefined, column: undefined, message, ...(file === origin ? {} : { file }) }]);
}

const policyFileName = /\.ya?ml$/;

/**
 * The files a policy setting names, in load order: a comma-separated list of files or
 * directories; a directory stands for its .yaml and .yml files in name order (hidden ones left
 * out, such as the `..data` of a mounted ConfigMap; symbolic links followed).
 */
export async function policyFiles(spec: string): Promise<string[]> {
  const entries = spec.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) throw unreadable(spec, spec, 'names no file');
  const read = async <T>(path: string, how: (path: string) => Promise<T>): Promise<T> => {
    try {
      return await how(path);
    } catch (error) {
      throw unreadable(spec, path, `cannot read: ${(error as Error).message}`);
    }
  };
  const files: string[] = [];
  for (const entry of entries) {
    if (!(await read(entry, stat)).isDirectory()) {
      files.push(entry);
      continue;
    }
    const names = (await read(entry, (path) => readdir(path))).filter((n) => policyFileName.test(n) && !n.startsWith('.')).sort();
    const found: string[] = [];
    for (const n of names) if ((await read(join(entry, n), stat)).isFile()) found.push(join(entry, n));
    if (found.length === 0) throw unreadable(spec, entry, 'the directory holds no .yaml or .yml file');
    files.push(...found);
  }
  return files;
}

/**
 * Reads the policy `spec` names (see policyFiles), or the built-in default when none is given.
 * Throws PolicyError: a file that cannot be read, every problem in the policy, or a policy with
 * no response rule.
 */
export async function loadPolicyFiles(spec: string | undefined, options: PolicyOptions = {}): Promise<LoadedPolicy> {
  if (spec === undefined) {
    return { policy: parsePolicy(defaultPolicyYaml, 'built-in default'), files: [], sha256: createHash('sha256').update(defaultPolicyYaml).digest('hex'), skipped: [] };
  }
  const files = await policyFiles(spec);
  const hash = createHash('sha256');
  const texts: { file: string; text: string }[] = [];
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (error) {
      throw unreadable(spec, file, `cannot read: ${(error as Error).message}`);
    }
    hash.update(bytes);
    texts.push({ file, text: bytes.toString('utf8') });
  }
  const { policy, skipped } = parsePolicyFiles(texts, spec, options);
  return { policy, files, sha256: hash.digest('hex'), skipped };
}

/** Reads the policy `spec` names, or the built-in default when none is given. */
export async function loadPolicy(spec: string | undefined, options: PolicyOptions = {}): Promise<Policy> {
  return (await loadPolicyFiles(spec, options)).policy;
}

/** How each response rule fared for one alert, in evaluation order. */
export interface RuleEvaluation {
  readonly rule: ResponseRule;
  /** Undefined when the rule matches; else why not. */
  readonly mismatch: string | undefined;
}

/**
 * Evaluates the rules in file order; a matching rule with `continue: false` stops evaluation.
 * `namespace` is the target pod's namespace (for `namespaces` conditions).
 */
export function evaluateRules(policy: Policy, alert: FalcoAlert, namespace: string | undefined): RuleEvaluation[] {
  const evaluations: RuleEvaluation[] = [];
  for (const rule of policy.rules) {
    const mismatch = matchMismatch(rule.match, alert, namespace);
    evaluations.push({ rule, mismatch });
    if (mismatch === undefined && !rule.continue) break;
  }
  return evaluations;
}

/** The response rules that apply to an alert, in file order, up to the first that stops evaluation. */
export function selectRules(policy: Policy, alert: FalcoAlert, namespace: string | undefined): ResponseRule[] {
  return evaluateRules(policy, alert, namespace).flatMap((e) => (e.mismatch === undefined ? [e.rule] : []));
}

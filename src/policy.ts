import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject } from 'ajv';
import { LineCounter, isSeq, parseDocument } from 'yaml';
import { actionModules } from './actions/index.ts';
import type { FalcoAlert } from './falco.ts';
import { matchMismatch, type FieldCondition, type Match } from './match.ts';
import { parsePriorityCondition, type PriorityCondition } from './priority-expression.ts';
import { PolicyError, ProblemList, describeSchemaError, type PolicyProblem } from './policy-problems.ts';
import { policySchema } from './policy-schema.ts';
import { convertTalonRules } from './talon.ts';

export { PolicyError, type PolicyProblem } from './policy-problems.ts';

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

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validateShape = ajv.compile(policySchema);
const validateParameters = new Map([...actionModules].map(([name, module]) => [name, ajv.compile(module.parameters)]));

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
      const validate = validateParameters.get(step.action);
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

/** Parses and validates a policy document; throws PolicyError listing every problem. */
export function parsePolicy(text: string, origin: string): Policy {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    const problems: PolicyProblem[] = document.errors.map((e) => {
      const position = lines.linePos(e.pos[0]);
      return { path: '', line: position.line, column: position.col, message: e.message.split('\n')[0] as string };
    });
    throw new PolicyError(origin, problems);
  }
  // A top-level list is a Falco Talon rules file (drop's own format is a mapping).
  if (isSeq(document.contents)) return policyFromObject(convertTalonRules(document, lines, origin), origin);
  return policyFromObject(document.toJS(), origin, new ProblemList(document, lines));
}

/**
 * A policy as loaded: the policy, the files it was read from in load order (none for the
 * built-in default), and the sha256 (hex) of those files' bytes in that order (of the built-in
 * default's text when there are none), which /readyz and `check` show so a user can compare.
 */
export interface LoadedPolicy {
  readonly policy: Policy;
  readonly files: readonly string[];
  readonly sha256: string;
}

/** Reads the policy file, or the built-in default when no path is given. */
export async function loadPolicyFiles(path: string | undefined): Promise<LoadedPolicy> {
  if (path === undefined) {
    return { policy: parsePolicy(defaultPolicyYaml, 'built-in default'), files: [], sha256: createHash('sha256').update(defaultPolicyYaml).digest('hex') };
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new PolicyError(path, [{ path: '', line: undefined, column: undefined, message: `cannot read: ${(error as Error).message}` }]);
  }
  return { policy: parsePolicy(bytes.toString('utf8'), path), files: [path], sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Reads the policy file, or the built-in default when no path is given. */
export async function loadPolicy(path: string | undefined): Promise<Policy> {
  return (await loadPolicyFiles(path)).policy;
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

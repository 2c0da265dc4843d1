import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject } from 'ajv';
import { LineCounter, isMap, isSeq, parseDocument, type Document, type Node } from 'yaml';
import type { FalcoAlert } from './falco.ts';
import { matchesPriority, parsePriorityCondition, type PriorityCondition } from './priority-expression.ts';
import { actionModules } from './actions/index.ts';

/** One step of a response rule's action chain. */
export interface ActionStep {
  readonly action: string;
  readonly parameters: Readonly<Record<string, unknown>>;
  /** Run the next steps even when this one fails. */
  readonly continueOnError: boolean;
}

export interface Match {
  /** Falco rule names; empty means any rule. */
  readonly rules: readonly string[];
  readonly priority: PriorityCondition | undefined;
}

/** A response rule: which alerts, and what to do about them. */
export interface ResponseRule {
  readonly name: string;
  readonly match: Match;
  readonly actions: readonly ActionStep[];
  readonly dryRun: boolean;
  /** When false, a match stops the evaluation of later rules. */
  readonly continue: boolean;
}

export interface Policy {
  /** Where the policy came from: a file path, or "built-in default". */
  readonly origin: string;
  readonly rules: readonly ResponseRule[];
  /** Namespaces the policy adds to the built-in protected ones (never removes). */
  readonly protectedNamespaces: readonly string[];
}

export interface PolicyProblem {
  /** JSON-pointer-like path in the document: /rules/0/match/priority. */
  readonly path: string;
  /** 1-based line and column in the file, when known. */
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly message: string;
}

/** An invalid policy: every problem, with its place in the file. */
export class PolicyError extends Error {
  readonly problems: readonly PolicyProblem[];
  constructor(origin: string, problems: readonly PolicyProblem[]) {
    const lines = problems.map((p) => `  ${origin}${p.line ? `:${p.line}:${p.column}` : ''} ${p.path || '/'}: ${p.message}`);
    super(`invalid policy ${origin} (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`);
    this.name = 'PolicyError';
    this.problems = problems;
  }
}

/** The original falco-drop's behaviour: delete the pod on "Terminal shell in container". */
export const defaultPolicyYaml = `rules:
  - name: terminal-shell
    match:
      rules: ["Terminal shell in container"]
    actions:
      - action: delete
`;

const namespacePattern = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['rules'],
  properties: {
    protectedNamespaces: { type: 'array', items: { type: 'string', pattern: namespacePattern, maxLength: 63 } },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'match', 'actions'],
        properties: {
          name: { type: 'string', minLength: 1 },
          match: {
            type: 'object',
            additionalProperties: false,
            properties: {
              rules: { type: 'array', items: { type: 'string', minLength: 1 } },
              priority: { type: 'string' },
            },
          },
          actions: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['action'],
              properties: {
                action: { type: 'string' },
                parameters: { type: 'object' },
                continueOnError: { type: 'boolean' },
              },
            },
          },
          dryRun: { type: 'boolean' },
          continue: { type: 'boolean' },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true });
const validateShape = ajv.compile(schema);
const validateParameters = new Map([...actionModules].map(([name, module]) => [name, ajv.compile(module.parameters)]));

interface RawStep {
  action: string;
  parameters?: Record<string, unknown>;
  continueOnError?: boolean;
}
interface RawRule {
  name: string;
  match: { rules?: string[]; priority?: string };
  actions: RawStep[];
  dryRun?: boolean;
  continue?: boolean;
}
interface RawPolicy {
  rules: RawRule[];
  protectedNamespaces?: string[];
}

function describe(error: ErrorObject): { path: string; message: string } {
  const { params } = error;
  switch (error.keyword) {
    case 'additionalProperties':
      return { path: `${error.instancePath}/${params.additionalProperty}`, message: `unknown key "${params.additionalProperty}"` };
    case 'required':
      return { path: error.instancePath, message: `missing required key "${params.missingProperty}"` };
    default:
      return { path: error.instancePath, message: error.message ?? error.keyword };
  }
}

class ProblemList {
  readonly problems: PolicyProblem[] = [];
  constructor(
    private readonly document: Document,
    private readonly lines: LineCounter,
  ) {}

  add(path: string, message: string): void {
    const keys = path.split('/').slice(1).map((k) => (/^\d+$/.test(k) ? Number(k) : k));
    const position = this.position(keys);
    this.problems.push({ path, line: position?.line, column: position?.col, message });
  }

  /** Where a path is written: a map entry's key, a list item, else the nearest ancestor. */
  private position(keys: (string | number)[]): { line: number; col: number } | undefined {
    for (let n = keys.length; n > 0; n--) {
      const parent = n === 1 ? this.document.contents : this.document.getIn(keys.slice(0, n - 1), true);
      const key = keys[n - 1];
      let node: Node | undefined;
      if (isMap(parent)) node = parent.items.find((pair) => (pair.key as { value?: unknown }).value === key)?.key as Node | undefined;
      else if (isSeq(parent) && typeof key === 'number') node = parent.items[key] as Node | undefined;
      if (node?.range) return this.lines.linePos(node.range[0]);
    }
    const root = this.document.contents;
    return root?.range ? this.lines.linePos(root.range[0]) : undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * What the schema cannot say: priorities, action names and their parameters, duplicate names.
 * It runs even when the shape has errors (reading only what has the right type) so that one
 * startup lists every problem in the file.
 */
function checkSemantics(value: unknown, problems: ProblemList): void {
  const rules = isRecord(value) && Array.isArray(value.rules) ? value.rules : [];
  const names = new Map<string, number>();
  rules.forEach((rule: unknown, i) => {
    if (!isRecord(rule)) return;
    const at = `/rules/${i}`;
    if (typeof rule.name === 'string') {
      const earlier = names.get(rule.name);
      if (earlier !== undefined) problems.add(`${at}/name`, `duplicate rule name "${rule.name}" (also /rules/${earlier})`);
      else names.set(rule.name, i);
    }
    const priority = isRecord(rule.match) ? rule.match.priority : undefined;
    if (typeof priority === 'string') {
      const parsed = parsePriorityCondition(priority);
      if (typeof parsed === 'string') problems.add(`${at}/match/priority`, parsed);
    }
    const steps = Array.isArray(rule.actions) ? rule.actions : [];
    steps.forEach((step: unknown, j) => {
      if (!isRecord(step) || typeof step.action !== 'string') return;
      const validate = validateParameters.get(step.action);
      if (!validate) {
        problems.add(`${at}/actions/${j}/action`, `unknown action "${step.action}" (known: ${[...actionModules.keys()].join(', ')})`);
        return;
      }
      if (!isRecord(step.parameters) || validate(step.parameters)) return;
      for (const error of validate.errors ?? []) {
        const { path, message } = describe(error);
        problems.add(`${at}/actions/${j}/parameters${path}`, message);
      }
    });
  });
}

function build(raw: RawPolicy, origin: string): Policy {
  return {
    origin,
    protectedNamespaces: raw.protectedNamespaces ?? [],
    rules: raw.rules.map((rule) => ({
      name: rule.name,
      match: {
        rules: rule.match.rules ?? [],
        priority: rule.match.priority === undefined ? undefined : (parsePriorityCondition(rule.match.priority) as PriorityCondition),
      },
      actions: rule.actions.map((step) => ({
        action: step.action,
        parameters: step.parameters ?? {},
        continueOnError: step.continueOnError ?? false,
      })),
      dryRun: rule.dryRun ?? false,
      continue: rule.continue ?? true,
    })),
  };
}

/** Parses and validates a policy document; throws PolicyError listing every problem. */
export function parsePolicy(text: string, origin: string): Policy {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new PolicyError(
      origin,
      document.errors.map((e) => {
        const position = lines.linePos(e.pos[0]);
        return { path: '', line: position.line, column: position.col, message: e.message.split('\n')[0] as string };
      }),
    );
  }
  const problems = new ProblemList(document, lines);
  const value: unknown = document.toJS();
  if (!validateShape(value)) {
    for (const error of validateShape.errors ?? []) {
      const { path, message } = describe(error);
      problems.add(path, message);
    }
  }
  checkSemantics(value, problems);
  if (problems.problems.length > 0) {
    const ordered = [...problems.problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    throw new PolicyError(origin, ordered);
  }
  return build(value as RawPolicy, origin);
}

/** Reads the policy file, or the built-in default when no path is given. */
export async function loadPolicy(path: string | undefined): Promise<Policy> {
  if (path === undefined) return parsePolicy(defaultPolicyYaml, 'built-in default');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new PolicyError(path, [{ path: '', line: undefined, column: undefined, message: `cannot read: ${(error as Error).message}` }]);
  }
  return parsePolicy(text, path);
}

/** True when the alert meets every condition of the match. */
export function matchesRule(match: Match, alert: FalcoAlert): boolean {
  if (match.rules.length > 0 && !match.rules.includes(alert.rule)) return false;
  if (match.priority && !matchesPriority(match.priority, alert.priority)) return false;
  return true;
}

/** The response rules that apply to an alert, in file order, up to the first that stops evaluation. */
export function selectRules(policy: Policy, alert: FalcoAlert): ResponseRule[] {
  const selected: ResponseRule[] = [];
  for (const rule of policy.rules) {
    if (!matchesRule(rule.match, alert)) continue;
    selected.push(rule);
    if (!rule.continue) break;
  }
  return selected;
}

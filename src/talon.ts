/**
 * Falco Talon compatibility: a Talon rules file (a YAML sequence of `- action:` and `- rule:`
 * blocks) becomes a drop policy object, which policy.ts then validates and builds like any other.
 *
 * Semantics read from falcosecurity/falco-talon (commit 19d3add6), never guessed:
 * - internal/rules/rules.go: loading (`extractActionsRules`, `ParseRules`), validation
 *   (`isValid`) and matching (`CompareRule` and its `compare*` helpers);
 * - internal/rules/priority.go: priority names and ranks;
 * - actionners/actionners.go: how matched rules run their actions (`runAction` and the loop over
 *   triggered rules);
 * - internal/events/events.go: how an event is decoded (`source` defaults to syscall);
 * - actionners/kubernetes/{terminate,label,annotation,networkpolicy}/*.go: each actionner's
 *   parameters and its default `Continue`.
 * Where Talon silently ignores or mis-parses something (an unknown key, a condition its parser
 * drops), drop reports it instead: a response policy must never quietly match more than it says.
 */
import type { Document, LineCounter } from 'yaml';
import { PolicyError, ProblemList } from './policy-problems.ts';
import { checkDropParameters, isRecord, mergeParameters, segment, talonActionners, type Params } from './talon-actionners.ts';

// rules.go `isValid`: these patterns, all case-insensitive. A priority may name no level at all
// (">=" or ""): its PriorityNumber is 0 and `comparePriority` then lets every event through.
const priorityPattern = /^(<|>)?(=)?(debug|informational|notice|warning|error|critical|alert|emergency|)$/i;
const tagPattern = /^[a-z_0-9.]*[a-z0-9]$/i;
// rules.go `outputFieldKeyCheckRegex` is this without the value part: a key, then `=` or `!=`.
const fieldConditionPattern = /^([a-z0-9.[\]]*)(!?=)(.*)$/is;

/** Talon's booleans are strings ("true"/"false") or YAML booleans; anything else is an error there too. */
function flag(value: unknown, at: string, problems: ProblemList): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  problems.add(at, 'can be true or false only');
  return undefined;
}

function checkKeys(block: Params, at: string, known: readonly string[], problems: ProblemList): void {
  for (const key of Object.keys(block)) {
    if (!known.includes(key)) problems.add(`${at}/${segment(key)}`, `unknown key "${key}" (Talon would ignore it; drop reports it)`);
  }
}

const unsupportedKeys: Readonly<Record<string, string>> = {
  notifiers: 'drop records each response as a Kubernetes Event on the pod and a log line',
  output: 'no mapped actionner produces an artifact to store',
  additional_contexts: 'no mapped actionner uses a context',
};

/** Keys of Talon features drop has no use for: harmless when empty, an error when they ask for something. */
function checkUnsupported(block: Params, at: string, keys: readonly string[], problems: ProblemList): void {
  for (const key of keys) {
    const reason = unsupportedKeys[key];
    const value = block[key];
    const empty = value === undefined || value === null || (Array.isArray(value) && value.length === 0);
    if (!empty) problems.add(`${at}/${key}`, `${key} is not supported: ${reason}`);
  }
}

function name(value: unknown, at: string, what: string, problems: ProblemList): string | undefined {
  if (typeof value === 'string' && value.trim() !== '') return value;
  problems.add(at, `${what} must be a non-empty name`);
  return undefined;
}

function stringList(value: unknown, at: string, problems: ProblemList): { text: string; at: string }[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.add(at, 'must be a list');
    return [];
  }
  return value.flatMap((item: unknown, i) => {
    if (typeof item === 'string') return [{ text: item, at: `${at}/${i}` }];
    problems.add(`${at}/${i}`, 'must be a string');
    return [];
  });
}

interface ActionBlock {
  readonly at: string;
  readonly actionner: string | undefined;
  readonly continue: string | undefined;
  readonly ignoreErrors: string | undefined;
  readonly parameters: Params;
}

const actionKeys = ['action', 'description', 'actionner', 'continue', 'ignore_errors', 'parameters', 'output', 'additional_contexts'];

/** The settings of an action, as a block or as a rule's step; `continue` etc. as Talon's strings. */
function readAction(block: Params, at: string, problems: ProblemList): ActionBlock {
  checkKeys(block, at, actionKeys, problems);
  checkUnsupported(block, at, ['output', 'additional_contexts'], problems);
  const text = (value: boolean | undefined): string | undefined => (value === undefined ? undefined : String(value));
  let actionner: string | undefined;
  if (block.actionner !== undefined && block.actionner !== null) {
    actionner = typeof block.actionner === 'string' ? block.actionner : String(block.actionner);
    if (!talonActionners.has(actionner)) {
      problems.add(`${at}/actionner`, `actionner "${actionner}" is not supported by drop (supported: ${[...talonActionners.keys()].join(', ')})`);
    }
  }
  const parameters = block.parameters ?? {};
  if (!isRecord(parameters)) problems.add(`${at}/parameters`, 'must be a map');
  return {
    at,
    actionner,
    continue: text(flag(block.continue, `${at}/continue`, problems)),
    ignoreErrors: text(flag(block.ignore_errors, `${at}/ignore_errors`, problems)),
    parameters: isRecord(parameters) ? parameters : {},
  };
}

/** A priority as drop writes it, or undefined for none (Talon's empty level). */
function convertPriority(value: unknown, at: string, problems: ProblemList): string | undefined {
  if (value === undefined || value === null) return undefined;
  const found = typeof value === 'string' ? priorityPattern.exec(value) : null;
  if (!found) {
    problems.add(at, `incorrect priority ${JSON.stringify(value)}: a Falco priority with an optional <, <=, >, >= or = before it, no spaces (e.g. ">=Critical")`);
    return undefined;
  }
  // Without a comparator, or with "=", the event's priority must be exactly this one (rules.go
  // `comparePriority`, its default case).
  return found[3] === '' ? undefined : (value as string);
}

/** Talon's `tags`: each item is a comma-separated list of tags that must all be present; any item may hold. */
function convertTags(value: unknown, at: string, problems: ProblemList): string[][] {
  return stringList(value, at, problems).map((item) => {
    const tags = item.text.replace(/ /g, '').split(',');
    for (const tag of tags) if (!tagPattern.test(tag)) problems.add(item.at, `incorrect tag ${JSON.stringify(tag)}`);
    return tags;
  });
}

type FieldCondition = { field: string; equals: string } | { field: string; notEquals: string };

/**
 * Talon's `output_fields`: each item is a comma-separated list of `key=value` / `key!=value`
 * conditions that must all hold; any item may hold. Values are compared as text, with `"`
 * removed. A missing field fails `=` and passes `!=` (rules.go `compareOutputFields` counts only
 * the fields present), as drop's equals and notEquals do. Talon splits on `,` and `=`, so a
 * value with `=` (or `!` after `!=`) is dropped or mis-read by it: drop rejects those.
 */
function convertOutputFields(value: unknown, at: string, problems: ProblemList): FieldCondition[][] {
  return stringList(value, at, problems).map((item) =>
    item.text
      .replace(/, /g, ',')
      .split(',')
      .flatMap((piece): FieldCondition[] => {
        const found = fieldConditionPattern.exec(piece);
        if (!found) {
          problems.add(item.at, `incorrect output field condition ${JSON.stringify(piece)}: key=value or key!=value, comma-separated`);
          return [];
        }
        const [, field, op, raw] = found as unknown as [string, string, string, string];
        if (field === '') problems.add(item.at, `${JSON.stringify(piece)} names no field`);
        else if (raw.includes('=') || (op === '!=' && raw.includes('!'))) {
          problems.add(item.at, `${JSON.stringify(piece)}: Talon cannot read a value containing "=" (or "!" after "!="); it would drop or change this condition`);
        } else {
          const text = raw.replace(/"/g, '');
          return [op === '=' ? { field, equals: text } : { field, notEquals: text }];
        }
        return [];
      }),
  );
}

/** Talon's match as drop's: its OR-of-AND tags and output fields become `anyOf` alternatives. */
function convertMatch(match: unknown, at: string, problems: ProblemList): Params {
  if (match === undefined || match === null) return {};
  if (!isRecord(match)) {
    problems.add(at, 'must be a map');
    return {};
  }
  checkKeys(match, at, ['rules', 'priority', 'tags', 'output_fields', 'source'], problems);
  const rules = stringList(match.rules, `${at}/rules`, problems).flatMap((item) => {
    // Talon compares names exactly; drop reads * and ? as globs, so such a name would match more.
    if (item.text === '' || /[*?]/.test(item.text)) {
      problems.add(item.at, `${JSON.stringify(item.text)}: Talon matches rule names exactly; drop cannot express an empty name or one with * or ? exactly`);
      return [];
    }
    return [item.text];
  });
  const priority = convertPriority(match.priority, `${at}/priority`, problems);
  let source: string | undefined;
  if (match.source !== undefined && match.source !== null && match.source !== '') {
    if (typeof match.source === 'string') source = match.source;
    else problems.add(`${at}/source`, 'must be a string');
  }
  const tagAlternatives = convertTags(match.tags, `${at}/tags`, problems).map((allOf) => ({ tags: { allOf } }));
  const fieldAlternatives = convertOutputFields(match.output_fields, `${at}/output_fields`, problems).map((outputFields) => ({ outputFields }));
  const alternatives = (tagAlternatives.length > 0 ? tagAlternatives : [{}]).flatMap((tags) =>
    (fieldAlternatives.length > 0 ? fieldAlternatives : [{}]).map((fields) => ({ ...tags, ...fields })),
  );
  return {
    ...(rules.length > 0 ? { rules } : {}),
    ...(priority !== undefined ? { priority } : {}),
    ...(source !== undefined ? { source } : {}),
    ...(alternatives.length === 1 ? alternatives[0] : { anyOf: alternatives }),
  };
}

interface Step {
  readonly action: string;
  readonly parameters: Params;
  readonly continueOnError: boolean;
}

/** One of a rule's actions, merged with its `- action:` block as Talon does; undefined when broken. */
function convertStep(step: unknown, at: string, blocks: ReadonlyMap<string, ActionBlock>, problems: ProblemList): { step: Step; last: boolean } | undefined {
  if (!isRecord(step)) {
    problems.add(at, 'must be a map with an action name');
    return undefined;
  }
  const actionName = name(step.action, `${at}/action`, 'action', problems);
  const own = readAction(step, at, problems);
  if (actionName === undefined) return undefined;
  const block = blocks.get(actionName);
  // rules.go `ParseRules`: a setting given on the rule's step wins over the block's.
  const actionnerName = own.actionner ?? block?.actionner;
  if (actionnerName === undefined) {
    problems.add(`${at}/action`, `missing actionner: no "- action: ${actionName}" block names one, nor does this step`);
    return undefined;
  }
  const actionner = talonActionners.get(actionnerName);
  if (!actionner) return undefined; // reported where the actionner is written
  const parameters = mergeParameters(actionnerName, { parameters: own.parameters, at: `${at}/parameters` }, { parameters: block?.parameters ?? {}, at: `${block?.at}/parameters` }, problems);
  const mapped = actionner.map(parameters, problems);
  checkDropParameters(actionner.action, mapped, problems);
  const continues = own.continue ?? block?.continue;
  const ignoreErrors = own.ignoreErrors ?? block?.ignoreErrors;
  return {
    step: { action: actionner.action, parameters: mapped.parameters ?? {}, continueOnError: ignoreErrors === 'true' },
    // actionners.go: after an action, stop unless its continue is "true", or unset and its actionner continues.
    last: continues === 'false' || (continues === undefined && !actionner.continues),
  };
}

const ruleKeys = ['rule', 'description', 'match', 'actions', 'continue', 'dry_run', 'notifiers'];

function convertRule(block: Params, at: string, ruleName: string | undefined, blocks: ReadonlyMap<string, ActionBlock>, problems: ProblemList): Params {
  checkKeys(block, at, ruleKeys, problems);
  checkUnsupported(block, at, ['notifiers'], problems);
  const match = convertMatch(block.match, `${at}/match`, problems);
  const given = Array.isArray(block.actions) ? block.actions : [];
  if (given.length === 0) problems.add(block.actions === undefined ? `${at}/rule` : `${at}/actions`, 'no action specified: a rule needs a list of at least one action');
  const converted = given.map((step: unknown, i) => convertStep(step, `${at}/actions/${i}`, blocks, problems));
  // Every action is checked, but the chain ends after the first that does not continue.
  const end = converted.findIndex((c) => c?.last);
  const steps = (end === -1 ? converted : converted.slice(0, end + 1)).flatMap((c) => (c ? [c.step] : []));
  // actionners.go: after a matched rule's actions, later rules run unless this one's continue is
  // "false". Unset means continue, which is drop's default too.
  const continues = flag(block.continue, `${at}/continue`, problems) ?? true;
  const dryRun = flag(block.dry_run, `${at}/dry_run`, problems) ?? false;
  return {
    name: ruleName,
    ...(typeof block.description === 'string' ? { description: block.description } : {}),
    match,
    actions: steps,
    dryRun,
    continue: continues,
  };
}

/** The names given to blocks of one kind; a second block of a name is an error (Talon merges override files). */
function claim(names: Map<string, string>, value: string, at: string, what: string, problems: ProblemList): boolean {
  const earlier = names.get(value);
  if (earlier === undefined) names.set(value, at);
  else problems.add(at, `${what} "${value}" is defined twice (also ${earlier}): Talon merges same-named blocks from override files; merge them into one`);
  return earlier === undefined;
}

/**
 * Converts a parsed Talon rules file (its top level a YAML sequence) into drop's policy object
 * format, ready for `policyFromObject`. Throws PolicyError listing every problem with its line
 * and column in the Talon file: an unsupported actionner, a bad priority, tag or output field
 * condition, an unknown key, a parameter drop's action would reject.
 */
export function convertTalonRules(document: Document, lines: LineCounter, origin: string): unknown {
  const problems = new ProblemList(document, lines);
  const items = document.toJS() as unknown[];
  const actionNames = new Map<string, string>();
  const ruleNames = new Map<string, string>();
  const blocks = new Map<string, ActionBlock>();
  const rules: { block: Params; at: string; name: string | undefined }[] = [];
  items.forEach((item, i) => {
    const at = `/${i}`;
    if (!isRecord(item) || ('action' in item) === ('rule' in item)) {
      problems.add(at, 'each item of a Talon rules file is either an "- action:" block or a "- rule:" block');
      return;
    }
    if ('action' in item) {
      const actionName = name(item.action, `${at}/action`, 'action', problems);
      const block = readAction(item, at, problems);
      if (actionName !== undefined && claim(actionNames, actionName, `${at}/action`, 'action', problems)) blocks.set(actionName, block);
      return;
    }
    const ruleName = name(item.rule, `${at}/rule`, 'rule', problems);
    if (ruleName !== undefined) claim(ruleNames, ruleName, `${at}/rule`, 'rule', problems);
    rules.push({ block: item, at, name: ruleName });
  });
  // Rules are read after every action block, so a rule may use a block written below it.
  const converted = rules.map((r) => convertRule(r.block, r.at, r.name, blocks, problems));
  if (problems.problems.length > 0) throw new PolicyError(origin, problems.sorted());
  return { rules: converted };
}

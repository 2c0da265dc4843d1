/**
 * Falco Talon compatibility: a Talon rules file (a YAML sequence of `- action:` and `- rule:`
 * blocks) becomes a drop policy object, which policy.ts then validates and builds like any other.
 *
 * Semantics read from falcosecurity/falco-talon (commit 19d3add6), never guessed:
 * - internal/rules/rules.go: loading several files and merging same-named blocks
 *   (`extractActionsRules`), a rule's actions merged with their `- action:` blocks
 *   (`ParseRules`), validation
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
import { PolicyError, ProblemList, formatProblem, type PolicyProblem, type ProblemSink } from './policy-problems.ts';
import {
  checkDropParameters,
  isRecord,
  mergeParameters,
  overrideParameters,
  placeParameters,
  segment,
  talonActionners,
  talonContinues,
  type ActionSink,
  type Params,
  type PlacedParameters,
} from './talon-actionners.ts';

// rules.go `isValid`: these patterns, all case-insensitive. A priority may name no level at all
// (">=" or ""): its PriorityNumber is 0 and `comparePriority` then lets every event through.
const priorityPattern = /^(<|>)?(=)?(debug|informational|notice|warning|error|critical|alert|emergency|)$/i;
const tagPattern = /^[a-z_0-9.]*[a-z0-9]$/i;
// rules.go `outputFieldKeyCheckRegex` is this without the value part: a key, then `=` or `!=`.
const fieldConditionPattern = /^([a-z0-9.[\]]*)(!?=)(.*)$/is;

/** Talon's booleans are strings ("true"/"false") or YAML booleans; anything else is an error there too. */
function flag(value: unknown, at: string, problems: ProblemSink): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  problems.add(at, 'can be true or false only');
  return undefined;
}

function checkKeys(block: Params, at: string, known: readonly string[], problems: ProblemSink): void {
  for (const key of Object.keys(block)) {
    if (!known.includes(key)) problems.add(`${at}/${segment(key)}`, `unknown key "${key}" (Talon would ignore it; drop reports it)`);
  }
}

function name(value: unknown, at: string, what: string, problems: ProblemSink): string | undefined {
  if (typeof value === 'string' && value.trim() !== '') return value;
  problems.add(at, `${what} must be a non-empty name`);
  return undefined;
}

function stringList(value: unknown, at: string, problems: ProblemSink): { text: string; at: string }[] {
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

/** A priority as drop writes it, or undefined for none (Talon's empty level). */
function convertPriority(value: unknown, at: string, problems: ProblemSink): string | undefined {
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
function convertTags(value: unknown, at: string, problems: ProblemSink): string[][] {
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
function convertOutputFields(value: unknown, at: string, problems: ProblemSink): FieldCondition[][] {
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

/** What a rule's `match` says, from one `- rule:` block (a rule overridden by name has several). */
interface MatchPiece {
  readonly rules: string[];
  /** Undefined: any priority. */
  readonly priority: string | undefined;
  /** The block has a `priority` key (an empty one included). */
  readonly priorityGiven: boolean;
  readonly source: string | undefined;
  readonly sourceGiven: boolean;
  readonly tags: string[][];
  readonly fields: FieldCondition[][];
}

function readMatch(match: unknown, at: string, problems: ProblemSink): MatchPiece {
  const none: MatchPiece = { rules: [], priority: undefined, priorityGiven: false, source: undefined, sourceGiven: false, tags: [], fields: [] };
  if (match === undefined || match === null) return none;
  if (!isRecord(match)) {
    problems.add(at, 'must be a map');
    return none;
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
  let source: string | undefined;
  if (match.source !== undefined && match.source !== null && match.source !== '') {
    if (typeof match.source === 'string') source = match.source;
    else problems.add(`${at}/source`, 'must be a string');
  }
  return {
    rules,
    priority: convertPriority(match.priority, `${at}/priority`, problems),
    priorityGiven: match.priority !== undefined && match.priority !== null,
    source,
    sourceGiven: match.source !== undefined && match.source !== null,
    tags: convertTags(match.tags, `${at}/tags`, problems),
    fields: convertOutputFields(match.output_fields, `${at}/output_fields`, problems),
  };
}

/**
 * A rule's match from its blocks in load order, merged as rules.go `extractActionsRules` merges
 * a later same-named rule into the first: rules, tags and output fields are appended (each a
 * further alternative), priority and source are replaced by the later block's. A later block
 * that leaves priority or source out would, in Talon, clear the one given before: a wider match
 * than either block says, so drop refuses it. Talon's OR-of-AND tags and output fields become
 * drop's `anyOf` alternatives.
 */
function convertMatch(pieces: readonly { match: MatchPiece; at: string }[], ruleName: string, problems: Files): Params {
  let priority: { value: string | undefined; at: string } | undefined;
  let source: { value: string | undefined; at: string } | undefined;
  pieces.forEach(({ match, at }, i) => {
    for (const [key, given, value, earlier] of [
      ['priority', match.priorityGiven, match.priority, priority],
      ['source', match.sourceGiven, match.source, source],
    ] as const) {
      if (i > 0 && !given && earlier?.value !== undefined) {
        problems.add(`${at}/rule`, `this block overrides rule "${ruleName}" without a ${key}: Talon would replace the ${key} ${JSON.stringify(earlier.value)} (${problems.where(earlier.at)}) with none, widening the match; repeat it here`);
      }
    }
    priority = { value: match.priority, at: `${at}/match/priority` };
    source = { value: match.source, at: `${at}/match/source` };
  });
  const rules = pieces.flatMap((p) => p.match.rules);
  const tagAlternatives = pieces.flatMap((p) => p.match.tags).map((allOf) => ({ tags: { allOf } }));
  const fieldAlternatives = pieces.flatMap((p) => p.match.fields).map((outputFields) => ({ outputFields }));
  const alternatives = (tagAlternatives.length > 0 ? tagAlternatives : [{}]).flatMap((tags) =>
    (fieldAlternatives.length > 0 ? fieldAlternatives : [{}]).map((fields) => ({ ...tags, ...fields })),
  );
  return {
    ...(rules.length > 0 ? { rules } : {}),
    ...(priority?.value !== undefined ? { priority: priority.value } : {}),
    ...(source?.value !== undefined ? { source: source.value } : {}),
    ...(alternatives.length === 1 ? alternatives[0] : { anyOf: alternatives }),
  };
}

/** Every file's problems, each at its place; an `at` is `<file index>:<JSON pointer>`. */
class Files implements ProblemSink {
  constructor(
    private readonly lists: readonly ProblemList[],
    private readonly names: readonly string[],
  ) {}

  private split(at: string): [number, string] {
    const colon = at.indexOf(':');
    return [Number(at.slice(0, colon)), at.slice(colon + 1)];
  }

  add(at: string, message: string): void {
    const [index, path] = this.split(at);
    this.lists[index]!.add(path, message);
  }

  place(at: string, message: string): PolicyProblem {
    const [index, path] = this.split(at);
    return this.lists[index]!.place(path, message);
  }

  /** `file:line:column` of a place. */
  where(at: string): string {
    const { line, column } = this.place(at, '');
    return `${this.names[this.split(at)[0]]}:${line}:${column}`;
  }

  all(): PolicyProblem[] {
    return this.lists.flatMap((list) => list.sorted());
  }
}

/** One action's problems, held until it is known whether the action is kept, skipped or in error. */
class ActionProblems implements ActionSink {
  readonly errors: [string, string][] = [];
  readonly unsupportedFeatures: [string, string][] = [];
  add(at: string, message: string): void {
    this.errors.push([at, message]);
  }
  unsupported(at: string, message: string): void {
    this.unsupportedFeatures.push([at, message]);
  }
}

const actionKeys = ['action', 'description', 'actionner', 'continue', 'ignore_errors', 'parameters', 'output', 'additional_contexts'];

/** What one `- action:` block, or one of a rule's actions, says; `at`s are where each is written. */
interface ActionPiece {
  readonly actionner: { readonly value: string; readonly at: string } | undefined;
  readonly continue: string | undefined;
  readonly ignoreErrors: string | undefined;
  readonly parameters: PlacedParameters;
  /** Where `output` and `additional_contexts` ask for something (Talon features drop has no use for). */
  readonly outputs: readonly string[];
  readonly contexts: readonly string[];
}

const nonEmpty = (value: unknown): boolean => value !== undefined && value !== null && !(Array.isArray(value) && value.length === 0) && !(isRecord(value) && Object.keys(value).length === 0);

function readAction(block: Params, at: string, problems: ProblemSink): ActionPiece {
  checkKeys(block, at, actionKeys, problems);
  const text = (value: boolean | undefined): string | undefined => (value === undefined ? undefined : String(value));
  const actionner = block.actionner === undefined || block.actionner === null || block.actionner === '' ? undefined : { value: String(block.actionner), at: `${at}/actionner` };
  const parameters = block.parameters ?? {};
  if (!isRecord(parameters)) problems.add(`${at}/parameters`, 'must be a map');
  return {
    actionner,
    continue: text(flag(block.continue, `${at}/continue`, problems)),
    ignoreErrors: text(flag(block.ignore_errors, `${at}/ignore_errors`, problems)),
    parameters: placeParameters(isRecord(parameters) ? parameters : {}, `${at}/parameters`),
    outputs: nonEmpty(block.output) ? [`${at}/output`] : [],
    contexts: nonEmpty(block.additional_contexts) ? [`${at}/additional_contexts`] : [],
  };
}

/**
 * rules.go `extractActionsRules`: a later `- action:` block of the same name (in the same file
 * or a later one) overrides the first: its actionner, continue and ignore_errors replace the
 * first's when set, its parameters are merged in (scalars replaced, lists appended, map entries
 * replaced), its additional_contexts appended.
 */
function overrideAction(earlier: ActionPiece, later: ActionPiece, problems: ProblemSink): ActionPiece {
  return {
    actionner: later.actionner ?? earlier.actionner,
    continue: later.continue ?? earlier.continue,
    ignoreErrors: later.ignoreErrors ?? earlier.ignoreErrors,
    parameters: overrideParameters(earlier.parameters, later.parameters, problems),
    outputs: [...earlier.outputs, ...later.outputs],
    contexts: [...earlier.contexts, ...later.contexts],
  };
}

interface Unsupported {
  readonly field: 'actionner' | 'output' | 'additional_contexts';
  readonly at: string;
  readonly message: string;
}

/** The Talon features an action asks for that drop does not have. */
function unsupportedFeatures(piece: ActionPiece): Unsupported[] {
  const found: Unsupported[] = [];
  if (piece.actionner && !talonActionners.has(piece.actionner.value)) {
    found.push({ field: 'actionner', at: piece.actionner.at, message: `actionner "${piece.actionner.value}" is not supported by drop (supported: ${[...talonActionners.keys()].join(', ')})` });
  }
  for (const at of piece.outputs) found.push({ field: 'output', at, message: 'output is not supported: no mapped actionner produces an artifact to store' });
  for (const at of piece.contexts) found.push({ field: 'additional_contexts', at, message: 'additional_contexts is not supported: no mapped actionner uses a context' });
  return found;
}

interface ActionBlock {
  readonly piece: ActionPiece;
  readonly unsupported: readonly Unsupported[];
}

interface Step {
  readonly action: string;
  readonly parameters: Params;
  readonly continueOnError: boolean;
}

export type TalonUnsupported = 'error' | 'skip';

interface Context {
  readonly files: Files;
  readonly blocks: ReadonlyMap<string, ActionBlock>;
  readonly mode: TalonUnsupported;
  readonly skipped: PolicyProblem[];
  readonly used: Set<string>;
}

/**
 * One of a rule's actions, merged with its `- action:` block as Talon does. `step` is undefined
 * when the action is broken or skipped; `last` says whether the chain ends after it (a skipped
 * action that would have ended it still does).
 */
function convertStep(item: unknown, at: string, ruleName: string, context: Context): { step: Step | undefined; last: boolean } {
  const { files, blocks, mode } = context;
  if (!isRecord(item)) {
    files.add(at, 'must be a map with an action name');
    return { step: undefined, last: false };
  }
  const problems = new ActionProblems();
  const actionName = name(item.action, `${at}/action`, 'action', problems);
  const own = readAction(item, at, problems);
  const block = actionName === undefined ? undefined : blocks.get(actionName);
  if (actionName !== undefined) context.used.add(actionName);
  // rules.go `ParseRules`: a setting given on the rule's step wins over the block's.
  const actionner = own.actionner ?? block?.piece.actionner;
  if (actionName !== undefined && actionner === undefined) problems.add(`${at}/action`, `missing actionner: no "- action: ${actionName}" block names one, nor does this step`);
  const features = unsupportedFeatures(own);
  // The block's are reported where the block is written; a step naming its own actionner replaces the block's.
  const inherited = (block?.unsupported ?? []).filter((u) => !(u.field === 'actionner' && own.actionner));
  const actionnerSupport = actionner === undefined ? undefined : talonActionners.get(actionner.value);
  let step: Step | undefined;
  if (actionnerSupport && features.length === 0 && inherited.length === 0) {
    const parameters = mergeParameters(actionner!.value, own.parameters, block?.piece.parameters ?? placeParameters({}, `${at}/parameters`), problems);
    const mapped = actionnerSupport.map(parameters, problems);
    checkDropParameters(actionnerSupport.action, mapped, problems);
    const ignoreErrors = own.ignoreErrors ?? block?.piece.ignoreErrors;
    step = { action: actionnerSupport.action, parameters: mapped.parameters ?? {}, continueOnError: ignoreErrors === 'true' };
  }
  const continues = own.continue ?? block?.piece.continue;
  // actionners.go: after an action, stop unless its continue is "true", or unset and its actionner continues.
  const last = continues === 'false' || (continues === undefined && !(actionner !== undefined && talonContinues.get(actionner.value) === true));
  const reasons = [...features, ...problems.unsupportedFeatures.map(([where, message]) => ({ at: where, message }))];
  if (problems.errors.length > 0 || (mode === 'error' && reasons.length > 0)) {
    // With skip, an unsupported feature is no error: only the action's mistakes are reported.
    const report = mode === 'error' ? [...problems.errors, ...reasons.map((r) => [r.at, r.message] as const)] : problems.errors;
    for (const [where, message] of report) files.add(where, message);
    return { step: undefined, last };
  }
  const all = [...inherited, ...reasons];
  if (all.length > 0) {
    if (mode === 'skip') {
      const why = all.map((r) => `${r.message} (${files.where(r.at)})`).join('; ');
      context.skipped.push(files.place(at, `rule "${ruleName}": action "${actionName}" skipped: ${why}`));
    }
    return { step: undefined, last };
  }
  return { step, last };
}

const ruleKeys = ['rule', 'description', 'match', 'actions', 'continue', 'dry_run', 'notifiers'];

/**
 * A rule from its blocks in load order (rules.go `extractActionsRules`: a later same-named rule
 * appends its match lists and actions, replaces priority and source, and its continue, dry_run
 * and description when set). Undefined when skipping left it no action.
 */
function convertRule(ruleName: string, pieces: readonly { item: Params; at: string }[], context: Context): Params | undefined {
  const { files } = context;
  let description: string | undefined;
  let continues: boolean | undefined;
  let dryRun: boolean | undefined;
  const given: { item: unknown; at: string }[] = [];
  const matches: { match: MatchPiece; at: string }[] = [];
  for (const { item, at } of pieces) {
    checkKeys(item, at, ruleKeys, files);
    if (nonEmpty(item.notifiers)) files.add(`${at}/notifiers`, 'notifiers is not supported: drop records each response as a Kubernetes Event on the pod and a log line');
    matches.push({ match: readMatch(item.match, `${at}/match`, files), at });
    if (typeof item.description === 'string' && item.description !== '') description = item.description;
    continues = flag(item.continue, `${at}/continue`, files) ?? continues;
    dryRun = flag(item.dry_run, `${at}/dry_run`, files) ?? dryRun;
    if (Array.isArray(item.actions)) item.actions.forEach((step: unknown, i) => given.push({ item: step, at: `${at}/actions/${i}` }));
  }
  const first = pieces[0]!;
  const match = convertMatch(matches, ruleName, files);
  if (given.length === 0) files.add(first.item.actions === undefined ? `${first.at}/rule` : `${first.at}/actions`, 'no action specified: a rule needs a list of at least one action');
  const converted = given.map((g) => convertStep(g.item, g.at, ruleName, context));
  // Every action is checked, but the chain ends after the first that does not continue.
  const end = converted.findIndex((c) => c.last);
  const steps = (end === -1 ? converted : converted.slice(0, end + 1)).flatMap((c) => (c.step ? [c.step] : []));
  if (steps.length === 0 && given.length > 0 && converted.some((c) => c.step === undefined)) {
    if (context.mode === 'skip') context.skipped.push(files.place(`${first.at}/rule`, `rule "${ruleName}" dropped: none of its actions is left to run`));
    return undefined;
  }
  return {
    name: ruleName,
    ...(description !== undefined ? { description } : {}),
    match,
    actions: steps,
    // actionners.go: after a matched rule's actions, later rules run unless this one's continue
    // is "false". Unset means continue, which is drop's default too.
    dryRun: dryRun ?? false,
    continue: continues ?? true,
  };
}

/** One Talon rules file, parsed; its top level a YAML sequence (or nothing). */
export interface TalonSource {
  readonly file: string;
  readonly document: Document;
  readonly lines: LineCounter;
}

export interface TalonConversion {
  /** drop's policy object, ready for `policyFromObject`. */
  readonly policy: { readonly rules: readonly Params[] };
  /** What DROP_TALON_UNSUPPORTED=skip left out: each skipped action and dropped rule, at its place. */
  readonly skipped: readonly PolicyProblem[];
}

/** Blocks by name, in the order each name first appears; a block without a name under "" (an error, reported). */
function groupByName(groups: Map<string, { item: Params; at: string }[]>, key: string, item: Params, at: string, files: Files): void {
  const value = name(item[key], `${at}/${key}`, key, files) ?? '';
  const group = groups.get(value);
  if (group) group.push({ item, at });
  else groups.set(value, [{ item, at }]);
}

/**
 * Converts Talon rules files, merged in load order as Talon merges them, into drop's policy
 * object format. Throws PolicyError listing every problem with its file, line and column: an
 * unsupported actionner or field (unless `unsupported` is "skip": then the actions asking for
 * one are left out and listed in `skipped`), a bad priority, tag or output field condition, an
 * unknown key, a parameter drop's action would reject, an override that would widen a match,
 * and a policy left with no rule.
 */
export function convertTalonFiles(sources: readonly TalonSource[], origin: string, unsupported: TalonUnsupported = 'error'): TalonConversion {
  const files = new Files(
    sources.map((s) => new ProblemList(s.document, s.lines, s.file === origin ? undefined : s.file)),
    sources.map((s) => s.file),
  );
  const actionGroups = new Map<string, { item: Params; at: string }[]>();
  const ruleGroups = new Map<string, { item: Params; at: string }[]>();
  sources.forEach((source, f) => {
    const items = (source.document.toJS() as unknown[] | null) ?? [];
    items.forEach((item, i) => {
      const at = `${f}:/${i}`;
      if (!isRecord(item) || ('action' in item) === ('rule' in item)) files.add(at, 'each item of a Talon rules file is either an "- action:" block or a "- rule:" block');
      else if ('action' in item) groupByName(actionGroups, 'action', item, at, files);
      else groupByName(ruleGroups, 'rule', item, at, files);
    });
  });
  const skipped: PolicyProblem[] = [];
  const blocks = new Map<string, ActionBlock & { at: string }>();
  for (const [actionName, group] of actionGroups) {
    if (actionName === '') continue;
    const pieces = group.map(({ item, at }) => readAction(item, at, files));
    const piece = pieces.reduce((earlier, later) => overrideAction(earlier, later, files));
    const found = unsupportedFeatures(piece);
    if (unsupported === 'error') for (const u of found) files.add(u.at, u.message);
    blocks.set(actionName, { piece, unsupported: found, at: group[0]!.at });
  }
  const context: Context = { files, blocks, mode: unsupported, skipped, used: new Set() };
  // Rules are read after every action block, so a rule may use a block written below it.
  const rules = [...ruleGroups].flatMap(([ruleName, pieces]): Params[] => {
    // Rules without a name are still read, each alone, so that all their problems are listed.
    if (ruleName === '') {
      for (const piece of pieces) convertRule('', [piece], context);
      return [];
    }
    const rule = convertRule(ruleName, pieces, context);
    return rule ? [rule] : [];
  });
  if (unsupported === 'skip') {
    for (const [actionName, block] of blocks) {
      if (block.unsupported.length > 0 && !context.used.has(actionName)) {
        const why = block.unsupported.map((u) => `${u.message} (${files.where(u.at)})`).join('; ');
        skipped.push(files.place(`${block.at}/action`, `action "${actionName}" (used by no rule) skipped: ${why}`));
      }
    }
  }
  const problems = files.all();
  if (problems.length === 0 && rules.length === 0) {
    const why =
      ruleGroups.size === 0
        ? `no response rule: ${sources.length === 1 ? 'the file holds' : 'the files hold'} ${actionGroups.size} "- action:" block${actionGroups.size === 1 ? '' : 's'} and no "- rule:" block (a file of overrides needs the rules file it overrides, listed before it)`
        : `no response rule left: every rule's actions were skipped as unsupported (DROP_TALON_UNSUPPORTED=skip), so drop would act on nothing`;
    throw new PolicyError(origin, [{ path: '', line: undefined, column: undefined, message: why }]);
  }
  if (problems.length > 0) throw new PolicyError(origin, problems);
  return { policy: { rules }, skipped };
}

/** One Talon rules file as drop's policy object (`convertTalonFiles` of that file alone). */
export function convertTalonRules(document: Document, lines: LineCounter, origin: string): unknown {
  return convertTalonFiles([{ file: origin, document, lines }], origin).policy;
}

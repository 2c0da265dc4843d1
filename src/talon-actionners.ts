/**
 * The Falco Talon actionners drop can stand in for (read from falcosecurity/falco-talon
 * actionners/kubernetes/{terminate,label,annotation,networkpolicy}/*.go at commit 19d3add6):
 * each maps its Talon parameters onto a drop action's, merged as Talon merges a rule's step
 * over its `- action:` block, and checked against the drop action's own schema with the
 * problems placed in the Talon file. talon.ts converts the rest of the file.
 */
import { describeSchemaError, type ProblemSink } from './policy-problems.ts';
import { parametersValidator } from './validators.ts';

export type Params = Record<string, unknown>;

export function isRecord(value: unknown): value is Params {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A JSON pointer segment: `~` and `/` escaped, so a label key like `a/b` stays one segment. */
export function segment(key: string | number): string {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * Where problems go while one action is converted: `add` for a mistake (always an error),
 * `unsupported` for a Talon feature drop does not have, which DROP_TALON_UNSUPPORTED=skip turns
 * into skipping the whole action.
 */
export interface ActionSink extends ProblemSink {
  unsupported(path: string, message: string): void;
}

interface Actionner {
  readonly action: string;
  /**
   * The actionner's own `Continue` (its .go file): after an action whose `continue` is not set,
   * the chain goes on only when this is true (actionners.go, the loop over a rule's actions).
   */
  readonly continues: boolean;
  /** Talon's parameters as drop's; problems are added where each Talon parameter is written. */
  map(parameters: MergedParameters, problems: ActionSink): Mapped;
}

interface Mapped {
  /** Undefined when the mapping already said why it cannot build them. */
  readonly parameters: Params | undefined;
  /** Where a JSON pointer into drop's parameters came from in the Talon file. */
  locate(pointer: string): string;
}

/** One parameter and where it, and each of its entries (list index, map key), is written. */
interface Placed {
  readonly value: unknown;
  readonly at: string;
  readonly entries: ReadonlyMap<string | number, string>;
}

/** An action's parameters, each with its place; `at` is where the `parameters` map is (or would be). */
export interface PlacedParameters {
  readonly at: string;
  readonly placed: ReadonlyMap<string, Placed>;
}

/** A `parameters` map as written at `at`. */
export function placeParameters(parameters: Params, at: string): PlacedParameters {
  const placed = new Map<string, Placed>();
  for (const [key, value] of Object.entries(parameters)) {
    const keyAt = `${at}/${segment(key)}`;
    const entries = new Map<string | number, string>();
    if (Array.isArray(value)) value.forEach((_, i) => entries.set(i, `${keyAt}/${i}`));
    else if (isRecord(value)) for (const entry of Object.keys(value)) entries.set(entry, `${keyAt}/${segment(entry)}`);
    placed.set(key, { value, at: keyAt, entries });
  }
  return { at, placed };
}

function kind(value: unknown): string {
  return Array.isArray(value) ? 'list' : isRecord(value) ? 'map' : typeof value;
}

const isGiven = (p: Placed | undefined): p is Placed => p !== undefined && p.value !== null && p.value !== undefined;

/**
 * Talon's merge of one `parameters` map into another (rules.go): a null value merged in is
 * skipped; a value of another kind than the one it meets is ignored by Talon (drop reports it,
 * `mismatch` saying where); lists are joined, the earlier-written list first; maps are merged,
 * the merged-in entries winning a shared key; a scalar merged in wins only when `scalarsWin`.
 */
function mergePlaced(
  target: PlacedParameters,
  incoming: PlacedParameters,
  options: { readonly scalarsWin: boolean; readonly incomingListFirst: boolean; mismatch(key: string, mine: Placed, theirs: Placed): void },
): PlacedParameters {
  const placed = new Map(target.placed);
  for (const [key, theirs] of incoming.placed) {
    if (!isGiven(theirs)) continue;
    const mine = target.placed.get(key);
    if (!isGiven(mine)) {
      placed.set(key, theirs);
      continue;
    }
    if (kind(mine.value) !== kind(theirs.value)) {
      options.mismatch(key, mine, theirs);
      continue;
    }
    if (Array.isArray(theirs.value)) {
      const [first, second] = options.incomingListFirst ? [theirs, mine] : [mine, theirs];
      const a = first.value as unknown[];
      const entries = new Map<string | number, string>();
      a.forEach((_, i) => entries.set(i, first.entries.get(i)!));
      (second.value as unknown[]).forEach((_, i) => entries.set(a.length + i, second.entries.get(i)!));
      placed.set(key, { value: [...a, ...(second.value as unknown[])], at: mine.at, entries });
    } else if (isRecord(theirs.value)) {
      placed.set(key, { value: { ...(mine.value as Params), ...theirs.value }, at: mine.at, entries: new Map([...mine.entries, ...theirs.entries]) });
    } else if (options.scalarsWin) placed.set(key, theirs);
  }
  return { at: target.at, placed };
}

/**
 * A later `- action:` block of the same name merged into an earlier one (rules.go
 * `extractActionsRules`): its scalars win, its lists are appended, its map entries win.
 */
export function overrideParameters(earlier: PlacedParameters, later: PlacedParameters, problems: ProblemSink): PlacedParameters {
  return mergePlaced(earlier, later, {
    scalarsWin: true,
    incomingListFirst: false,
    mismatch: (key, mine, theirs) =>
      problems.add(theirs.at, `is a ${kind(theirs.value)} here but a ${kind(mine.value)} in the earlier block of this action: Talon would ignore this value`),
  });
}

/**
 * An action's parameters after Talon's merge of the rule's step over the `- action:` block
 * (rules.go `ParseRules`): a scalar set on the step wins; lists are the block's items then the
 * step's; maps are merged, the block's entries winning on a shared key; a null in the block is
 * skipped; a key whose type differs between the two keeps the step's value (Talon logs an
 * error; drop reports it).
 */
interface MergedParameters {
  readonly actionner: string;
  readonly values: Readonly<Params>;
  /** Where a parameter, or one of its entries (map key, list index), is written. */
  locate(key: string, entry?: string | number): string;
}

export function mergeParameters(actionner: string, step: PlacedParameters, block: PlacedParameters, problems: ProblemSink): MergedParameters {
  const merged = mergePlaced(step, block, {
    scalarsWin: false,
    incomingListFirst: true,
    mismatch: (key, mine, theirs) => problems.add(mine.at, `is a ${kind(mine.value)} here but a ${kind(theirs.value)} in the action block: Talon would ignore the block's value`),
  });
  const values: Params = {};
  for (const [key, p] of merged.placed) values[key] = p.value;
  const locate = (key: string, entry?: string | number): string => {
    const p = merged.placed.get(key);
    if (entry === undefined) return p?.at ?? `${step.at}/${segment(key)}`;
    // Entries are only read from a merged list or map, which has each one's place.
    return p!.entries.get(entry)!;
  };
  return { actionner, values, locate };
}

/**
 * Reports parameters the actionner does not take, `unsupported` ones with why: the action is
 * unsupported (skippable). A `safety` one is a limit the action would run without: always an error.
 */
function checkParameterNames(
  parameters: MergedParameters,
  known: readonly string[],
  unsupported: Readonly<Record<string, string>>,
  problems: ActionSink,
  safety: Readonly<Record<string, string>> = {},
): void {
  for (const key of Object.keys(parameters.values)) {
    if (key in safety) problems.add(parameters.locate(key), `${key} is not supported: ${safety[key]}; a limit is never skipped, so this is an error even with DROP_TALON_UNSUPPORTED=skip`);
    else if (key in unsupported) problems.unsupported(parameters.locate(key), `${key} is not supported: ${unsupported[key]}`);
    else if (!known.includes(key)) problems.unsupported(parameters.locate(key), `unknown parameter "${key}" for ${parameters.actionner} (known: ${known.join(', ')})`);
  }
}

function boolean(parameters: MergedParameters, key: string, problems: ProblemSink): boolean {
  const value = parameters.values[key];
  if (value === undefined || value === null) return false;
  if (typeof value === 'boolean') return value;
  problems.add(parameters.locate(key), `${key} must be true or false`);
  return false;
}

/**
 * kubernetes:terminate (terminate.go). Its parameters decode into a Go struct, so an omitted one
 * is the zero value: `ignore_standalone_pods` is false and `grace_period_seconds` 0 when left
 * out (the `Parameters()` defaults only feed `talon actionners`' listing). drop differs on one:
 * an omitted grace period is drop's own default (DROP_GRACE_PERIOD_SECONDS, 1 s; the README
 * says why 0 is risky); an explicit one is kept.
 */
const terminate: Actionner = {
  action: 'delete',
  continues: false,
  map(parameters, problems) {
    const grace = 'grace_period_seconds';
    checkParameterNames(parameters, [grace, 'ignore_daemonsets', 'ignore_statefulsets', 'ignore_standalone_pods'], {}, problems, {
      min_healthy_replicas: "drop's delete does not count a ReplicaSet's healthy replicas (its guard rails are the cooldown and the destructive budget)",
    });
    const skipOwnerKinds = [
      ...(boolean(parameters, 'ignore_daemonsets', problems) ? ['DaemonSet'] : []),
      ...(boolean(parameters, 'ignore_statefulsets', problems) ? ['StatefulSet'] : []),
    ];
    const skipStandalone = boolean(parameters, 'ignore_standalone_pods', problems);
    const gracePeriodSeconds = parameters.values[grace];
    return {
      parameters: {
        ...(gracePeriodSeconds !== undefined && gracePeriodSeconds !== null ? { gracePeriodSeconds } : {}),
        ...(skipOwnerKinds.length > 0 ? { skipOwnerKinds } : {}),
        ...(skipStandalone ? { skipStandalone } : {}),
      },
      locate: () => parameters.locate(grace),
    };
  },
};

/**
 * kubernetes:label and kubernetes:annotation (label.go, annotation.go): a map of strings; an
 * empty value removes the key (drop: null). `level: node` acts on the node, which drop never does.
 */
function metadataActionner(action: 'label' | 'annotate', talonKey: 'labels' | 'annotations'): Actionner {
  return {
    action,
    continues: true,
    map(parameters, problems) {
      checkParameterNames(parameters, [talonKey, 'level'], {}, problems);
      const level = parameters.values.level;
      if (level !== undefined && level !== null && level !== 'pod') problems.unsupported(parameters.locate('level'), `level ${JSON.stringify(level)} is not supported: drop acts on the pod only (level: pod)`);
      const given = parameters.values[talonKey];
      const entries: Record<string, string | null> = {};
      if (!isRecord(given)) problems.add(parameters.locate(talonKey), `${talonKey} is required: a map of keys to string values`);
      else {
        for (const [key, value] of Object.entries(given)) {
          if (value === null || value === '') entries[key] = null;
          else if (typeof value === 'string') entries[key] = value;
          else problems.add(parameters.locate(talonKey, key), `the value of ${key} must be a string (quote it)`);
        }
      }
      return {
        parameters: isRecord(given) ? { [talonKey]: entries } : undefined,
        locate: (pointer) => {
          const key = pointer.split('/')[2];
          return key === undefined ? parameters.locate(talonKey) : parameters.locate(talonKey, key.replace(/~1/g, '/').replace(/~0/g, '~'));
        },
      };
    },
  };
}

/**
 * kubernetes:networkpolicy (networkpolicy.go): egress cut but for `allow_cidr` blocks (every
 * port). drop's isolate is stricter: it also cuts ingress, and selects the one pod rather than
 * every pod of its owner.
 */
const networkPolicy: Actionner = {
  action: 'isolate',
  continues: true,
  map(parameters, problems) {
    const cidrs = 'allow_cidr';
    checkParameterNames(parameters, [cidrs], {
      allow_namespaces: "drop's isolate allows egress by CIDR only (list the namespaces' pod CIDRs in allow_cidr)",
    }, problems);
    const given = parameters.values[cidrs] ?? [];
    const allowEgress: { cidr: string }[] = [];
    if (!Array.isArray(given)) problems.add(parameters.locate(cidrs), `${cidrs} must be a list of CIDRs`);
    else {
      given.forEach((cidr: unknown, i) => {
        if (typeof cidr === 'string') allowEgress.push({ cidr });
        else problems.add(parameters.locate(cidrs, i), `${JSON.stringify(cidr)} is not a CIDR`);
      });
    }
    return {
      parameters: allowEgress.length > 0 ? { allowEgress } : {},
      locate: (pointer) => {
        const index = pointer.split('/')[2];
        return index === undefined ? parameters.locate(cidrs) : parameters.locate(cidrs, Number(index));
      },
    };
  },
};

/** The Talon actionners drop can stand in for, and the drop action each becomes. */
export const talonActionners: ReadonlyMap<string, Actionner> = new Map([
  ['kubernetes:terminate', terminate],
  ['kubernetes:label', metadataActionner('label', 'labels')],
  ['kubernetes:annotation', metadataActionner('annotate', 'annotations')],
  ['kubernetes:networkpolicy', networkPolicy],
]);

/** Checks the parameters against the drop action's own schema, placing problems in the Talon file. */
export function checkDropParameters(action: string, mapped: Mapped, problems: ProblemSink): void {
  const validate = parametersValidator(action)!;
  if (mapped.parameters === undefined || validate(mapped.parameters)) return;
  for (const error of validate.errors!) {
    if (error.keyword === 'propertyNames') continue; // the pattern error before it says the same, better
    const { path, message } = describeSchemaError(error);
    const name = error.propertyName === undefined ? '' : `key "${error.propertyName}": `;
    problems.add(mapped.locate(error.propertyName === undefined ? path : `${path}/${segment(error.propertyName)}`), `${name}${message} (as drop's ${action})`);
  }
}

/**
 * Every actionner Talon has at commit 19d3add6 (actionners/<category>/<name>/<name>.go) and its
 * own `Continue`: whether a rule's chain goes on after it when the action does not say. drop
 * needs it for the ones it skips too: a skipped action that would have ended the chain still
 * ends it, so skipping never runs an action Talon would not have run. An actionner not in this
 * list is taken to end the chain.
 */
export const talonContinues: ReadonlyMap<string, boolean> = new Map([
  ['kubernetes:terminate', false],
  ['kubernetes:delete', false],
  ['kubernetes:tcpdump', false],
  ['kubernetes:sysdig', false],
  ['kubernetes:label', true],
  ['kubernetes:annotation', true],
  ['kubernetes:networkpolicy', true],
  ['kubernetes:cordon', true],
  ['kubernetes:drain', true],
  ['kubernetes:exec', true],
  ['kubernetes:script', true],
  ['kubernetes:log', true],
  ['kubernetes:download', true],
  ['cilium:networkpolicy', true],
  ['calico:networkpolicy', true],
  ['aws:lambda', true],
  ['gcp:function', true],
]);

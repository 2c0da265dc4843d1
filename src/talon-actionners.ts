/**
 * The Falco Talon actionners drop can stand in for (read from falcosecurity/falco-talon
 * actionners/kubernetes/{terminate,label,annotation,networkpolicy}/*.go at commit 19d3add6):
 * each maps its Talon parameters onto a drop action's, merged as Talon merges a rule's step
 * over its `- action:` block, and checked against the drop action's own schema with the
 * problems placed in the Talon file. talon.ts converts the rest of the file.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { actionModules } from './actions/index.ts';
import { ProblemList, describeSchemaError } from './policy-problems.ts';

export type Params = Record<string, unknown>;

export function isRecord(value: unknown): value is Params {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A JSON pointer segment: `~` and `/` escaped, so a label key like `a/b` stays one segment. */
export function segment(key: string | number): string {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
}

interface Actionner {
  readonly action: string;
  /**
   * The actionner's own `Continue` (its .go file): after an action whose `continue` is not set,
   * the chain goes on only when this is true (actionners.go, the loop over a rule's actions).
   */
  readonly continues: boolean;
  /** Talon's parameters as drop's; problems are added where each Talon parameter is written. */
  map(parameters: MergedParameters, problems: ProblemList): Mapped;
}

interface Mapped {
  /** Undefined when the mapping already said why it cannot build them. */
  readonly parameters: Params | undefined;
  /** Where a JSON pointer into drop's parameters came from in the Talon file. */
  locate(pointer: string): string;
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

function kind(value: unknown): string {
  return Array.isArray(value) ? 'list' : isRecord(value) ? 'map' : typeof value;
}

export function mergeParameters(
  actionner: string,
  step: { readonly parameters: Params; readonly at: string },
  block: { readonly parameters: Params; readonly at: string },
  problems: ProblemList,
): MergedParameters {
  const own = step.parameters;
  const inherited = block.parameters;
  const values: Params = { ...own };
  for (const [key, value] of Object.entries(inherited)) {
    const mine = own[key];
    if (value === null) continue;
    if (mine !== undefined && mine !== null && kind(mine) !== kind(value)) {
      problems.add(`${step.at}/${segment(key)}`, `is a ${kind(mine)} here but a ${kind(value)} in the action block: Talon would ignore the block's value`);
      continue;
    }
    if (Array.isArray(value)) values[key] = [...value, ...((mine as unknown[] | null | undefined) ?? [])];
    else if (isRecord(value)) values[key] = { ...((mine as Params | null | undefined) ?? {}), ...value };
    else if (mine === undefined || mine === null) values[key] = value;
  }
  const has = (parameters: Params, key: string): boolean => parameters[key] !== undefined && parameters[key] !== null;
  const locate = (key: string, entry?: string | number): string => {
    const fromStep = `${step.at}/${segment(key)}`;
    const fromBlock = `${block.at}/${segment(key)}`;
    const base = has(own, key) || !has(inherited, key) ? fromStep : fromBlock;
    if (entry === undefined) return base;
    const theirs = inherited[key];
    if (typeof entry === 'number' && Array.isArray(theirs)) {
      return entry < theirs.length ? `${fromBlock}/${entry}` : `${fromStep}/${entry - theirs.length}`;
    }
    if (isRecord(theirs) && typeof entry === 'string' && entry in theirs) return `${fromBlock}/${segment(entry)}`;
    // Not the block's: entries are only read from a merged list or map, so the step has one.
    return `${fromStep}/${segment(entry)}`;
  };
  return { actionner, values, locate };
}

/** Reports parameters the actionner does not take; `unsupported` ones with why. */
function checkParameterNames(parameters: MergedParameters, known: readonly string[], unsupported: Readonly<Record<string, string>>, problems: ProblemList): void {
  for (const key of Object.keys(parameters.values)) {
    if (key in unsupported) problems.add(parameters.locate(key), `${key} is not supported: ${unsupported[key]}`);
    else if (!known.includes(key)) problems.add(parameters.locate(key), `unknown parameter "${key}" for ${parameters.actionner} (known: ${known.join(', ')})`);
  }
}

function boolean(parameters: MergedParameters, key: string, problems: ProblemList): boolean {
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
    checkParameterNames(parameters, [grace, 'ignore_daemonsets', 'ignore_statefulsets', 'ignore_standalone_pods'], {
      min_healthy_replicas: "drop's delete does not count a ReplicaSet's healthy replicas (its guard rails are the cooldown and the destructive budget)",
    }, problems);
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
      if (level !== undefined && level !== null && level !== 'pod') problems.add(parameters.locate('level'), `level ${JSON.stringify(level)} is not supported: drop acts on the pod only (level: pod)`);
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

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validators = new Map<string, ValidateFunction>();

/** Checks the parameters against the drop action's own schema, placing problems in the Talon file. */
export function checkDropParameters(action: string, mapped: Mapped, problems: ProblemList): void {
  let validate = validators.get(action);
  if (!validate) {
    validate = ajv.compile(actionModules.get(action)!.parameters);
    validators.set(action, validate);
  }
  if (mapped.parameters === undefined || validate(mapped.parameters)) return;
  for (const error of validate.errors!) {
    if (error.keyword === 'propertyNames') continue; // the pattern error before it says the same, better
    const { path, message } = describeSchemaError(error);
    const name = error.propertyName === undefined ? '' : `key "${error.propertyName}": `;
    problems.add(mapped.locate(error.propertyName === undefined ? path : `${path}/${segment(error.propertyName)}`), `${name}${message} (as drop's ${action})`);
  }
}

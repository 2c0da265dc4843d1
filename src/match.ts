import type { FalcoAlert, OutputFieldValue } from './falco.ts';
import { matchesPriority, type PriorityCondition } from './priority-expression.ts';

/** A condition on one output field. A missing field (absent or null) fails every operator but notEquals. */
export type FieldCondition =
  | { readonly field: string; readonly equals: string }
  | { readonly field: string; readonly notEquals: string }
  | { readonly field: string; readonly oneOf: readonly string[] }
  | { readonly field: string; readonly prefix: string };

/**
 * Which alerts a response rule is about. Every condition given must hold (AND); an absent
 * condition holds for any alert. `anyOf` lists alternatives: when present, at least one must
 * also hold (this is how Talon's OR-of-AND lists of tags and output fields are expressed).
 */
export interface Match {
  /** Falco rule names: exact, or globs with `*` and `?`; any of them. */
  readonly rules?: readonly string[];
  readonly priority?: PriorityCondition;
  readonly tags?: { readonly anyOf?: readonly string[]; readonly allOf?: readonly string[] };
  /** Falco event sources (syscall, k8s_audit, …); any of them. */
  readonly source?: readonly string[];
  /** All must hold. */
  readonly outputFields?: readonly FieldCondition[];
  /** The target pod's namespace: in `include` (when given) and not in `exclude`; globs allowed. */
  readonly namespaces?: { readonly include?: readonly string[]; readonly exclude?: readonly string[] };
  readonly anyOf?: readonly Match[];
}

const globCache = new Map<string, RegExp>();

/** A glob (`*` any run, `?` one character) as an anchored, case-sensitive pattern. */
export function globPattern(glob: string): RegExp {
  let pattern = globCache.get(glob);
  if (!pattern) {
    const source = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    pattern = new RegExp(`^${source}$`, 's');
    globCache.set(glob, pattern);
  }
  return pattern;
}

export function matchesName(patterns: readonly string[], name: string): boolean {
  return patterns.some((p) => (p.includes('*') || p.includes('?') ? globPattern(p).test(name) : p === name));
}

function fieldText(value: OutputFieldValue | undefined): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}

/** Why a field condition fails, or undefined when it holds. */
function fieldMismatch(condition: FieldCondition, fields: FalcoAlert['outputFields']): string | undefined {
  const value = fieldText(fields[condition.field]);
  const shown = value === undefined ? 'missing' : JSON.stringify(value);
  if ('notEquals' in condition) return value === condition.notEquals ? `${condition.field} is ${shown}` : undefined;
  if (value === undefined) return `${condition.field} is missing`;
  if ('equals' in condition) return value === condition.equals ? undefined : `${condition.field} is ${shown}, not ${JSON.stringify(condition.equals)}`;
  if ('oneOf' in condition) return condition.oneOf.includes(value) ? undefined : `${condition.field} is ${shown}, not one of ${condition.oneOf.join(', ')}`;
  return value.startsWith(condition.prefix) ? undefined : `${condition.field} is ${shown}, not starting with ${JSON.stringify(condition.prefix)}`;
}

/**
 * Why the alert does not match, or undefined when it does. `namespace` is the target pod's
 * namespace (undefined when the alert has no pod). The reason names the first condition that
 * fails, for logs and `falco-drop check`.
 */
export function matchMismatch(match: Match, alert: FalcoAlert, namespace: string | undefined): string | undefined {
  if (match.rules && match.rules.length > 0 && !matchesName(match.rules, alert.rule)) return `rule "${alert.rule}" is not one of ${match.rules.join(', ')}`;
  if (match.priority && !matchesPriority(match.priority, alert.priority)) {
    const c = match.priority;
    return `priority ${alert.priority} is not ${c.comparator === '=' ? '' : c.comparator}${c.priority}`;
  }
  if (match.source && match.source.length > 0 && !match.source.includes(alert.source)) return `source ${alert.source} is not one of ${match.source.join(', ')}`;
  const anyTags = match.tags?.anyOf ?? [];
  if (anyTags.length > 0 && !anyTags.some((tag) => alert.tags.includes(tag))) return `no tag among ${anyTags.join(', ')}`;
  const missingTag = (match.tags?.allOf ?? []).find((tag) => !alert.tags.includes(tag));
  if (missingTag !== undefined) return `tag ${missingTag} is missing`;
  for (const condition of match.outputFields ?? []) {
    const reason = fieldMismatch(condition, alert.outputFields);
    if (reason) return reason;
  }
  const include = match.namespaces?.include ?? [];
  if (include.length > 0 && (namespace === undefined || !matchesName(include, namespace))) return `namespace ${namespace ?? '(none)'} is not included`;
  const exclude = match.namespaces?.exclude ?? [];
  if (namespace !== undefined && matchesName(exclude, namespace)) return `namespace ${namespace} is excluded`;
  if (match.anyOf && match.anyOf.length > 0) {
    const reasons = match.anyOf.map((alternative) => matchMismatch(alternative, alert, namespace));
    if (reasons.every((r) => r !== undefined)) return `no alternative matches (${reasons.join('; ')})`;
  }
  return undefined;
}

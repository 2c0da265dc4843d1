import { parsePriority, priorityRank, type Priority } from './falco.ts';

export type Comparator = '>=' | '>' | '<=' | '<' | '=' | '!=';

/** A priority condition such as ">=Warning", "<Critical" or "Notice" (exact). */
export interface PriorityCondition {
  readonly comparator: Comparator;
  readonly priority: Priority;
}

const pattern = /^\s*(>=|<=|!=|>|<|==|=)?\s*([A-Za-z]+)\s*$/;

/** Parses a priority condition; returns an error message for an unknown name or bad form. */
export function parsePriorityCondition(text: string): PriorityCondition | string {
  const found = pattern.exec(text);
  if (!found) return `"${text}" is not a priority condition (e.g. ">=Warning", "<Critical", "Notice")`;
  const priority = parsePriority(found[2] as string);
  if (!priority) return `"${found[2]}" is not a Falco priority (Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)`;
  const op = found[1] ?? '=';
  return { comparator: op === '==' ? '=' : (op as Comparator), priority };
}

/** True when an event's priority satisfies the condition (an unknown event priority ranks lowest). */
export function matchesPriority(condition: PriorityCondition, eventPriority: string): boolean {
  const event = priorityRank(eventPriority);
  const wanted = priorityRank(condition.priority);
  switch (condition.comparator) {
    case '>=':
      return event >= wanted;
    case '>':
      return event > wanted;
    case '<=':
      return event <= wanted;
    case '<':
      return event < wanted;
    case '!=':
      return event !== wanted;
    default:
      return event === wanted;
  }
}

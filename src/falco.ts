import type { Json } from './json.ts';

/** Falco priorities, highest first (Falco writes the capitalised long names). */
export const priorities = ['Emergency', 'Alert', 'Critical', 'Error', 'Warning', 'Notice', 'Informational', 'Debug'] as const;
export type Priority = (typeof priorities)[number];

/**
 * Rank of a priority name, higher is more severe: Emergency 7 … Debug 0. Case-insensitive.
 * An unknown name ranks lowest (-1), as contract.md §1.2 asks for events.
 */
export function priorityRank(name: string): number {
  const lower = name.toLowerCase();
  const index = priorities.findIndex((p) => p.toLowerCase() === lower);
  return index === -1 ? -1 : priorities.length - 1 - index;
}

/** Exact (case-insensitive) lookup of a priority name; undefined when unknown. */
export function parsePriority(name: string): Priority | undefined {
  const lower = name.toLowerCase();
  return priorities.find((p) => p.toLowerCase() === lower);
}

export type OutputFieldValue = string | number | bigint | boolean | null;

/** A Falco alert as Falco's http_output, Falcosidekick's webhook and its CloudEvents send it. */
export interface FalcoAlert {
  readonly uuid: string | undefined;
  readonly rule: string;
  readonly priority: string;
  readonly output: string;
  readonly time: string | undefined;
  /** Event source: syscall, k8s_audit, aws_cloudtrail, … (Falco's `source`; default syscall). */
  readonly source: string;
  readonly tags: readonly string[];
  readonly hostname: string | undefined;
  readonly outputFields: Readonly<Record<string, OutputFieldValue>>;
}

/** When the alert happened: its own `time`, else its CloudEvent's; undefined when neither parses. */
export function alertTimeMs(alert: FalcoAlert, eventTime: string | undefined): number | undefined {
  const ms = Date.parse(alert.time ?? eventTime ?? '');
  return Number.isNaN(ms) ? undefined : ms;
}

function isObject(value: Json | undefined): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Recognises a Falco payload by its shape: an object with string `rule` and `priority` and an
 * object `output_fields`. Returns undefined for anything else (not an alert, not an error);
 * returns a string naming the problem when it looks like an alert but a field has a bad type.
 */
export function parseFalcoAlert(value: Json): FalcoAlert | string | undefined {
  if (!isObject(value)) return undefined;
  const { rule, priority, output_fields: fields } = value;
  if (typeof rule !== 'string' || typeof priority !== 'string' || !isObject(fields)) return undefined;
  const outputFields: Record<string, OutputFieldValue> = {};
  for (const [key, v] of Object.entries(fields)) {
    if (typeof v === 'object' && v !== null) return `output_fields.${key} must be a string, number, boolean or null`;
    outputFields[key] = v;
  }
  const tags = value.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t): t is string => typeof t === 'string')) return 'tags must be an array of strings';
  for (const key of ['uuid', 'output', 'time', 'source', 'hostname'] as const) {
    const v = value[key];
    if (v !== undefined && v !== null && typeof v !== 'string') return `${key} must be a string`;
  }
  const text = (key: string): string | undefined => (typeof value[key] === 'string' ? (value[key] as string) : undefined);
  return {
    uuid: text('uuid'),
    rule,
    priority,
    output: text('output') ?? '',
    time: text('time'),
    source: text('source') ?? 'syscall',
    tags,
    hostname: text('hostname'),
    outputFields,
  };
}

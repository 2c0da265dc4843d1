import type { ErrorObject } from 'ajv';
import { isMap, isSeq, type Document, type LineCounter, type Node } from 'yaml';

export interface PolicyProblem {
  /** JSON-pointer-like path in the document: /rules/0/match/priority. */
  readonly path: string;
  /** 1-based line and column in the file, when known. */
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly message: string;
  /** The file it is in, when the policy was read from several (else the policy's origin). */
  readonly file?: string;
}

/** Where problems are reported. */
export interface ProblemSink {
  add(path: string, message: string): void;
}

/** A problem as `file:line:column path: message`, the file being `origin` when the problem names none. */
export function formatProblem(problem: PolicyProblem, origin: string): string {
  return `${problem.file ?? origin}${problem.line ? `:${problem.line}:${problem.column}` : ''} ${problem.path || '/'}: ${problem.message}`;
}

/** An invalid policy: every problem, with its place in the file. */
export class PolicyError extends Error {
  readonly problems: readonly PolicyProblem[];
  constructor(origin: string, problems: readonly PolicyProblem[]) {
    const lines = problems.map((p) => `  ${formatProblem(p, origin)}`);
    super(`invalid policy ${origin} (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`);
    this.name = 'PolicyError';
    this.problems = problems;
  }
}

/** A schema error as a path and a sentence a policy author understands. */
export function describeSchemaError(error: ErrorObject): { path: string; message: string } {
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

/** Collects problems, placing each at the line and column where its path is written. */
export class ProblemList implements ProblemSink {
  readonly problems: PolicyProblem[] = [];
  constructor(
    private readonly document: Document | undefined,
    private readonly lines: LineCounter | undefined,
    /** Named in each problem when the policy is read from several files. */
    private readonly file?: string,
  ) {}

  add(path: string, message: string): void {
    // The same problem found twice (an action block used by two rules) is listed once.
    if (this.problems.some((p) => p.path === path && p.message === message)) return;
    this.problems.push(this.place(path, message));
  }

  /** A problem at its line and column, without adding it. */
  place(path: string, message: string): PolicyProblem {
    const keys = path.split('/').slice(1).map((k) => (/^\d+$/.test(k) ? Number(k) : k));
    const position = this.position(keys);
    return { path, line: position?.line, column: position?.col, message, ...(this.file !== undefined ? { file: this.file } : {}) };
  }

  /** The problems in file order. */
  sorted(): PolicyProblem[] {
    return [...this.problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  }

  /** Where a path is written: a map entry's key, a list item, else the nearest ancestor. */
  private position(keys: (string | number)[]): { line: number; col: number } | undefined {
    if (!this.document || !this.lines) return undefined;
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

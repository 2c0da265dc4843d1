/**
 * JSON that keeps integers above 2^53 exact, with the built-ins alone (Node 24: JSON.parse hands
 * a reviver each number's source text, and JSON.rawJSON writes text as a number). Falco's
 * `evt.time` is nanoseconds (about 1.7e18): plain JSON.parse rounds it, and the service echoes
 * and logs output fields. An integer outside ±(2^53 − 1) becomes a bigint with every digit;
 * every other number stays a number.
 */
export type Json = null | boolean | number | bigint | string | Json[] | { [key: string]: Json };

const integer = /^-?\d+$/;
/** JSON.rawJSON: not yet in TypeScript's lib. */
const { rawJSON } = JSON as JSON & { rawJSON(text: string): object };

// A reviver's third argument carries a primitive's source text (JSON.parse source text access).
function reviveNumber(_key: string, value: unknown, context?: { source: string }): unknown {
  if (typeof value !== 'number' || Number.isSafeInteger(value)) return value;
  const { source } = context as { source: string };
  return integer.test(source) ? BigInt(source) : value;
}

/** Parses JSON text; throws SyntaxError (JSON.parse's, with where it failed) on invalid JSON. */
export function parseJson(text: string): Json {
  return JSON.parse(text, reviveNumber) as Json;
}

function writeBigint(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? rawJSON(value.toString()) : value;
}

/**
 * A bigint as a value JSON.stringify writes as a bare number with every digit. pino writes a log
 * line with JSON.stringify and, when that throws (as it does on a bigint), again with a slower
 * serializer: a log field holding a bigint would cost a thrown exception per line.
 */
export function jsonNumber(value: bigint): object {
  return rawJSON(value.toString());
}

/** Serialises, writing bigint as a bare JSON number with every digit. */
export function stringifyJson(value: unknown): string {
  return JSON.stringify(value, writeBigint);
}

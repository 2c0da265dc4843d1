import { isSafeNumber, parse, stringify } from 'lossless-json';

/**
 * JSON that keeps integers above 2^53 exact. Falco's `evt.time` is nanoseconds (about 1.7e18):
 * plain JSON.parse rounds it, and the service echoes and logs output fields. Integers that fit
 * a double stay numbers; larger ones become bigint; other numbers stay numbers.
 */
export type Json = null | boolean | number | bigint | string | Json[] | { [key: string]: Json };

function parseNumber(text: string): number | bigint {
  if (isSafeNumber(text) || !/^-?\d+$/.test(text)) return Number(text);
  return BigInt(text);
}

/** Parses JSON text; throws SyntaxError on invalid JSON. */
export function parseJson(text: string): Json {
  return parse(text, null, parseNumber) as Json;
}

/** Serialises, writing bigint as a bare JSON number with every digit. */
export function stringifyJson(value: unknown): string {
  return stringify(value) as string;
}

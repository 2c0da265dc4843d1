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

// Every integer of at most 15 digits is safe: text without 16 digits in a row parses exactly.
const sixteenDigits = /\d{16}/;
// What marks a large integer while it is parsed as a string: a private-use character, which the
// text must not hold already, raw or escaped (then the reviver does the work).
const mark = '\uE000';
const markInText = /\uE000|\\u[Ee]000/;
const integerToken = /^-?(?:0|[1-9]\d*)$/;

/**
 * The text with every integer of 16 digits or more outside strings written as a marked string:
 * 1749720067118402960 becomes "\uE0001749720067118402960". The text is unchanged but for them.
 */
function markLargeIntegers(text: string): string {
  let out = '';
  let from = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      // A number token runs over digits, signs, points and exponents.
      let end = i + 1;
      for (let d = text.charCodeAt(end); (d >= 0x30 && d <= 0x39) || d === 0x2b || d === 0x2d || d === 0x2e || d === 0x45 || d === 0x65; d = text.charCodeAt(++end));
      const token = text.slice(i, end);
      if (token.length >= 16 && integerToken.test(token)) {
        out += `${text.slice(from, i)}"${mark}${token}"`;
        from = end;
      }
      i = end - 1;
    }
  }
  return from === 0 ? text : out + text.slice(from);
}

/** A marked string back to its integer, as reviveNumber would make it; a marked key is no JSON. */
function unmark(value: Json): Json {
  if (typeof value === 'string') {
    if (value.charCodeAt(0) !== 0xe000) return value;
    const token = value.slice(1);
    const number = Number(token);
    return Number.isSafeInteger(number) ? number : BigInt(token);
  }
  if (typeof value !== 'object' || value === null || typeof value === 'bigint') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = unmark(value[i]!);
    return value;
  }
  for (const key of Object.keys(value)) {
    // A number where a member's name belongs: invalid JSON the mark made look valid.
    if (key.charCodeAt(0) === 0xe000) throw new SyntaxError('a number as a member name');
    const member = value[key]!;
    const restored = unmark(member);
    if (restored !== member) Object.defineProperty(value, key, { value: restored, writable: true, enumerable: true, configurable: true });
  }
  return value;
}

/**
 * Parses JSON text; throws SyntaxError (JSON.parse's, with where it failed) on invalid JSON.
 * The reviver hands every value its source text, which makes JSON.parse several times slower;
 * so it runs only where marking cannot: text that holds the mark, or that marked is not JSON
 * (then it throws the error the text itself gives). Either way the result is the same.
 */
export function parseJson(text: string): Json {
  if (!sixteenDigits.test(text)) return JSON.parse(text) as Json;
  if (!markInText.test(text)) {
    try {
      return unmark(JSON.parse(markLargeIntegers(text)) as Json);
    } catch {
      // Invalid JSON (or nesting deeper than the walk goes): the reviver's parse says why.
    }
  }
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
  // A replacer makes JSON.stringify several times slower, and most values hold no bigint: it is
  // only used once plain JSON.stringify has thrown (on a bigint, or on a cycle, which throws again).
  try {
    return JSON.stringify(value);
  } catch {
    return JSON.stringify(value, writeBigint);
  }
}

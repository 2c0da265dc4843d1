/**
 * Bounding a log that an attacker may write: its text is kept as it is (nothing escaped or
 * filtered), and bounded by the bytes it takes in JSON, where a control character costs up to 6
 * bytes (`\u0001`): whatever the pod logs, the reply and the Secret stay within the limits.
 */

/** The bytes one code point takes in a JSON string (UTF-8, escapes as JSON.stringify writes them). */
function escapedBytes(code: number): number {
  if (code === 0x22 || code === 0x5c) return 2;
  if (code < 0x20) return [0x08, 0x09, 0x0a, 0x0c, 0x0d].includes(code) ? 2 : 6;
  if (code < 0x80) return 1;
  if (code < 0x800) return 2;
  if (code >= 0xd800 && code <= 0xdfff) return 6; // a lone surrogate, written as \udxxx
  return code < 0x10000 ? 3 : 4;
}

/** The bytes `text` takes inside a JSON string (without the quotes). */
export function jsonBytes(text: string): number {
  return Buffer.byteLength(JSON.stringify(text)) - 2;
}

/**
 * The end of `text` that takes at most `max` bytes in JSON, from the start of a line when the
 * cut falls inside one that is not the last; never splitting a surrogate pair.
 */
export function clipLogTail(text: string, max: number): { text: string; clipped: boolean } {
  let bytes = 0;
  let start = text.length;
  while (start > 0) {
    let at = start - 1;
    const code = text.charCodeAt(at);
    if (code >= 0xdc00 && code <= 0xdfff && at > 0) {
      const high = text.charCodeAt(at - 1);
      if (high >= 0xd800 && high <= 0xdbff) at--;
    }
    const cost = escapedBytes(text.codePointAt(at)!);
    if (bytes + cost > max) break;
    bytes += cost;
    start = at;
  }
  if (start === 0) return { text, clipped: false };
  const kept = text.slice(start);
  const newline = text[start - 1] === '\n' ? -1 : kept.indexOf('\n');
  return { text: newline !== -1 && newline < kept.length - 1 ? kept.slice(newline + 1) : kept, clipped: true };
}

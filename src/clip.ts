/**
 * Text that comes from an alert or its sender (rule, output, priority, CloudEvent attributes,
 * reasons built from them) is echoed in answers and written to the log. A 900 KB rule name
 * must not become a 900 KB reply, log line or remembered answer: such text is cut to
 * `maxEchoedChars` characters and marked. Falco rule names and the reasons drop writes are far
 * shorter, so only hostile or broken input is ever cut.
 */
export const maxEchoedChars = 1024;

/** Room for the marker, so text clipped once is never clipped again (when echoed in an error's details). */
const markerChars = 48;

/**
 * `text`, or its first `max` characters followed by `…[truncated: N characters]` (N the whole
 * length). The result is a fresh string: a slice would keep the whole original alive in V8.
 */
export function clipText(text: string, max: number = maxEchoedChars): string {
  if (text.length <= max + markerChars) return text;
  // Never split a surrogate pair.
  const end = isHighSurrogate(text.charCodeAt(max - 1)) ? max - 1 : max;
  return copy(`${text.slice(0, end)}…[truncated: ${text.length} characters]`);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** A flat copy of a string, sharing nothing with the strings it was built from. */
function copy(text: string): string {
  return JSON.parse(JSON.stringify(text)) as string;
}

/** A value with every string in it clipped (objects and arrays copied); other values as they are. */
export function clipStrings<T>(value: T, max: number = maxEchoedChars): T {
  if (typeof value === 'string') return clipText(value, max) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => clipStrings(item, max)) as T;
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [clipText(key, max), clipStrings(item as unknown, max)])) as T;
  }
  return value;
}

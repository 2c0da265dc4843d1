/**
 * RFC 3339 timestamps, read strictly: the CloudEvents `time` attribute and a Falco alert's `time`
 * both go through here. `Date.parse` is not enough: it takes "2025-06-12T09:21:07" (no offset)
 * as local time, "2025-06-12" as a date, and "June 12" as anything it likes, so a sender's typo
 * would move the alert by hours and switch the age guard off or on.
 */

/** What a valid timestamp looks like, for error messages. */
export const timestampFormat = 'an RFC 3339 timestamp with a UTC offset (e.g. 2025-06-12T09:21:07Z)';

// date "T" time [fraction] ("Z" | ±hh:mm); RFC 3339 §5.6 allows lower-case t and z.
const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/**
 * Milliseconds since the epoch, or undefined when `text` is not an RFC 3339 date-time with a
 * UTC offset and real calendar values (no 30 February, no hour 24). A leap second (:60) is read
 * as the next second. Digits of the fraction past milliseconds are dropped.
 */
export function parseTimestamp(text: string): number | undefined {
  // An alert's time is read several times (its CloudEvent's, its own, the age guard's): once is enough.
  if (text === last.text) return last.ms;
  const ms = readTimestamp(text);
  last = { text, ms };
  return ms;
}

let last: { readonly text: string | undefined; readonly ms: number | undefined } = { text: undefined, ms: undefined };

function readTimestamp(text: string): number | undefined {
  const parts = rfc3339.exec(text);
  if (!parts) return undefined;
  const [year, month, day, hour, minute, second] = parts.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const offsetMinutes = parts[8] === undefined ? 0 : (parts[8] === '-' ? -1 : 1) * (Number(parts[9]) * 60 + Number(parts[10]));
  if (second > 60 || Number(parts[9] ?? 0) > 23 || Number(parts[10] ?? 0) > 59) return undefined;
  const date = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0–99 as 1900–1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, 0, Number((parts[7] ?? '').slice(0, 3).padEnd(3, '0')));
  // Out-of-range values roll over (day 31 of a 30-day month becomes the 1st): refuse them.
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day || date.getUTCHours() !== hour || date.getUTCMinutes() !== minute) {
    return undefined;
  }
  return date.getTime() + second * 1000 - offsetMinutes * 60_000;
}

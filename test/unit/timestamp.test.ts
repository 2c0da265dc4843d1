import t from 'tap';
import { parseTimestamp } from '../../src/timestamp.ts';

t.test('reads the examples of RFC 3339 §5.8 and what Falco and Falcosidekick write', async (t) => {
  const cases: [string, string][] = [
    ['1985-04-12T23:20:50.52Z', '1985-04-12T23:20:50.520Z'],
    ['1996-12-19T16:39:57-08:00', '1996-12-20T00:39:57.000Z'],
    ['1937-01-01T12:00:27.87+00:20', '1937-01-01T11:40:27.870Z'],
    // A leap second is read as the next second.
    ['1990-12-31T23:59:60Z', '1991-01-01T00:00:00.000Z'],
    ['1990-12-31T15:59:60-08:00', '1991-01-01T00:00:00.000Z'],
    ['2025-06-12T09:21:07.11840296Z', '2025-06-12T09:21:07.118Z'],
    ['2025-06-12T09:21:07Z', '2025-06-12T09:21:07.000Z'],
    ['2025-06-12t09:21:07.5z', '2025-06-12T09:21:07.500Z'],
    ['2024-02-29T00:00:00+14:00', '2024-02-28T10:00:00.000Z'],
    ['0050-01-01T00:00:00Z', '0050-01-01T00:00:00.000Z'],
  ];
  for (const [text, iso] of cases) t.equal(parseTimestamp(text), Date.parse(iso), text);
});

t.test('refuses what is not an RFC 3339 date-time with a UTC offset', async (t) => {
  const cases: [string, string][] = [
    ['no UTC offset (Date.parse takes it as local time)', '2025-06-12T09:21:07'],
    ['no UTC offset, with a fraction', '2025-06-12T09:21:07.118'],
    ['a date alone', '2025-06-12'],
    ['a space for the T', '2025-06-12 09:21:07Z'],
    ['no seconds', '2025-06-12T09:21Z'],
    ['an empty fraction', '2025-06-12T09:21:07.Z'],
    ['an offset without a colon', '2025-06-12T09:21:07+0200'],
    ['an offset of 24 hours', '2025-06-12T09:21:07+24:00'],
    ['an offset of 60 minutes', '2025-06-12T09:21:07+02:60'],
    ['month 13', '2025-13-12T09:21:07Z'],
    ['month 00', '2025-00-12T09:21:07Z'],
    ['day 00', '2025-06-00T09:21:07Z'],
    ['30 February', '2025-02-30T09:21:07Z'],
    ['29 February of a common year', '2025-02-29T09:21:07Z'],
    ['31 June', '2025-06-31T09:21:07Z'],
    ['hour 24', '2025-06-12T24:00:00Z'],
    ['minute 60', '2025-06-12T09:60:07Z'],
    ['second 61', '2025-06-12T09:21:61Z'],
    ['words', 'yesterday'],
    ['what Date.parse also takes', 'Thu, 12 Jun 2025 09:21:07 GMT'],
    ['a number', '1749720067'],
    ['an empty string', ''],
    ['a trailing newline', '2025-06-12T09:21:07Z\n'],
  ];
  for (const [name, text] of cases) t.equal(parseTimestamp(text), undefined, name);
});

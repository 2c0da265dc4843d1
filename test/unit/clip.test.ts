import t from 'tap';
import { clipStrings, clipText, maxEchoedChars } from '../../src/clip.ts';

t.test('text up to the limit is kept as it is', async (t) => {
  t.equal(clipText('Terminal shell in container'), 'Terminal shell in container');
  const edge = 'a'.repeat(maxEchoedChars + 48);
  t.equal(clipText(edge), edge, 'room is left for the marker so clipped text is never clipped twice');
});

t.test('longer text is cut to the limit and marked with its whole length', async (t) => {
  const clipped = clipText('r'.repeat(900 * 1024));
  t.equal(clipped, `${'r'.repeat(maxEchoedChars)}…[truncated: 921600 characters]`);
  t.equal(clipText(clipped), clipped, 'clipping again changes nothing');
  t.equal(clipText('abcdefghij'.repeat(10), 5), 'abcde…[truncated: 100 characters]');
});

t.test('a surrogate pair is never split', async (t) => {
  const text = `${'a'.repeat(4)}😀${'b'.repeat(100)}`;
  t.equal(clipText(text, 5), 'aaaa…[truncated: 106 characters]');
});

t.test('clipStrings clips every string in a JSON-like value, keys included, and keeps the rest', async (t) => {
  const long = 'x'.repeat(2000);
  const value = { reason: long, n: 1, ok: true, none: null, list: [long, 2], nested: { [long]: long }, big: 1749720067118402960n };
  const clipped = clipStrings(value);
  const short = `${'x'.repeat(maxEchoedChars)}…[truncated: 2000 characters]`;
  t.same(clipped, { reason: short, n: 1, ok: true, none: null, list: [short, 2], nested: { [short]: short }, big: 1749720067118402960n });
  t.equal(value.reason, long, 'the original is not changed');
});

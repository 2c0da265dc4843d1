import fc from 'fast-check';
import t from 'tap';
import { jsonNumber, parseJson, stringifyJson } from '../../src/json.ts';
import { evtTime, falcoJson } from './fixtures/falco.ts';

t.test('keeps evt.time exact above 2^53 from parse to stringify', async (t) => {
  const text = '{"evt.time":1749720067118402960}';
  const value = parseJson(text) as { 'evt.time': unknown };
  t.equal(value['evt.time'], evtTime);
  t.not(BigInt(JSON.parse(text)['evt.time']), evtTime, 'plain JSON.parse would have rounded it');
  t.equal(stringifyJson(value), text, 'writes every digit back as a bare number');
});

t.test('round-trips a Falcosidekick payload byte for byte apart from Go\'s escapes', async (t) => {
  const text = falcoJson();
  t.equal(stringifyJson(parseJson(text)), text.replace(/\\u003c/g, '<').replace(/\\u003e/g, '>').replace(/\\u0026/g, '&'));
});

t.test('decodes each kind of number to the right type', async (t) => {
  const cases: { name: string; text: string; value: unknown }[] = [
    { name: 'a safe integer stays a number', text: '34816', value: 34816 },
    { name: 'a negative safe integer stays a number', text: '-1', value: -1 },
    { name: 'the largest safe integer stays a number', text: '9007199254740991', value: Number.MAX_SAFE_INTEGER },
    { name: 'the smallest safe integer stays a number', text: '-9007199254740991', value: -Number.MAX_SAFE_INTEGER },
    { name: '2^53, the first integer outside the safe range, becomes a bigint', text: '9007199254740992', value: 9007199254740992n },
    { name: 'one above the largest safe integer becomes a bigint', text: '9007199254740993', value: 9007199254740993n },
    { name: 'an integer with more digits than a double holds keeps them all', text: '123456789012345678901234567890', value: 123456789012345678901234567890n },
    { name: 'a large negative integer becomes a bigint', text: '-1749720067118402960', value: -1749720067118402960n },
    { name: 'a float stays a number', text: '0.5', value: 0.5 },
    { name: 'a float with more digits than a double holds stays a number', text: '0.12345678901234567890', value: 0.12345678901234568 },
    { name: 'a large float in exponent form stays a number', text: '1.7e18', value: 1.7e18 },
    { name: 'a large number with a fraction stays a number', text: '12345678901234567890.5', value: 12345678901234567890.5 },
    { name: 'minus zero stays a number', text: '-0', value: -0 },
  ];
  for (const c of cases) {
    const parsed = parseJson(c.text);
    t.equal(typeof parsed, typeof c.value, c.name);
    t.equal(parsed, c.value, c.name);
  }
});

t.test('decodes strings, literals and structures like JSON.parse', async (t) => {
  const text = '{"a":[true,false,null,"\\u003cNA\\u003e"],"b":{"c":1.25}}';
  t.same(parseJson(text), JSON.parse(text));
});

t.test('throws a SyntaxError that says where the JSON went wrong, quoting at most 10 characters of it', async (t) => {
  const cases: [string, string][] = [
    ['{"a":', 'Unexpected end of JSON input'],
    ['hello', 'Unexpected token \'h\', "hello" is not valid JSON'],
    ['N'.repeat(100_000), 'Unexpected token \'N\', "NNNNNNNNNN"... is not valid JSON'],
    ['{"a":1,}', 'Expected double-quoted property name in JSON at position 7 (line 1 column 8)'],
    ['{"a":1} x', 'Unexpected non-whitespace character after JSON at position 8 (line 1 column 9)'],
  ];
  for (const [text, message] of cases) t.throws(() => parseJson(text), new SyntaxError(message), message);
});

t.test('writes nested bigints, and everything else as JSON.stringify does', async (t) => {
  t.equal(stringifyJson({ a: [1n, -(2n ** 70n)], b: { c: 9007199254740993n } }), '{"a":[1,-1180591620717411303424],"b":{"c":9007199254740993}}');
  const plain = { s: 'x', n: 0.5, t: true, z: null, u: undefined, d: new Date(0), nan: Number.NaN };
  t.equal(stringifyJson(plain), JSON.stringify(plain));
  t.equal(stringifyJson(undefined), undefined);
  const cycle: Record<string, unknown> = { n: 1n };
  cycle.self = cycle;
  t.throws(() => stringifyJson(cycle), TypeError, 'a cycle throws as JSON.stringify throws, bigint or not');
});

t.test('jsonNumber: a bigint that plain JSON.stringify (as pino writes a log line) writes with every digit', async (t) => {
  t.throws(() => JSON.stringify({ evtTime }), TypeError, 'a bare bigint makes JSON.stringify throw');
  t.equal(JSON.stringify({ evtTime: jsonNumber(evtTime) }), '{"evtTime":1749720067118402960}');
  t.equal(JSON.stringify([jsonNumber(-(2n ** 70n))]), '[-1180591620717411303424]');
});

/** What parseJson must give: JSON.parse with a reviver that turns each unsafe integer into a bigint from its source text. */
function oracle(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source: string }) =>
    typeof value === 'number' && !Number.isSafeInteger(value) && /^-?\d+$/.test(context!.source) ? BigInt(context!.source) : value,
  );
}

t.test('large integers are exact wherever they are, in any document, and nothing else changes', async (t) => {
  const integer = fc.oneof(fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }), fc.constantFrom(2n ** 53n, 2n ** 53n - 1n, -(2n ** 53n), 10n ** 15n, 10n ** 16n - 1n));
  const leaf = fc.oneof(integer, fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string({ unit: 'binary' }), fc.constantFrom(true, false, null), fc.constantFrom('\uE0001749720067118402960', '1749720067118402960'));
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('tree')), fc.dictionary(fc.string(), tie('tree'))),
  }));
  fc.assert(
    fc.property(tree, fc.boolean(), (value, indented) => {
      // Compact, as senders write it, or indented, so numbers also sit between whitespace.
      const text = indented ? JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? jsonNumber(v) : v), 2) : stringifyJson(value)!;
      t.strictSame(parseJson(text), oracle(text));
    }),
    { numRuns: 500 },
  );
});

t.test('text the mark could confuse parses as the reviver parses it, or fails as it fails', async (t) => {
  const evt = '1749720067118402960';
  const cases = [
    `{"a":"\uE000${evt}","b":${evt}}`, // the mark itself in a string
    `{"a":"\\ue000${evt}","b":${evt}}`, // the mark escaped, lower case
    `{"a":"\\uE000${evt}","b":${evt}}`, // and upper case
    `{"__proto__":${evt},"b":[${evt},-${evt},0.${evt},${evt}.5,${evt}e3]}`, // an own __proto__; numbers that are no integers
    `{"a":"${evt}","b":"x\\"${evt}"}`, // digits inside strings, after an escaped quote
    `[${evt}]`,
    evt,
  ];
  for (const text of cases) t.strictSame(parseJson(text), oracle(text), text);
  const proto = parseJson(cases[3]!) as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(proto), Object.prototype, 'the prototype is not replaced');
  t.equal(Object.getOwnPropertyDescriptor(proto, '__proto__')?.value, 1749720067118402960n, '__proto__ is an own member, exact');
  const invalid = [`{${evt}:1}`, `{"a":0${evt}}`, `{"a":${evt}`, `[${evt} ${evt}]`, `{"a":${evt}"x"}`];
  for (const text of invalid) {
    t.throws(() => oracle(text), SyntaxError, `${text} is no JSON`);
    let message = '';
    try {
      oracle(text);
    } catch (error) {
      message = (error as Error).message;
    }
    t.throws(() => parseJson(text), new SyntaxError(message), `${text}: the error JSON.parse gives for it`);
  }
  const deep = `${'['.repeat(1000)}${evt}${']'.repeat(1000)}`;
  t.strictSame(parseJson(deep), oracle(deep), 'deep nesting');
  const deeper = `${'['.repeat(20_000)}${evt}${']'.repeat(20_000)}`;
  t.throws(() => oracle(deeper), RangeError, 'the reviver overflows the stack on 20,000 levels');
  t.throws(() => parseJson(deeper), RangeError, 'and so does parseJson, as before (the service refuses over 64 levels first)');
});

import { PassThrough } from 'node:stream';
import t from 'tap';
import { readBodyText } from '../../src/body-text.ts';
import { DropError } from '../../src/errors.ts';

/** Feeds chunks to readBodyText; resolves with what it gave `done`, and how many bytes were left unread. */
function read(chunks: (Buffer | string)[], declared: string | undefined, limit = 1024, end = true) {
  const payload = new PassThrough();
  payload.pause();
  return new Promise<{ error: Error | null; body?: string; listeners: number }>((resolve) => {
    readBodyText(payload, declared, limit, (error, body) => resolve({ error, body, listeners: payload.listenerCount('data') + payload.listenerCount('end') + payload.listenerCount('error') }));
    for (const chunk of chunks) payload.write(chunk);
    if (end) payload.end();
  });
}

t.test('chunks are decoded as they come, a character split between two chunks whole', async (t) => {
  const text = 'shell in container «ü»: /etc/shadow 🐚';
  const bytes = Buffer.from(text);
  const split = bytes.indexOf(Buffer.from('🐚')) + 2;
  const result = await read([bytes.subarray(0, 5), bytes.subarray(5, split), bytes.subarray(split)], String(bytes.length));
  t.same(result, { error: null, body: text, listeners: 0 });
});

t.test('a body with no declared length is read whole', async (t) => {
  t.same(await read(['{"rule":', '"x"}'], undefined), { error: null, body: '{"rule":"x"}', listeners: 0 });
  t.same(await read([], undefined), { error: null, body: '', listeners: 0 }, 'an empty one too');
});

t.test('a declared length over the limit is refused unread: 413', async (t) => {
  const payload = new PassThrough();
  let given: Error | null | undefined;
  readBodyText(payload, '2048', 1024, (error) => (given = error));
  t.match(given, { code: 'DROP_BODY_TOO_LARGE', status: 413, message: 'the body is larger than 1024 bytes' });
  t.ok((given as unknown) instanceof DropError);
  t.equal(payload.listenerCount('data'), 0, 'nothing listens to the body');
});

t.test('a body that grows past the limit is refused as it does, and no longer read', async (t) => {
  const result = await read(['x'.repeat(600), 'y'.repeat(600), 'z'], undefined, 1024, false);
  t.match(result.error, { code: 'DROP_BODY_TOO_LARGE', status: 413 });
  t.equal(result.listeners, 0);
  t.equal(result.body, undefined);
});

t.test('a body shorter or longer than it declared is a 400', async (t) => {
  t.match((await read(['{}'], '10')).error, { code: 'DROP_NOT_AN_EVENT', status: 400, message: 'Request body size did not match Content-Length' });
  t.match((await read(['{"a":1}'], '2')).error, { code: 'DROP_NOT_AN_EVENT', status: 400 });
});

t.test('a stream that fails is a 400 that says why', async (t) => {
  const payload = new PassThrough();
  const given = new Promise<Error | null>((resolve) => readBodyText(payload, '10', 1024, (error) => resolve(error)));
  payload.write('{"ru');
  payload.destroy(new Error('aborted'));
  const error = await given;
  t.match(error, { code: 'DROP_NOT_AN_EVENT', status: 400, message: 'the body could not be read: aborted' });
  t.equal(payload.listenerCount('data'), 0);
});

t.test('any bytes, cut anywhere, read as the whole body decoded at once', async (t) => {
  const { default: fc } = await import('fast-check');
  let cases = 0;
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), fc.array(fc.nat(64), { maxLength: 6 }), async (bytes, cuts) => {
      const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const chunks = [0, ...at].map((from, i) => Buffer.from(bytes.subarray(from, [...at, bytes.length][i])));
      const result = await read(chunks, String(bytes.length));
      cases++;
      return result.error === null && result.body === Buffer.from(bytes).toString('utf8');
    }),
    { numRuns: 2000 },
  );
  t.equal(cases, 2000, 'every case held');
});

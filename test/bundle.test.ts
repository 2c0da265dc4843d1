// What the service starts from: the built bundle (npm test builds it first).
import { readFileSync } from 'node:fs';
import t from 'tap';

const dist = new URL('../dist/', import.meta.url);

/** dist/main.js and every chunk it imports, statically or on the first API call. */
function bundleFiles(): string[] {
  const main = readFileSync(new URL('main.js', dist), 'latin1');
  const chunks = [...main.matchAll(/(?:from\s*|import\()\s*"\.\/(chunks\/[^"]+\.js)"/g)].map((m) => m[1] as string);
  return ['main.js', ...new Set(chunks)];
}

t.test('the bundle is ASCII, so V8 keeps its source at one byte a character', async (t) => {
  const files = bundleFiles();
  t.ok(files.some((f) => f.startsWith('chunks/kube-apis-')), `the chunk of the Kubernetes APIs is among ${files.join(', ')}`);
  t.ok(files.length >= 3, 'main.js, its shared chunk and the APIs');
  for (const file of files) {
    const bytes = readFileSync(new URL(file, dist));
    const at = bytes.findIndex((b) => b > 0x7f);
    t.equal(at, -1, `${file}: ${at === -1 ? 'ASCII' : `a non-ASCII byte at ${at}: …${bytes.subarray(Math.max(0, at - 60), at + 10).toString('utf8')}…`}`);
  }
});

// What the service starts from: the built bundle (npm test builds it first).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** Wrong values for every property of a schema: another type each, and an unknown key. */
function wrongParameters(schema: { properties?: Record<string, { type?: unknown }> }): Record<string, unknown>[] {
  const wrong = Object.entries(schema.properties ?? {}).map(([key, property]) => ({ [key]: property.type === 'string' ? { not: 'a string' } : 'not a number, list or object' }));
  return [...wrong, { notAParameter: true }, Object.fromEntries(Object.keys(schema.properties ?? {}).map((key) => [key, null]))];
}

t.test('the validators built ahead of time find the same problems as the ones src/ compiles', async (t) => {
  const { runCli } = await import('../src/check.ts');
  const { validatorSchemas } = await import('../src/validators.ts');
  const dir = mkdtempSync(join(tmpdir(), 'drop-bundle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rules = [...validatorSchemas().parameters].flatMap(([action, schema]) =>
    wrongParameters(schema).map((parameters, i) => ({ name: `${action}-${i}`, match: { rules: ['Terminal shell in container'] }, actions: [{ action, parameters }] })),
  );
  const policies = {
    parameters: { rules },
    shape: { rules: [{ name: 'Bad Name', match: { priority: 7, rules: [], unknown: 1 }, actions: [] }, { match: {} }], guards: { destructivePerMinute: -1, cooldownSeconds: 'soon' }, extra: true },
    'not a list': { rules: { name: 'x' } },
  };
  for (const [name, policy] of Object.entries(policies)) {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, JSON.stringify(policy, null, 2));
    const built = spawnSync(process.execPath, ['dist/cli.js', 'check', '--policy', file], { cwd: new URL('..', import.meta.url), encoding: 'utf8' });
    let stderr = '';
    const code = await runCli(['check', '--policy', file], { stdout: { write: () => true }, stderr: { write: (text: string) => (stderr += text) } });
    t.equal(built.status, 1, `${name}: the built check refuses it`);
    t.equal(code, 1, `${name}: so does src/`);
    t.ok(stderr.split('\n').length > 2, `${name}: with problems to compare (${stderr.split('\n').length - 2})`);
    t.equal(built.stderr, stderr, `${name}: the same problems, in the same words and places`);
  }
  t.ok(rules.length > 20, `${rules.length} rules with wrong parameters`);
});

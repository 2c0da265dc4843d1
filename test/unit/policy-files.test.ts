import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { LineCounter, parseDocument } from 'yaml';
import { PolicyError, loadPolicyFiles, policyFiles } from '../../src/policy.ts';
import { ProblemList } from '../../src/policy-problems.ts';

const rules = `- action: Mark
  actionner: kubernetes:label
  parameters: {labels: {a: "1"}}
- rule: Shell
  match: {rules: [Terminal shell in container]}
  actions: [{action: Mark}]
`;
const override = '- action: Mark\n  parameters: {labels: {b: "2"}}\n';
const own = 'rules:\n  - name: any\n    match: {}\n    actions: [{action: delete}]\n';

async function refused(spec: string): Promise<PolicyError> {
  const error = await loadPolicyFiles(spec).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof PolicyError)) throw new Error(`${spec} was not refused with a PolicyError`);
  return error;
}

t.test('a comma-separated list of files loads in the order given, the sha256 over their bytes in that order', async (t) => {
  const dir = t.testdir({ 'rules.yaml': rules, 'override.yaml': override });
  const spec = `${join(dir, 'rules.yaml')}, ${join(dir, 'override.yaml')}`;
  const loaded = await loadPolicyFiles(spec);
  t.same(loaded.files, [join(dir, 'rules.yaml'), join(dir, 'override.yaml')]);
  t.equal(loaded.sha256, createHash('sha256').update(rules + override).digest('hex'), 'as `cat rules.yaml override.yaml | sha256sum`');
  t.equal(loaded.policy.origin, spec);
  t.same(loaded.policy.rules[0]!.actions[0]!.parameters, { labels: { a: '1', b: '2' } }, 'the override merged in');
  t.same(loaded.skipped, []);
});

t.test("a directory loads its .yaml and .yml files in name order, leaving out hidden entries like a ConfigMap's ..data", async (t) => {
  const dir = t.testdir({ 'rules.yaml': rules, 'rules_override.yml': override, 'README.md': '# not a policy', 'sub.yaml': {}, '.hidden.yaml': 'broken: [' });
  // A mounted ConfigMap: the files are links into ..data, itself a link to a timestamped directory.
  const mount = join(dir, 'mount');
  mkdirSync(join(mount, '..2026_01_01'), { recursive: true });
  writeFileSync(join(mount, '..2026_01_01', 'rules.yaml'), rules);
  symlinkSync('..2026_01_01', join(mount, '..data'));
  symlinkSync('..data/rules.yaml', join(mount, 'rules.yaml'));
  t.same(await policyFiles(dir), [join(dir, 'rules.yaml'), join(dir, 'rules_override.yml')], 'not README.md, not the directory sub.yaml, not .hidden.yaml');
  const loaded = await loadPolicyFiles(mount);
  t.same(loaded.files, [join(mount, 'rules.yaml')]);
  t.same(loaded.policy.rules.map((r) => r.name), ['Shell']);
});

t.test("drop's own format is one file, alone or as a directory's only file", async (t) => {
  const dir = t.testdir({ one: { 'policy.yaml': own }, two: { 'a.yaml': own, 'b.yaml': rules } });
  t.same((await loadPolicyFiles(join(dir, 'one'))).policy.rules.map((r) => r.name), ['any']);
  const error = await refused(join(dir, 'two'));
  t.same(error.problems, [
    { path: '', line: 1, column: 1, message: "drop's own format (a mapping with rules:) is one file on its own; with several files, each is a Falco Talon rules file (a list)", file: join(dir, 'two', 'a.yaml') },
  ]);
});

t.test('what cannot be read is named: a missing file, an empty directory, an empty list, a YAML error in one of several files', async (t) => {
  const dir = t.testdir({ empty: {}, 'rules.yaml': rules, 'broken.yaml': '- rule: [\n' });
  const missing = await refused(`${join(dir, 'rules.yaml')},${join(dir, 'nope.yaml')}`);
  t.equal(missing.problems[0]!.file, join(dir, 'nope.yaml'));
  t.match(missing.message, /cannot read: ENOENT/);
  t.match((await refused(join(dir, 'empty'))).message, `invalid policy ${join(dir, 'empty')} (1 problem):\n  ${join(dir, 'empty')} /: the directory holds no .yaml or .yml file`);
  t.match((await refused(' , ')).problems, [{ message: 'names no file' }]);
  const broken = await refused(`${join(dir, 'rules.yaml')},${join(dir, 'broken.yaml')}`);
  t.match(broken.problems, [{ file: join(dir, 'broken.yaml'), line: 2 }]);
});

t.test('DROP_TALON_UNSUPPORTED=skip: what was left out is returned, to be logged', async (t) => {
  const dir = t.testdir({ 'rules.yaml': `${rules}- rule: Drain\n  match: {rules: [x]}\n  actions: [{action: Drain, actionner: kubernetes:drain}]\n` });
  const loaded = await loadPolicyFiles(join(dir, 'rules.yaml'), { talonUnsupported: 'skip' });
  t.same(loaded.policy.rules.map((r) => r.name), ['Shell']);
  t.match(loaded.skipped, [
    { line: 9, column: 13, message: /^rule "Drain": action "Drain" skipped: actionner "kubernetes:drain" is not supported by drop/ },
    { line: 7, column: 3, message: 'rule "Drain" dropped: none of its actions is left to run' },
  ]);
  t.match((await refused(join(dir, 'rules.yaml'))).message, /9:34 \/1\/actions\/0\/actionner|\/2\/actions\/0\/actionner: actionner "kubernetes:drain" is not supported/);
});

t.test('a path that is there but cannot be read as a file is named', async (t) => {
  const dir = t.testdir({ 'rules.yaml': rules });
  // A Unix socket (its path short, as sockets need): stat finds it, reading it fails (root reads
  // any file, whatever its mode).
  const socket = join(mkdtempSync(join(tmpdir(), 'drop-')), 'policy.sock');
  const server = net.createServer().listen(socket);
  await once(server, 'listening');
  t.teardown(() => server.close());
  const error = await refused(`${join(dir, 'rules.yaml')},${socket}`);
  t.match(error.problems, [{ file: socket, message: /^cannot read: / }]);
});

t.test('several files with no rule in any are refused, and say why', async (t) => {
  const dir = t.testdir({ 'a.yaml': override, 'b.yaml': override });
  t.match((await refused(`${join(dir, 'a.yaml')},${join(dir, 'b.yaml')}`)).message, /no response rule: the files hold 1 "- action:" block and no "- rule:" block/);
});

t.test('a problem in a document with nothing in it has no place; the same problem found twice is listed once', async (t) => {
  const list = new ProblemList(parseDocument(''), new LineCounter());
  list.add('/x', 'm');
  list.add('/x', 'm');
  t.same(list.problems, [{ path: '/x', line: undefined, column: undefined, message: 'm' }]);
});

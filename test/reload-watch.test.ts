import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { PolicyWatch, policyDirs, type PolicyWatchOptions } from '../src/policy-watch.ts';
import { ConfigMapVolume } from './helpers/configmap-volume.ts';

const hour = 3_600_000;

/** Waits, polling, until `done()` holds; fails the test with `what` after a generous minute. */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A watch that counts its checks and the directories it could not watch; stopped at the test's end. */
function counting(t: Test, options: Partial<PolicyWatchOptions> & Pick<PolicyWatchOptions, 'dirs'>) {
  const seen = { checks: 0, watchErrors: [] as { dir: string; error: Error }[] };
  const watch = new PolicyWatch({
    check: async () => {
      seen.checks++;
    },
    everyMs: hour,
    onWatchError: (dir, error) => seen.watchErrors.push({ dir, error }),
    ...options,
  }).start();
  t.teardown(() => watch.stop());
  return { watch, seen };
}

t.test('a kubelet update of a ConfigMap volume (..data swapped by rename) makes a check, with no timer', async (t) => {
  const volume = new ConfigMapVolume({ 'policy.yaml': 'rules: []\n' });
  t.teardown(() => rmSync(volume.dir, { recursive: true }));
  const { watch, seen } = counting(t, { dirs: policyDirs(volume.path('policy.yaml'), [volume.path('policy.yaml')]) });
  t.same(watch.watching, [volume.dir], 'the directory holding the file, not the file (a symlink the update never touches)');
  const before = volume.current;
  volume.update({ 'policy.yaml': 'rules: [changed]\n' });
  t.not(volume.current, before, 'the kubelet pointed ..data at a new directory');
  await until(() => seen.checks > 0, 'a check after the swap');
  t.same(seen.watchErrors, []);
});

t.test('a burst of changes makes one check once it settles', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drop-watch-'));
  t.teardown(() => rmSync(dir, { recursive: true }));
  const { seen } = counting(t, { dirs: [dir], settleMs: 1000 });
  for (let i = 0; i < 20; i++) writeFileSync(join(dir, `rules-${i}.yaml`), `# ${i}\n`);
  await until(() => seen.checks > 0, 'the check after the burst');
  // Long enough for a second check to have come, were the burst not folded into one.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  t.equal(seen.checks, 1);
});

t.test('checks on the timer when no event comes, and says once that a directory cannot be watched', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'drop-watch-'));
  t.teardown(() => rmSync(parent, { recursive: true }));
  const missing = join(parent, 'policies');
  const { watch, seen } = counting(t, { dirs: [missing], everyMs: 50 });
  await until(() => seen.checks >= 3, 'three checks on the timer');
  t.same(watch.watching, []);
  t.equal(seen.watchErrors.length, 1, 'said once, not at every tick');
  t.match(seen.watchErrors[0], { dir: missing, error: { code: 'ENOENT' } });

  // Once it exists, the next tick watches it; gone again, it is said again.
  mkdirSync(missing);
  await until(() => watch.watching.length === 1, 'the directory watched once it exists');
  rmSync(missing, { recursive: true });
  await until(() => seen.watchErrors.length === 2, 'the directory gone again');
  t.same(watch.watching, []);
});

t.test('a directory replaced through a symlink swap (as git-sync does) is watched anew at the next tick', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'drop-watch-'));
  t.teardown(() => rmSync(root, { recursive: true }));
  mkdirSync(join(root, 'rev-1'));
  mkdirSync(join(root, 'rev-2'));
  symlinkSync('rev-1', join(root, 'current'));
  const dir = join(root, 'current');
  const { watch, seen } = counting(t, { dirs: [dir], settleMs: 10 });
  symlinkSync('rev-2', join(root, 'current-tmp'));
  renameSync(join(root, 'current-tmp'), dir);
  rmSync(join(root, 'rev-1'), { recursive: true });
  // The tick the timer would make: the new directory is watched, and checked once.
  await watch.tick();
  // The next tick keeps that watch (same directory, same inode).
  await watch.tick();
  const afterTick = seen.checks;
  writeFileSync(join(root, 'rev-2', 'policy.yaml'), 'rules: []\n');
  await until(() => seen.checks > afterTick, 'a check from an event in the new directory');
  t.same(seen.watchErrors, []);
});

t.test('a watch that fails is said, and watched again at the next tick', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drop-watch-'));
  t.teardown(() => rmSync(dir, { recursive: true }));
  const { watch, seen } = counting(t, { dirs: [dir], everyMs: 50 });
  // What inotify reports when it runs out of watches, delivered as Node delivers it.
  const held = (watch as unknown as { watchers: Map<string, { watcher: NodeJS.EventEmitter }> }).watchers.get(dir)!;
  held.watcher.emit('error', Object.assign(new Error('ENOSPC: System limit for number of file watchers reached'), { code: 'ENOSPC' }));
  t.match(seen.watchErrors, [{ dir, error: { code: 'ENOSPC' } }]);
  await until(() => watch.watching.length === 1, 'watched again');
});

t.test('a check asked for while one runs runs once more after it; stop waits for it', async (t) => {
  let release: () => void = () => {};
  let runs = 0;
  const watch = new PolicyWatch({
    dirs: [],
    check: async () => {
      runs++;
      await new Promise<void>((resolve) => (release = resolve));
    },
    everyMs: hour,
    onWatchError: () => {},
  }).start();
  const first = watch.check();
  await until(() => runs === 1, 'the first check running');
  const second = watch.check();
  const third = watch.check();
  t.equal(second, first, 'one run of checks');
  t.equal(third, first);
  release();
  await until(() => runs === 2, 'the one check asked for during the first');
  // Asked for again, then stopped while the second runs: stop waits for it, and no third comes.
  void watch.check();
  let stopped = false;
  const stopping = watch.stop().then(() => (stopped = true));
  await new Promise((resolve) => setImmediate(resolve));
  t.notOk(stopped, 'stop waits for the check under way');
  release();
  await stopping;
  await first;
  t.equal(runs, 2, 'two asked during one check make one more, not two; none after stop');
});

t.test('a failing check does not stop the checks after it', async (t) => {
  let runs = 0;
  const watch = new PolicyWatch({
    dirs: [],
    check: async () => {
      runs++;
      if (runs === 1) throw new Error('boom');
    },
    everyMs: hour,
    onWatchError: () => {},
  });
  await t.rejects(watch.check(), { message: 'boom' });
  await watch.check();
  t.equal(runs, 2);
});

t.test('policyDirs: each directory entry, the directory of each file entry and of each file read, once', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'drop-dirs-'));
  t.teardown(() => rmSync(root, { recursive: true }));
  mkdirSync(join(root, 'rules.d'));
  mkdirSync(join(root, 'etc'));
  const spec = ` ${join(root, 'etc', 'rules.yaml')} ,${join(root, 'rules.d')},,${join(root, 'etc', 'rules_override.yaml')}`;
  const files = [join(root, 'etc', 'rules.yaml'), join(root, 'rules.d', 'a.yaml'), join(root, 'other', 'b.yaml')];
  t.same(policyDirs(spec, files), [join(root, 'etc'), join(root, 'rules.d'), join(root, 'other')]);
});

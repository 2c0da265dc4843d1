import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { root, runRelease, tempDir } from './run-release.ts';

t.test('the committed release.yaml and release-standalone.yaml are what `npm run release:yaml` makes of config/ now', async (t) => {
  const dir = tempDir('drift');
  const run = await runRelease(['--yaml-only', '--out', join(dir, 'release.yaml')]);
  t.equal(run.code, 0, run.stderr);
  t.same(run.calls, [], 'no docker');
  for (const file of ['release.yaml', 'release-standalone.yaml']) {
    const fresh = readFileSync(join(dir, file), 'utf8');
    const committed = readFileSync(join(root, file), 'utf8');
    // t.equal on two long texts prints the diff; the message says how to fix it.
    t.equal(committed, fresh, `${file} is stale: run \`npm run release:yaml\` and commit it`);
  }
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { root, runRelease, tempDir } from './run-release.ts';

t.test('the committed release.yaml is what `npm run release:yaml` makes of config/ now', async (t) => {
  const out = join(tempDir('drift'), 'release.yaml');
  const run = await runRelease(['--yaml-only', '--out', out]);
  t.equal(run.code, 0, run.stderr);
  t.same(run.calls, [], 'no docker');
  const fresh = readFileSync(out, 'utf8');
  const committed = readFileSync(join(root, 'release.yaml'), 'utf8');
  // t.equal on two long texts prints the diff; the message says how to fix it.
  t.equal(committed, fresh, 'release.yaml is stale: run `npm run release:yaml` and commit it');
});

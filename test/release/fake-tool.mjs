// A stand-in for docker and kind in the release tool's tests (no Docker engine needed).
// It appends its argv as one JSON line to $FAKE_TOOL_LOG, and for `docker buildx build`
// writes buildx's --metadata-file with $FAKE_DOCKER_DIGEST as the pushed digest (none when
// that is unset; $FAKE_DOCKER_METADATA replaces the whole file, $FAKE_DOCKER_NO_METADATA skips
// it). $FAKE_<TOOL>_EXIT makes it fail with that exit code and $FAKE_<TOOL>_STDERR;
// $FAKE_<TOOL>_KILLED makes it die by SIGKILL.
import { appendFileSync, writeFileSync } from 'node:fs';

const [tool = '', ...args] = process.argv.slice(2);
const env = process.env;
if (!tool) {
  // Run without a tool name (e.g. `npx tap test/release/` runs every file here): nothing to fake.
  process.stdout.write('usage: fake-tool.mjs docker|kind [args...]\n');
  process.exit(0);
}
if (env.FAKE_TOOL_LOG) appendFileSync(env.FAKE_TOOL_LOG, JSON.stringify([tool, ...args]) + '\n');

const exit = Number(env[`FAKE_${tool.toUpperCase()}_EXIT`] ?? 0);
if (exit !== 0) {
  process.stderr.write((env[`FAKE_${tool.toUpperCase()}_STDERR`] ?? `${tool} failed`) + '\n');
  process.exit(exit);
}
if (env[`FAKE_${tool.toUpperCase()}_KILLED`]) process.kill(process.pid, 'SIGKILL');
const metadata = args.indexOf('--metadata-file');
if (tool === 'docker' && args[0] === 'buildx' && metadata >= 0 && !env.FAKE_DOCKER_NO_METADATA) {
  const content = { 'buildx.build.ref': 'default/default/fake', 'containerimage.config.digest': 'sha256:' + 'c'.repeat(64) };
  if (env.FAKE_DOCKER_DIGEST) content['containerimage.digest'] = env.FAKE_DOCKER_DIGEST;
  writeFileSync(args[metadata + 1], env.FAKE_DOCKER_METADATA ?? JSON.stringify(content, null, 2));
}
process.stdout.write(`fake ${tool}: done\n`);

#!/usr/bin/env node
// `npm run release`: ko-like release of falco-drop (ko itself builds Go only).
//   KO_DOCKER_REPO=ghcr.io/you npm run release          build amd64+arm64, push, pin the digest
//   npm run release -- --local | kubectl apply -f -      build, kind load, reference kind.local/...
//   npm run release:yaml                                 regenerate release.yaml, no Docker
//   npm run release -- --dry-run                         print the commands, write nothing
// release.yaml (or --out) is written to a temporary file and renamed only on success: a failed
// build or push leaves it as it was. `node hack/release.mjs --help` lists every option.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { formatCommand, planCommands, readPushedDigest, requireOnPath, run } from './release/docker.mjs';
import { checkConfig, ReleaseError, renderRelease } from './release/manifests.mjs';
import { defaultImageRepo, imagePlaceholder, parseOptions, usage, UsageError } from './release/options.mjs';

function main() {
  const options = parseOptions(process.argv.slice(2), process.env);
  if (options.help) {
    process.stdout.write(usage + '\n');
    return;
  }
  const texts = checkConfig(options.configDir);
  const target = options.out === '-' ? 'stdout' : displayPath(options.out);

  if (options.mode === 'yaml-only') {
    const image = `${defaultImageRepo}:${options.tag}`;
    if (options.dryRun) {
      process.stdout.write(`# --yaml-only runs no docker command\n# would write ${target}: ${imagePlaceholder} -> ${image}, app.kubernetes.io/version "${options.version}"\n`);
      return;
    }
    write(options.out, renderRelease(texts, { image, version: options.version }));
    return;
  }

  if (options.mode === 'push' && !options.repo) {
    throw new ReleaseError('KO_DOCKER_REPO is not set: set it to the registry to push to (e.g. KO_DOCKER_REPO=ghcr.io/you), or use --local or --yaml-only');
  }
  const work = options.dryRun ? undefined : mkdtempSync(join(tmpdir(), 'falco-drop-release-'));
  try {
    const plan = planCommands(options, work ? join(work, 'metadata.json') : '<tmp>/metadata.json');
    if (options.dryRun) {
      for (const command of plan.commands) process.stdout.write(formatCommand(command) + '\n');
      const image = plan.image ?? `${plan.repo}@<pushed digest>`;
      process.stdout.write(`# then write ${target}: ${imagePlaceholder} -> ${image}, app.kubernetes.io/version "${options.version}"\n`);
      return;
    }
    requireOnPath('docker', 'install Docker with buildx, or run `npm run release:yaml` to regenerate release.yaml without building');
    if (options.mode === 'local') requireOnPath('kind', 'install kind (https://kind.sigs.k8s.io), or push to a registry with KO_DOCKER_REPO');
    for (const command of plan.commands) run(command);
    const image = plan.image ?? `${plan.repo}@${readPushedDigest(join(work, 'metadata.json'))}`;
    write(options.out, renderRelease(texts, { image, version: options.version }));
    process.stderr.write(`release: ${target} uses ${image}\n`);
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
  }
}

/** A path as the user would write it: relative when it is under the working directory. */
function displayPath(path) {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

/** Writes the release atomically: a temporary file next to the target, renamed over it. */
function write(out, { release }) {
  if (out === '-') {
    process.stdout.write(release);
    return;
  }
  const temporary = join(dirname(out), `.${basename(out)}.${process.pid}.tmp`);
  try {
    writeFileSync(temporary, release);
    renameSync(temporary, out);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw new ReleaseError(`cannot write ${out}: ${error.code}`);
  }
}

try {
  main();
} catch (error) {
  // Anything else is a bug, not a user's mistake: let node print its stack.
  /* c8 ignore next */
  if (!(error instanceof ReleaseError || error instanceof UsageError)) throw error;
  process.stderr.write(`release: ${error.message}${error instanceof UsageError ? '' : ' (release not written)'}\n`);
  process.exit(error instanceof UsageError ? 2 : 1);
}

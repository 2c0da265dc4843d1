#!/usr/bin/env node
// `npm run release`: ko-like release of falco-drop (ko itself builds Go only).
//   KO_DOCKER_REPO=ghcr.io/you npm run release          build amd64+arm64, push, pin the digest
//   npm run release -- --local | kubectl apply -f -      build, kind load, reference kind.local/...
//   npm run release -- --local --standalone | kubectl apply -f -   the same, without Knative
//   npm run release:yaml                                 regenerate both releases, no Docker
//   npm run release -- --dry-run                         print the commands, write nothing
// Two releases: release.yaml (Knative, from config/) and release-standalone.yaml (no Knative,
// from config/standalone/ and the files of config/ that hold no Knative object).
// Each is written to a temporary file and renamed only once every one is written: a failed
// build or push leaves them as they were. `node hack/release.mjs --help` lists every option.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { formatCommand, planCommands, readPushedDigest, requireOnPath, run } from './release/docker.mjs';
import { checkConfig, checkStandalone, ReleaseError, renderRelease, standaloneDir } from './release/manifests.mjs';
import { defaultImageRepo, imagePlaceholder, parseOptions, standaloneOut, usage, UsageError } from './release/options.mjs';

function main() {
  const options = parseOptions(process.argv.slice(2), process.env);
  if (options.help) {
    process.stdout.write(usage + '\n');
    return;
  }
  const releases = plannedReleases(options);

  if (options.mode === 'yaml-only') {
    const image = `${defaultImageRepo}:${options.tag}`;
    if (options.dryRun) {
      process.stdout.write('# --yaml-only runs no docker command\n');
      for (const { out } of releases) process.stdout.write(`# would write ${target(out)}: ${imagePlaceholder} -> ${image}, app.kubernetes.io/version "${options.version}"\n`);
      return;
    }
    writeAll(releases, image, options.version);
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
      for (const { out } of releases) process.stdout.write(`# then write ${target(out)}: ${imagePlaceholder} -> ${image}, app.kubernetes.io/version "${options.version}"\n`);
      return;
    }
    requireOnPath('docker', 'install Docker with buildx, or run `npm run release:yaml` to regenerate release.yaml without building');
    if (options.mode === 'local') requireOnPath('kind', 'install kind (https://kind.sigs.k8s.io), or push to a registry with KO_DOCKER_REPO');
    for (const command of plan.commands) run(command);
    const image = plan.image ?? `${plan.repo}@${readPushedDigest(join(work, 'metadata.json'))}`;
    writeAll(releases, image, options.version);
    for (const { out } of releases) process.stderr.write(`release: ${target(out)} uses ${image}\n`);
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The releases to write, each checked before any build: release.yaml to --out and
 * release-standalone.yaml next to it; with --standalone, only the second, to --out. stdout
 * takes one release only.
 */
function plannedReleases(options) {
  const texts = checkConfig(options.configDir);
  const standalone = checkStandalone(options.configDir, texts);
  if (options.standalone) {
    if (!standalone) throw new ReleaseError(`no ${standaloneDir}/ folder in ${options.configDir}: nothing to release without Knative`);
    return [{ texts: standalone, standalone: true, out: options.out }];
  }
  const releases = [{ texts, standalone: false, out: options.out }];
  if (standalone && options.out !== '-') releases.push({ texts: standalone, standalone: true, out: standaloneOut(options.out) });
  return releases;
}

/** Where a release goes, as the user would write it: relative when it is under the working directory. */
function target(out) {
  if (out === '-') return 'stdout';
  const rel = relative(process.cwd(), out);
  return rel.startsWith('..') ? out : rel;
}

/**
 * Writes the releases atomically: each to a temporary file next to its target, and only once
 * all are written, each renamed over its target.
 */
function writeAll(releases, image, version) {
  const rendered = releases.map(({ texts, standalone, out }) => ({ out, release: renderRelease(texts, { image, version, standalone }).release }));
  const temporaries = [];
  try {
    for (const { out, release } of rendered) {
      if (out === '-') continue;
      const temporary = join(dirname(out), `.${basename(out)}.${process.pid}.tmp`);
      temporaries.push({ out, temporary });
      attempt(out, () => writeFileSync(temporary, release));
    }
    for (const { out, temporary } of temporaries) attempt(out, () => renameSync(temporary, out));
  } finally {
    for (const { temporary } of temporaries) rmSync(temporary, { force: true });
  }
  for (const { out, release } of rendered) if (out === '-') process.stdout.write(release);
}

/** Runs one write of `out`; a failure is the user's to fix (a missing folder, a directory in the way). */
function attempt(out, write) {
  try {
    write();
  } catch (error) {
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

// The docker and kind commands the release runs, and running them.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { delimiter, join, relative } from 'node:path';
import { ReleaseError } from './manifests.mjs';
import { imageName, localImageRepo } from './options.mjs';

/** Both architectures Knative clusters commonly run on; buildx builds them in one go. */
export const releasePlatforms = 'linux/amd64,linux/arm64';

/** This machine's platform, for a --local build that kind can run without emulation. */
export function localPlatform() {
  // Node's names for the architectures are Docker's, but for these two.
  return `linux/${process.arch.replace(/^x64$/, 'amd64').replace(/^ppc64$/, 'ppc64le')}`;
}

/**
 * The commands of a release, each as [program, ...args]. `metadataFile` is where buildx writes
 * what it pushed; its `containerimage.digest` is the digest of the pushed manifest list.
 */
export function planCommands(options, metadataFile) {
  const context = relative(process.cwd(), options.context) || '.';
  const label = `org.opencontainers.image.version=${options.version}`;
  if (options.mode === 'local') {
    const ref = `${localImageRepo}:${options.tag}`;
    return {
      image: ref,
      commands: [
        ['docker', 'buildx', 'build', '--platform', localPlatform(), '--tag', ref, '--label', label, '--load', context],
        ['kind', 'load', 'docker-image', ref, '--name', options.kindCluster],
      ],
    };
  }
  const repo = `${options.repo}/${imageName}`;
  return {
    repo,
    commands: [
      ['docker', 'buildx', 'build', '--platform', releasePlatforms, '--tag', `${repo}:${options.tag}`, '--label', label, '--metadata-file', metadataFile, '--push', context],
    ],
  };
}

/** A command as a user would type it in a POSIX shell. */
export function formatCommand(command) {
  return command.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
}

/** Throws a clear error naming the missing program before anything runs. */
export function requireOnPath(program, hint) {
  for (const dir of `${process.env.PATH}`.split(delimiter)) {
    const candidate = join(dir, program);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here: keep looking
    }
  }
  throw new ReleaseError(`${program} is not on PATH: ${hint}`);
}

/** Runs a command with its output on stderr (stdout may be carrying the release). */
export function run(command) {
  const [program, ...args] = command;
  const result = spawnSync(program, args, { stdio: ['ignore', 2, 2] });
  if (result.error) throw new ReleaseError(`${program} could not be started: ${result.error.code}`);
  if (result.status !== 0) {
    const how = result.status === null ? `was killed by ${result.signal}` : `exited ${result.status}`;
    throw new ReleaseError(`${formatCommand(command.slice(0, 3))} ${how} (its output is above)`);
  }
}

/** The pushed digest from buildx's --metadata-file, never a local image id. */
export function readPushedDigest(metadataFile) {
  let metadata;
  try {
    metadata = JSON.parse(readFileSync(metadataFile, 'utf8'));
  } catch (error) {
    throw new ReleaseError(`docker buildx wrote no readable --metadata-file (${error.code ?? error.message}): was the image pushed?`);
  }
  const digest = metadata['containerimage.digest'];
  if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest)) {
    throw new ReleaseError(`docker buildx metadata has no pushed digest (containerimage.digest is ${JSON.stringify(digest)})`);
  }
  return digest;
}

// Runs hack/release.mjs as a user does (a subprocess), with the fake docker and kind of
// test/release/bin first on PATH, and reads back what they were asked to do.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const root = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const fakeBin = new URL('bin', import.meta.url).pathname;
export const releaseScript = join(root, 'hack', 'release.mjs');

export interface ReleaseRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Every call to the fake docker or kind: [tool, ...argv]. */
  readonly calls: string[][];
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `drop-release-${prefix}-`));
}

/** The tool's own settings: a developer's KO_DOCKER_REPO (or a fake's) never leaks into a test. */
const settings = /^(KO_DOCKER_REPO|KIND_CLUSTER_NAME|RELEASE_.*|FAKE_.*)$/;

/**
 * Runs the release tool in the repository root with the fake tools alone on PATH (unless `path`
 * says otherwise) and the given settings. The rest of the environment is passed on, so tap
 * measures the tool's coverage in the child as it does in-process.
 */
export async function runRelease(args: string[], env: Record<string, string> = {}, path: string = fakeBin): Promise<ReleaseRun> {
  const log = join(tempDir('log'), 'calls.jsonl');
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !settings.test(k)));
  const child = spawn(process.execPath, [releaseScript, ...args], {
    cwd: root,
    env: { ...inherited, PATH: path, FAKE_NODE: process.execPath, FAKE_TOOL_LOG: log, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  const calls = existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as string[])
    : [];
  return { code, stdout, stderr, calls };
}

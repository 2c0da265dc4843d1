/**
 * When to read the policy again: on any change in the directories that hold its files, and
 * every `everyMs` whatever the watches saw.
 *
 * A ConfigMap volume is written by the kubelet's atomic writer: the files live in a hidden
 * timestamped directory (`..2026_11_26_12_00_00.123456789`), `..data` is a symlink to it, and
 * each visible file is a symlink through `..data`. An update writes a new timestamped directory
 * and renames a new symlink over `..data`. The files themselves never change, so watching them
 * sees nothing: the directory that holds them is watched instead (the rename is an event there).
 * inotify through symlinks, overlay and network filesystems can still miss a swap, so a timer
 * checks as well; a check compares the sha256 of the files' bytes, so it costs no reload when
 * nothing changed.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';

export interface PolicyWatchOptions {
  /** The directories to watch (policyDirs). */
  readonly dirs: readonly string[];
  /** Reads the policy again and applies it or refuses it; its failures are its own to report. */
  readonly check: () => Promise<void>;
  /** The fallback: a check this often (DROP_POLICY_CHECK_SECONDS), whatever the watches saw. */
  readonly everyMs: number;
  /**
   * Changes come in bursts (the kubelet writes a directory, links it, removes the old one): one
   * check this long after the last event of a burst (default 100 ms).
   */
  readonly settleMs?: number;
  /** A directory that cannot be watched (said once until it can be again); the timer still checks. */
  readonly onWatchError: (dir: string, error: Error) => void;
}

/**
 * The directories that hold the policy's files: each entry of DROP_POLICY that is a directory,
 * the directory of each entry that is not, and of each file read (their union, each once).
 */
export function policyDirs(spec: string, files: readonly string[]): string[] {
  const entries = spec.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  const dirs = entries.map((entry) => (statSync(entry, { throwIfNoEntry: false })?.isDirectory() ? entry : dirname(entry)));
  return [...new Set([...dirs, ...files.map((file) => dirname(file))].map((dir) => resolve(dir)))];
}

export class PolicyWatch {
  /** Each directory watched, with the inode watched: a directory replaced is watched again. */
  private readonly watchers = new Map<string, { readonly watcher: FSWatcher; readonly ino: number }>();
  /** Directories whose failure to be watched was reported (reported again only after a success). */
  private readonly failing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  constructor(private readonly options: PolicyWatchOptions) {}

  /** Watches the directories and starts the timer; neither keeps the process alive. */
  start(): this {
    this.watchAll();
    this.timer = setInterval(() => void this.tick(), this.options.everyMs);
    this.timer.unref();
    return this;
  }

  /**
   * What the timer does: a directory that could not be watched is tried again, one replaced (a
   * symlink to it swapped, as git-sync does) is watched anew, since a watch follows the
   * directory it was given; then a check.
   */
  tick(): Promise<void> {
    this.watchAll();
    return this.check();
  }

  /** The directories watched right now. */
  get watching(): string[] {
    return [...this.watchers.keys()];
  }

  /**
   * Checks now, or, when a check is running, once more after it (what changed during a check
   * may have been read before the change). Resolves when no check is left to run.
   */
  check(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = async (): Promise<void> => {
      try {
        do {
          this.again = false;
          await this.options.check();
        } while (this.again && !this.stopped);
      } finally {
        this.running = undefined;
      }
    };
    this.running = run();
    return this.running;
  }

  /** Stops watching and checking; resolves once a check under way has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.settle);
    for (const dir of this.watching) this.unwatch(dir);
    await this.running;
  }

  private watchAll(): void {
    for (const dir of this.options.dirs) {
      try {
        const { ino } = statSync(dir);
        if (this.watchers.get(dir)?.ino === ino) continue;
        this.unwatch(dir);
        const watcher = watch(dir, { persistent: false }, () => this.soon());
        watcher.on('error', (error) => {
          this.unwatch(dir);
          this.failed(dir, error);
        });
        this.watchers.set(dir, { watcher, ino });
        this.failing.delete(dir);
      } catch (error) {
        this.unwatch(dir);
        this.failed(dir, error as Error);
      }
    }
  }

  private unwatch(dir: string): void {
    this.watchers.get(dir)?.watcher.close();
    this.watchers.delete(dir);
  }

  private failed(dir: string, error: Error): void {
    if (this.failing.has(dir)) return;
    this.failing.add(dir);
    this.options.onWatchError(dir, error);
  }

  /** A check once the burst of events is over. */
  private soon(): void {
    clearTimeout(this.settle);
    this.settle = setTimeout(() => void this.check(), this.options.settleMs ?? 100);
    this.settle.unref();
  }
}

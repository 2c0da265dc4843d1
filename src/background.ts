/**
 * What a response still writes after its answer: the outcome recorded on each claim (retried
 * until written or the claim's working time is over) and the Kubernetes Events. The answer does
 * not wait for them; the app's close does (src/app.ts), within the shutdown's close timeout, so
 * a SIGTERM never drops a record that could still be written.
 */
import type { Logger } from 'pino';

export class Background {
  private readonly tasks = new Set<Promise<void>>();
  private readonly stop = new AbortController();
  constructor(readonly log: Pick<Logger, 'info' | 'warn'>) {}

  /** Aborted once the work is abandoned: retries stop waiting and give up. */
  get signal(): AbortSignal {
    return this.stop.signal;
  }

  /** How many tasks are still running. */
  get pending(): number {
    return this.tasks.size;
  }

  /** Runs `task` after the answer; its failure is the task's to log (a rejection is swallowed). */
  run(task: () => Promise<void>): void {
    const running: Promise<void> = task()
      .catch(() => undefined)
      .finally(() => this.tasks.delete(running));
    this.tasks.add(running);
  }

  /** Resolves once every task has ended, those started meanwhile included. */
  async drain(): Promise<void> {
    if (this.tasks.size > 0) this.log.info({ pending: this.tasks.size }, `waiting for ${this.tasks.size} outcome records and Events to be written`);
    while (this.tasks.size > 0) await Promise.all(this.tasks);
  }

  /** Gives up on what is still running (a retry waiting for its turn ends at once). */
  abandon(): void {
    this.stop.abort();
  }
}

/** Waits `ms`, or less when `signal` aborts first; true when it waited the whole time. */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (waited: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(waited);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener('abort', onAbort);
  });
}

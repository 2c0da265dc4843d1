/**
 * The service's log output, with a bound on the bytes written but not yet out. Lines go to
 * stdout in the background (pino's sonic-boom), which is fast until the lines come faster than
 * stdout takes them: a CloudEvents batch of 1,000 alerts makes 1,000 lines at once, and a flood
 * of batches grew the unwritten lines until the heap ran out (`BENCH_ONLY=flood
 * BENCH_FLOOD_EACH=1 npm run bench`, before this). Dropping lines is no answer: every event keeps
 * its line. So the service reads no new request while more than `maxPendingBytes` wait to be
 * written (`room()`), as it reads no body that does not fit its body budget.
 */

/** What LogOutput needs of the stream: sonic-boom's write, its 'write' event (bytes out), flush. */
export interface LineStream {
  write(line: string): boolean;
  flush(callback?: (error?: Error) => unknown): void;
  on(event: 'write', listener: (bytes: number) => void): unknown;
  on(event: 'close' | 'error', listener: () => void): unknown;
}

/** Unwritten log bytes the service lets wait before it stops reading requests: 4 MiB. */
export const defaultMaxPendingLogBytes = 4 * 1024 * 1024;

export class LogOutput {
  private pendingBytes = 0;
  private waiting: (() => void)[] = [];
  private broken = false;

  constructor(
    private readonly stream: LineStream,
    readonly maxPendingBytes = defaultMaxPendingLogBytes,
  ) {
    stream.on('write', (bytes) => {
      this.pendingBytes = Math.max(0, this.pendingBytes - bytes);
      if (this.pendingBytes <= this.maxPendingBytes) this.release();
    });
    // A stream that can write no more never drains: waiting on it would stop the service.
    const broken = () => {
      this.broken = true;
      this.release();
    };
    stream.on('close', broken);
    stream.on('error', broken);
  }

  /** pino's destination: each line, counted until it is out. */
  write(line: string): boolean {
    this.pendingBytes += Buffer.byteLength(line);
    return this.stream.write(line);
  }

  /** pino's logger.flush() reaches the stream through this. */
  flush(callback?: (error?: Error) => unknown): void {
    this.stream.flush(callback);
  }

  /** Bytes of lines written to the stream and not yet out. */
  get pending(): number {
    return this.pendingBytes;
  }

  /** Undefined while there is room; else resolves once the unwritten lines are back under the bound. */
  room(): Promise<void> | undefined {
    if (this.broken || this.pendingBytes <= this.maxPendingBytes) return undefined;
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }
}

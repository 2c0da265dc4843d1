/**
 * How drop stops, in the platform's two orders:
 * - Knative: queue-proxy drains first (its preStop hook returns 30 s after the last request),
 *   then drop gets SIGTERM with no traffic left;
 * - a node drain, a misordered kill, a plain Deployment: SIGTERM first, while the endpoints
 *   controller and kube-proxy still send traffic for a few seconds.
 *
 * On SIGTERM the service drains: `/readyz` answers 503 at once, alerts are still answered as
 * usual for `drainMs`, each with `connection: close` so keep-alive clients move to another
 * replica. Then it closes: no new connections; a request still arriving on an open connection
 * is answered 503 DROP_SHUTTING_DOWN (retried by the Broker); what is in flight finishes, for at
 * most `closeTimeoutMs`. SIGINT (Ctrl-C) skips the drain, also when one is under way; a second
 * SIGTERM changes nothing.
 */

/** serving: normal. draining: answering, not ready, closing connections. closing: refusing. */
export type Phase = 'serving' | 'draining' | 'closing';

/** The phase the app reads on every request: shared by the app and the shutdown. */
export class Lifecycle {
  phase: Phase = 'serving';
}

/** Default drain (DROP_DRAIN_SECONDS): what endpoint removal takes to reach every proxy. */
export const defaultDrainSeconds = 10;

/**
 * The longest drop waits, once closed to new work, for the requests in flight. A response makes
 * a handful of API calls of at most DROP_API_TIMEOUT_MS (5 s) each; past this, what is still in
 * flight is cut, and the Broker redelivers it (a claim left without an outcome is resumed).
 */
export const closeTimeoutSeconds = 20;

export interface ShutdownOptions {
  readonly lifecycle: Lifecycle;
  readonly drainMs: number;
  readonly closeTimeoutMs: number;
  /** Stops accepting and resolves once the requests in flight are answered (Fastify's app.close). */
  readonly close: () => Promise<void>;
  /** Cuts every connection still open (when the close timeout passes). */
  readonly cutConnections: () => void;
  readonly log: { info(fields: object, msg: string): void; warn(fields: object, msg: string): void };
}

/** What ended the shutdown: every request answered, or the close timeout with some cut. */
export type ShutdownResult = 'closed' | 'timed-out';

/**
 * Runs the shutdown once; `signal` may be called again with later signals (SIGINT cuts the
 * drain short). Resolves when the service has closed.
 */
export class Shutdown {
  private started: Promise<ShutdownResult> | undefined;
  private endDrain: (() => void) | undefined;

  constructor(private readonly options: ShutdownOptions) {}

  signal(name: 'SIGTERM' | 'SIGINT'): Promise<ShutdownResult> {
    if (this.started) {
      this.options.log.info({ signal: name }, name === 'SIGINT' ? 'SIGINT: skipping the rest of the drain' : `${name} again: the drain goes on`);
      if (name === 'SIGINT') this.endDrain?.();
      return this.started;
    }
    this.started = this.run(name);
    return this.started;
  }

  private async run(signal: 'SIGTERM' | 'SIGINT'): Promise<ShutdownResult> {
    const { lifecycle, log } = this.options;
    lifecycle.phase = 'draining';
    if (signal === 'SIGTERM' && this.options.drainMs > 0) {
      log.info({ signal, drainMs: this.options.drainMs }, `stopping: not ready; answering as usual for ${this.options.drainMs / 1000} s, asking clients to close their connections`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.drainMs);
        this.endDrain = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    lifecycle.phase = 'closing';
    log.info({ signal }, 'stopping: no new connections; finishing requests in flight');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timed-out'>((resolve) => {
      timer = setTimeout(() => resolve('timed-out'), this.options.closeTimeoutMs);
    });
    const result = await Promise.race([this.options.close().then(() => 'closed' as const), timedOut]);
    clearTimeout(timer);
    if (result === 'timed-out') {
      log.warn({ closeTimeoutMs: this.options.closeTimeoutMs }, 'requests still in flight after the close timeout: cutting them (the Broker redelivers)');
      this.options.cutConnections();
    }
    return result;
  }
}

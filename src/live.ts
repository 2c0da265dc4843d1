/**
 * The live page of decisions (issue 11): this replica's most recent decisions, kept in bounded
 * memory, and the routes that show them on the admin listener: `GET /` the page,
 * `GET /decisions` the same as JSON, `GET /decisions/events` every new decision as it is made
 * (server-sent events). Each replica shows its own; nothing here is shared between replicas.
 */
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Decision } from './decisions.ts';
import { livePageHtml, livePageScript, livePageStyle } from './live-page.ts';

/** A decision as the log keeps it: numbered in the order it was made, from 1. */
export interface LoggedDecision extends Decision {
  readonly seq: number;
}

/** Every decision since the process started, counted. */
export interface DecisionCounters {
  readonly total: number;
  /** By decision: act, skip, ignore, reject. */
  readonly decisions: Readonly<Record<string, number>>;
  /** By outcome: done, dry-run, failed, skipped, retry, refused. */
  readonly outcomes: Readonly<Record<string, number>>;
}

export interface DecisionLogOptions {
  /** Decisions kept, at most (default 500). */
  readonly maxCount?: number;
  /** Bytes of decisions kept (as JSON), at most (default 2 MiB). */
  readonly maxBytes?: number;
  /** Live subscribers (open pages), at most (default 32). */
  readonly maxSubscribers?: number;
}

export const defaultMaxDecisions = 500;
export const defaultMaxDecisionBytes = 2 * 1024 * 1024;
export const defaultMaxSubscribers = 32;

type Listener = (decision: LoggedDecision, json: string) => void;

/**
 * This replica's most recent decisions, newest last, bounded by count and by bytes (the oldest
 * go first), with counters since start and listeners told of each new one. Decisions arrive
 * clipped (src/decisions.ts), so one is a few KB at most.
 */
export class DecisionLog {
  readonly maxCount: number;
  readonly maxBytes: number;
  readonly maxSubscribers: number;
  private readonly kept: { readonly decision: LoggedDecision; readonly json: string; readonly bytes: number }[] = [];
  private keptBytes = 0;
  private seq = 0;
  private readonly byDecision = new Map<string, number>();
  private readonly byOutcome = new Map<string, number>();
  private readonly listeners = new Set<Listener>();

  constructor(options: DecisionLogOptions = {}) {
    this.maxCount = options.maxCount ?? defaultMaxDecisions;
    this.maxBytes = options.maxBytes ?? defaultMaxDecisionBytes;
    this.maxSubscribers = options.maxSubscribers ?? defaultMaxSubscribers;
  }

  /** Records one decision and tells every listener. A DecisionObserver: it neither throws nor waits. */
  readonly add = (decision: Decision): void => {
    const logged: LoggedDecision = { ...decision, seq: ++this.seq };
    const json = JSON.stringify(logged);
    const bytes = Buffer.byteLength(json);
    this.kept.push({ decision: logged, json, bytes });
    this.keptBytes += bytes;
    // The newest is always kept, even alone over the byte bound.
    while (this.kept.length > 1 && (this.kept.length > this.maxCount || this.keptBytes > this.maxBytes)) {
      this.keptBytes -= this.kept.shift()!.bytes;
    }
    this.byDecision.set(decision.decision, (this.byDecision.get(decision.decision) ?? 0) + 1);
    this.byOutcome.set(decision.outcome, (this.byOutcome.get(decision.outcome) ?? 0) + 1);
    for (const listener of this.listeners) {
      try {
        listener(logged, json);
      } catch {
        // A listener is a connection's writer; one that fails must not stop the others or the answer.
        this.listeners.delete(listener);
      }
    }
  };

  /** The decisions kept, newest first. */
  recent(): LoggedDecision[] {
    return this.kept.map((k) => k.decision).reverse();
  }

  /** How many decisions are kept, and their bytes as JSON. */
  get size(): { readonly count: number; readonly bytes: number } {
    return { count: this.kept.length, bytes: this.keptBytes };
  }

  counters(): DecisionCounters {
    return {
      total: this.seq,
      decisions: Object.fromEntries(this.byDecision),
      outcomes: Object.fromEntries(this.byOutcome),
    };
  }

  /** Calls `listener` with each new decision; undefined when `maxSubscribers` are listening already. */
  subscribe(listener: Listener): (() => void) | undefined {
    if (this.listeners.size >= this.maxSubscribers) return undefined;
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }
}

/** What the page and `GET /decisions` say about the replica besides its decisions. */
export interface LiveOptions {
  /** This replica's name (DROP_IDENTITY, else the pod's name). */
  readonly replica: string;
  /** Whether it is in dry-run. */
  readonly dryRun: boolean;
  /** How often an idle event stream says it is alive (default 15 s), so proxies keep it open. */
  readonly heartbeatMs?: number;
  /** Bytes a slow page may leave unread before its stream is closed (default 1 MiB); it reconnects. */
  readonly maxUnreadBytes?: number;
}

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
}

/**
 * The page's own script and style are inline, allowed by their hashes; nothing else runs or
 * loads, and it connects only back to this listener.
 */
export const livePageCsp = [
  "default-src 'none'",
  `script-src ${sha256(livePageScript)}`,
  `style-src ${sha256(livePageStyle)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const pageHeaders = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': livePageCsp,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/**
 * Adds the page's routes to the admin app (src/admin.ts): `liveRoutes(log, options)(app)`.
 * Open event streams are cut when the app closes, so they never hold its close.
 */
export function liveRoutes(log: DecisionLog, options: LiveOptions): (app: FastifyInstance) => void {
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxUnreadBytes = options.maxUnreadBytes ?? 1024 * 1024;
  const snapshot = () => ({ replica: options.replica, dryRun: options.dryRun, maxCount: log.maxCount, counters: log.counters(), recent: log.recent() });

  return (app) => {
    const streams = new Set<ServerResponse>();
    // An open stream never ends by itself: it would hold the listener's close. Closing cuts them
    // (a page still reading would hold a graceful end too).
    app.addHook('preClose', async () => {
      for (const stream of streams) stream.destroy();
    });

    app.get('/', async (_request, reply) => reply.headers(pageHeaders).send(livePageHtml));
    app.get('/decisions', async (_request, reply) => reply.header('cache-control', 'no-store').send(snapshot()));

    app.get('/decisions/events', (_request, reply) => {
      const raw = reply.raw;
      const write = (chunk: string): void => {
        // A page that reads nothing while decisions pour in is cut off rather than buffered without
        // bound (what it left unread is freed at once); its EventSource reconnects and starts again
        // from a snapshot.
        if (raw.writableLength > maxUnreadBytes) raw.destroy();
        else raw.write(chunk);
      };
      const unsubscribe = log.subscribe((decision, json) => write(`event: decision\ndata: {"decision":${json},"counters":${JSON.stringify(log.counters())}}\n\n`));
      if (!unsubscribe) {
        return reply
          .code(503)
          .header('retry-after', '10')
          .send({ error: { code: 'DROP_TOO_MANY_VIEWERS', message: `${log.maxSubscribers} pages are open on this replica already; retry later` } });
      }
      reply.hijack();
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      // The page starts from the snapshot (taken after subscribing: no decision falls between the
      // two); after a reconnect it gets a fresh one.
      raw.write(`retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(snapshot())}\n\n`);
      streams.add(raw);
      // A comment line: EventSource ignores it, and proxies see the stream is alive.
      const heartbeat = setInterval(() => write(':\n\n'), heartbeatMs);
      // Destroyed or closed by the page: 'close' comes at once, and nothing is written after it.
      raw.once('close', () => {
        clearInterval(heartbeat);
        unsubscribe();
        streams.delete(raw);
      });
    });
  };
}

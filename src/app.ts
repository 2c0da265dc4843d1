import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { PolicySource } from './active-policy.ts';
import type { SenderAuth } from './auth.ts';
import { readBodyText } from './body-text.ts';
import { BodyBudget } from './body-budget.ts';
import { clipStrings, clipText } from './clip.ts';
import type { Decision, DecisionObserver, Guard } from './decisions.ts';
import { DropError, isRetryableStatus } from './errors.ts';
import { alertTimeMs, parseFalcoAlert, type FalcoAlert } from './falco.ts';
import { parseDelivery, type EventContext, type Headers, type IncomingEvent } from './incoming.ts';
import { jsonNumber, stringifyJson } from './json.ts';
import { defaultRedeliveryMaxBytes, RedeliveryMemory } from './redelivery.ts';
import { buildReply, buildReplyData, replyId } from './reply.ts';
import { respond, type Response, type ResponderOptions } from './responder.ts';
import { Lifecycle } from './shutdown.ts';
import { Background } from './background.ts';
import { traceContextOf, traceFields, type TraceContext } from './trace.ts';

export interface AppOptions {
  readonly logger: Logger;
  /** The responder's options; its background work (what follows an answer) is the app's. */
  readonly responder: Omit<ResponderOptions, 'background'>;
  /**
   * The policy in force, which a reload replaces (src/active-policy.ts): taken once per alert,
   * over the responder's policy, protected namespaces and safety state; /readyz shows its status.
   */
  readonly policy?: PolicySource;
  /** The `source` of reply events, e.g. /falco-drop/<namespace>/<service>. */
  readonly replySource: string;
  /** Remembered deliveries (source + id): how many, for how long, in how many bytes (default 16 MiB). */
  readonly redelivery: { readonly max: number; readonly ttlMs: number; readonly maxBytes?: number };
  /** Bytes of request bodies read and worked on at once (default 4 MiB); more waits its turn. */
  readonly bodyBudgetBytes?: number;
  /** Why the service is in dry-run, when it is; shown on /readyz. */
  readonly dryRunReason: string | undefined;
  /** Checks the sender's token on POST /; without it any caller is taken (DROP_AUDIENCE unset). */
  readonly senderAuth?: SenderAuth;
  /** Where the shutdown stands (src/shutdown.ts); app.close() alone also moves it to closing. */
  readonly lifecycle?: Lifecycle;
  /**
   * Told of every event answered, once, as its log line tells it (metrics, the live page): each
   * event of a batch, refusals, events that are no Falco alert, redeliveries answered from memory.
   */
  readonly observe?: DecisionObserver;
  /**
   * Undefined while the log has room for more lines, else a promise that resolves when it has
   * (src/log-output.ts): a request is read only then, so unwritten lines stay bounded.
   */
  readonly logRoom?: () => Promise<void> | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated sender (a service account's username), when authentication is on. */
    sender: string | undefined;
  }
  interface FastifyInstance {
    /** What the redelivery memory holds: deliveries, and their bytes as counted against the bound. */
    redelivery: { readonly size: number; readonly bytes: number; readonly maxBytes: number };
    /** What responses still write after their answers (outcome records, Events); close() waits for it. */
    background: Background;
  }
}

/** A media type with optional parameters (RFC 9110 §8.3.1), as Fastify's content-type parsing accepts one. */
const mediaTypePattern = /^\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*(;.*)?$/;

/** The largest body accepted; larger is a final 413. */
export const bodyLimit = 1024 * 1024;

/**
 * Request bodies worked on at once: 4 MiB. A body costs a few times its size while it is read
 * (chunks, their concatenation, the decoded string) and parsed, so at most four 1 MiB bodies
 * (a few tens of MB) are in memory at once, while 2,000 ordinary alerts (1-2 KB each) never wait.
 */
export const defaultBodyBudgetBytes = 4 * 1024 * 1024;

/**
 * A batch's events decided at once. All of a 1,000-alert batch at once keeps every one's
 * response, answer, line and decision alive together; a few at a time, in order, keep a few
 * (in a flood of batches at 64 connections, heap used sampled every 3 s: at most 86 → 78 MiB).
 */
export const batchConcurrency = 16;

/** Promise.allSettled(items.map(work)), with at most `limit` items at work at once, taken in order. */
async function settleInTurn<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) {
      results[i] = await work(items[i]!).then(
        (value) => ({ status: 'fulfilled', value }) as const,
        (reason: unknown) => ({ status: 'rejected', reason }) as const,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** The decision as the event's log line tells it, remembered with the answer. */
interface AnswerLog {
  readonly msg: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** The fields of an answer's log line that its Decision is built from (decisionLog's, errorAnswer's). */
interface AnswerFields {
  readonly code?: string;
  readonly decision?: 'act' | 'skip';
  readonly outcome?: string;
  readonly guard?: Guard;
  readonly target?: string;
  readonly rules?: readonly string[];
  readonly dryRun?: boolean;
  readonly actions?: readonly { readonly action: string; readonly status: string; readonly reason: string }[];
  readonly fromRecord?: readonly { readonly rule: string }[];
}

/** The fields of the event's log line that come from the delivery and the alert, not the answer. */
interface LineFacts {
  readonly mode?: string;
  readonly traceId?: string;
  readonly rule?: string;
  readonly priority?: string;
}

/**
 * What one event is answered, kept so a redelivery is answered the same way: the status,
 * headers and body to send again and what its log line says, nothing else (no alert, no
 * response object). Text from the alert in it is clipped, so it stays a few KB at most.
 */
interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
  readonly log: AnswerLog;
}


function errorAnswer(error: DropError): Answer {
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = String(error.retryAfterSeconds);
  if (error.code === 'DROP_UNAUTHENTICATED') headers['www-authenticate'] = 'Bearer';
  const body = clipStrings(error.toBody());
  const fields = { code: error.code, status: error.status, details: body.error.details };
  return { status: error.status, headers, body: stringifyJson(body), log: { msg: `rejected: ${body.error.message}`, fields } };
}

function decisionLog(response: Response, status: number): AnswerLog {
  return {
    msg: `${response.decision}: ${clipText(response.reason)}`,
    fields: {
      target: response.target ? `${response.target.namespace}/${response.target.name}` : undefined,
      rules: response.rules,
      decision: response.decision,
      outcome: response.decision === 'act' ? response.result : 'skipped',
      ...(response.decision === 'skip' ? { guard: response.guard } : {}),
      dryRun: response.dryRun,
      actions: response.decision === 'act' ? clipStrings(response.outcomes) : [],
      // Rules answered from the record of the replica that acted on this same event.
      ...(response.decision === 'act' && response.recorded.length > 0 ? { fromRecord: response.recorded } : {}),
      status,
    },
  };
}

/** The alert's own fields in its log line, clipped. */
function alertFields(alert: FalcoAlert, ageMs: number | undefined): { rule: string; priority: string; source: string; alertAgeMs: number | undefined; evtTime: unknown } {
  const evtTime = alert.outputFields['evt.time'];
  return {
    rule: clipText(alert.rule),
    priority: clipText(alert.priority),
    source: clipText(alert.source),
    alertAgeMs: ageMs,
    evtTime: typeof evtTime === 'string' ? clipText(evtTime) : typeof evtTime === 'bigint' ? jsonNumber(evtTime) : evtTime,
  };
}

function eventFields(context: EventContext): { id: string; source: string; type: string } {
  return { id: clipText(context.id), source: clipText(context.source), type: clipText(context.type) };
}

/** The CloudEvent a request names in its headers (binary mode), clipped, for a request refused before it is parsed. */
function headerFields(headers: Headers): Record<string, string | undefined> | undefined {
  const value = (name: string): string | undefined => {
    const raw = headers[name];
    return raw === undefined ? undefined : clipText([raw].flat().join(','));
  };
  const fields = { id: value('ce-id'), source: value('ce-source'), type: value('ce-type') };
  return fields.id === undefined && fields.source === undefined && fields.type === undefined ? undefined : fields;
}

/** The same, read from the raw bytes Node could not parse as HTTP. */
function rawHeaderFields(raw: Buffer | undefined): Record<string, string | undefined> | undefined {
  const text = raw?.toString('latin1') ?? '';
  const headers: Record<string, string> = {};
  for (const name of ['ce-id', 'ce-source', 'ce-type']) {
    const found = new RegExp(`^${name}:[ \\t]*([^\\r\\n]*)`, 'im').exec(text);
    if (found) headers[name] = found[1]!;
  }
  return headerFields(headers);
}

/**
 * How deep JSON may nest in a body. A Falco payload nests three levels, a CloudEvent around it
 * one more, a batch one more; 64 leaves room for any real event. Deeper nesting is refused
 * before parsing: 400,000 nested arrays (800 KB) would cost the parser hundreds of MB.
 */
export const maxJsonDepth = 64;

/** Refuses a body whose brackets, outside JSON strings, nest deeper than `maxJsonDepth`. */
function checkNesting(body: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxJsonDepth) throw new DropError('DROP_INVALID_JSON', `the body nests JSON deeper than ${maxJsonDepth} levels`);
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
}

/** A duration in milliseconds, to the microsecond, as log lines give it. */
function milliseconds(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function send(reply: FastifyReply, answer: Answer): FastifyReply {
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}

/**
 * The drop service as a Fastify app. It takes every dependency (logger, clock, Kubernetes
 * client inside the responder options) and does no I/O of its own until a request arrives.
 */
export function buildApp(options: AppOptions) {
  const app = Fastify({
    loggerInstance: options.logger,
    // One line per event is written by the handler; fastify's own request lines would double it.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify would make each request a child logger (pino's child() costs a few µs); drop logs
    // through its own logger, and no line of a request's comes from request.log.
    childLoggerFactory: (logger) => logger,
    bodyLimit,
    return503OnClosing: false,
    clientErrorHandler: (error: Error, socket: Duplex) => answerClientError(options.logger, error, socket),
  });
  const maxBytes = options.redelivery.maxBytes ?? defaultRedeliveryMaxBytes;
  // An answer as JSON: its bytes count against the bound, and equal answers are remembered once.
  const memory = new RedeliveryMemory<Answer>({ max: options.redelivery.max, ttlMs: options.redelivery.ttlMs, maxBytes, textOf: stringifyJson });
  app.decorate('redelivery', {
    get size() {
      return memory.size;
    },
    get bytes() {
      return memory.bytes;
    },
    maxBytes,
  });
  const bodies = new BodyBudget(options.bodyBudgetBytes ?? defaultBodyBudgetBytes);
  // Errors already logged with their event's line, and the answer built for them then: the error
  // handler sends it without logging or building it a second time.
  const answered = new WeakMap<object, Answer>();
  const lifecycle = options.lifecycle ?? new Lifecycle();
  const background = new Background(app.log);
  app.decorate('background', background);
  // Fastify closes the server first (its own onClose hook, registered last, runs first): no
  // request is left to start more; then the records and Events still on their way are waited for.
  app.addHook('onClose', () => background.drain());

  // Every body is read as text whatever its Content-Type (or none): 415 would lose the alert.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => readBodyText(payload, request.headers['content-length'], bodyLimit, done));
  // Fastify refuses a Content-Type that is no media type ("", ";", "garbage") before any parser,
  // and that refusal would be a final 400 that loses the alert. Such a header says as little as
  // none at all, so it is dropped and the body is read by its shape.
  app.addHook('onRequest', (request, _reply, done) => {
    const type = request.raw.headers['content-type'];
    if (type !== undefined && !mediaTypePattern.test(type)) delete request.raw.headers['content-type'];
    done();
  });

  app.addHook('preClose', async () => {
    lifecycle.phase = 'closing';
  });
  // Once the shutdown starts (draining or closing), ask keep-alive clients (queue-proxy, a
  // Broker's pool) to drop the connection after this answer: they move to another replica, and
  // close() does not wait for their keep-alive timeout (fastify issue 7044).
  app.addHook('onSend', async (_request, reply) => {
    if (lifecycle.phase !== 'serving') reply.header('connection', 'close');
  });

  /**
   * Tells the observer of one event answered, as its log line tells it. The observer runs in
   * the request's path but must not hold it up or break it: what it throws is logged, not sent.
   */
  function observe(facts: LineFacts, log: AnswerLog, status: number, timing: { readonly replayed: boolean; readonly durationMs: number }): void {
    const observer = options.observe;
    if (!observer) return;
    try {
      const fields = log.fields as AnswerFields;
      const decision = fields.code !== undefined ? 'reject' : (fields.decision ?? 'ignore');
      const record: Decision = {
        time: options.responder.clock.now().toISOString(),
        mode: facts.mode ?? 'unknown',
        status,
        replayed: timing.replayed,
        decision,
        outcome: decision === 'reject' ? (isRetryableStatus(status) ? 'retry' : 'refused') : (fields.outcome ?? 'skipped'),
        guard: fields.guard,
        code: fields.code,
        // The log line has the alert's rule and priority together (alertFields), or neither.
        falco: facts.rule !== undefined ? { rule: facts.rule, priority: facts.priority as string } : undefined,
        target: fields.target,
        namespace: fields.target?.slice(0, fields.target.indexOf('/')),
        rules: fields.rules ?? [],
        fromRecord: fields.fromRecord?.map((r) => r.rule),
        actions: (fields.actions ?? []).map((a) => ({ action: a.action, status: a.status, reason: a.reason })),
        reason: log.msg,
        traceId: facts.traceId,
        dryRun: fields.dryRun ?? options.responder.dryRun,
        durationMs: timing.durationMs,
      };
      observer(record);
    } catch (error) {
      app.log.error({ err: error }, 'the decision observer failed (the answer is sent all the same)');
    }
  }

  // The body's own refusals (too large, a length that does not match, a broken stream) are
  // DropErrors from src/body-text.ts; anything else is a bug, answered so the Broker retries.
  function toDropError(error: unknown): DropError {
    if (error instanceof DropError) return error;
    return new DropError('DROP_K8S_UNAVAILABLE', 'internal error; retry', { retryAfterSeconds: options.responder.retryAfterSeconds });
  }

  /**
   * The one log line of a refused event, at warn: a retry, a dead-letter (any final 4xx) and a
   * refused sender all need a look. A bug is logged at error with its stack.
   */
  function logRejection(fields: Record<string, unknown> & LineFacts, error: unknown, durationMs: number): Answer {
    const drop = toDropError(error);
    const answer = errorAnswer(drop);
    if (typeof error === 'object' && error !== null) answered.set(error, answer);
    if (!(error instanceof DropError) && drop.status >= 500) {
      app.log.error({ ...fields, err: error, code: drop.code, status: drop.status }, 'unexpected failure; answering 503 so the Broker retries');
    } else {
      app.log.warn({ ...fields, ...answer.log.fields }, answer.log.msg);
    }
    observe(fields, answer.log, answer.status, { replayed: false, durationMs });
    return answer;
  }

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const fields = { ce: headerFields(request.headers), sender: request.sender, ...traceFields(traceContextOf(request.headers, undefined)) };
    const answer = answered.get(error) ?? logRejection(fields, error, milliseconds(reply.elapsedTime));
    return send(reply, answer);
  });

  /** Decides and acts on one alert: the work shared by every copy of its delivery. */
  async function decide(alert: FalcoAlert, event: IncomingEvent, trace: TraceContext | undefined): Promise<Answer> {
    const context = event.context;
    let response: Response;
    try {
      // A plain payload has no CloudEvent: its claims name it by the hash of its body.
      const ref = context ? { source: context.source, id: context.id } : { source: '', id: event.key };
      // The policy in force when the alert arrives: a reload while it is acted on does not change it.
      const responder: ResponderOptions = { ...options.responder, ...options.policy?.current(), background };
      response = await respond(responder, alert, { time: context?.time, event: ref });
    } catch (error) {
      // A refusal that retrying cannot fix is every copy's answer: remembered. Retryable failures are thrown.
      if (error instanceof DropError && !error.retryable) return errorAnswer(error);
      throw error;
    }
    if (response.decision === 'skip') return { status: 202, headers: {}, body: undefined, log: decisionLog(response, 202) };
    const data = buildReplyData(response, alert, context);
    if (response.result === 'failed') {
      const error = new DropError('DROP_ACTION_FAILED', response.reason, { details: data });
      return { ...errorAnswer(error), log: decisionLog(response, error.status) };
    }
    // The reply's id follows from the alert's, so the copies of one alert answered by different
    // replicas reply with one event (same source and id), which consumers see as one. It
    // carries the alert's trace id on, so the response can be followed to the pod.
    const reply = buildReply(data, options.replySource, `${response.target.namespace}/${response.target.name}`, replyId(event.key), trace);
    return { status: 200, headers: reply.headers, body: reply.body, log: decisionLog(response, 200) };
  }

  async function answerAlert(event: IncomingEvent, headers: Headers, sender: string | undefined): Promise<Answer> {
    const started = performance.now();
    const context = event.context;
    const parsed = parseFalcoAlert(event.data, context?.type);
    // This delivery's trace context: logged on its line even when the answer is a remembered one.
    const trace = traceContextOf(headers, context);
    const base = { ce: context ? eventFields(context) : undefined, mode: event.mode, sender, ...traceFields(trace) };
    try {
      if (typeof parsed === 'string') throw new DropError('DROP_INVALID_ALERT', `the Falco payload is invalid: ${parsed}`);
      if (parsed === undefined) {
        if (!context) {
          throw new DropError('DROP_NOT_AN_EVENT', 'the body is neither a CloudEvent nor a Falco alert (a Falco alert has rule, priority and output_fields)');
        }
        const msg = `ignored: a ${clipText(context.type)} event is not a Falco alert`;
        app.log.info({ ...base, decision: 'ignore' }, msg);
        observe(base, { msg, fields: {} }, 202, { replayed: false, durationMs: milliseconds(performance.now() - started) });
        return { status: 202, headers: {}, body: undefined, log: { msg: 'ignored', fields: {} } };
      }
      const alert = parsed;
      const { result, replayed } = await memory.once(event.key, () => decide(alert, event, trace));
      // The age the guard judged: the alert's own time, else its CloudEvent's.
      const time = alertTimeMs(alert, context?.time);
      const fields = { ...base, ...alertFields(alert, time === undefined ? undefined : options.responder.clock.now().getTime() - time) };
      const durationMs = milliseconds(performance.now() - started);
      const line = { ...fields, ...result.log.fields, replayed, durationMs };
      // Any answer the Broker will dead-letter (a final 4xx) is a warning.
      app.log[result.status >= 400 ? 'warn' : 'info'](line, result.log.msg);
      observe(fields, result.log, result.status, { replayed, durationMs });
      return result;
    } catch (error) {
      const fields = typeof parsed === 'object' ? { ...base, ...alertFields(parsed, undefined) } : base;
      logRejection(fields, error, milliseconds(performance.now() - started));
      throw error;
    }
  }

  app.decorateRequest('sender', undefined);
  const senderAuth = options.senderAuth;
  // The sender is checked before the body is read: an unauthenticated caller costs no parsing.
  const authenticate = senderAuth
    ? async (request: FastifyRequest) => {
        request.sender = await senderAuth.check(request.headers.authorization);
      }
    : [];

  // A body waits, unread, while the log is behind, then until it fits in the budget; its bytes
  // come back when its answer is sent or the connection ends. A declared length over the limit
  // costs nothing: it is refused unread.
  const admit = async (request: FastifyRequest, reply: FastifyReply) => {
    const room = options.logRoom?.();
    if (room) await room;
    // Node has checked a declared length; a chunked body may be as large as allowed.
    const declared = request.headers['content-length'];
    const length = declared !== undefined ? Number(declared) : request.headers['transfer-encoding'] ? bodyLimit : 0;
    const claim = bodies.claim(length > bodyLimit ? 0 : length);
    reply.raw.once('close', claim.done);
    await claim.granted;
  };

  app.post('/', { onRequest: [authenticate, admit].flat() }, async (request, reply) => {
    if (lifecycle.phase === 'closing') throw new DropError('DROP_SHUTTING_DOWN', 'the service is shutting down; retry', { retryAfterSeconds: 1 });
    const body = typeof request.body === 'string' ? request.body : '';
    checkNesting(body);
    const events = parseDelivery(request.headers, body);
    // parseDelivery gives one event, or a batch's events (none for an empty batch).
    const [first] = events;
    if (first && first.mode !== 'batch') return send(reply, await answerAlert(first, request.headers, request.sender));
    // A batch cannot carry one reply event: answer 202 when every event is done, else the
    // most urgent failure (a retryable one first, so the whole batch comes back; the work
    // already done is answered from memory then).
    const answers = await settleInTurn(events, batchConcurrency, (event) => answerAlert(event, request.headers, request.sender));
    const failures = answers.flatMap((a) => (a.status === 'rejected' ? [a.reason as unknown] : []));
    const failed = answers.flatMap((a) => (a.status === 'fulfilled' && a.value.status >= 300 ? [a.value] : []));
    const retryable = failures.find((e) => !(e instanceof DropError) || e.retryable);
    if (retryable) throw retryable;
    if (failures.length > 0) throw failures[0];
    if (failed.length > 0) return send(reply, failed[0]!);
    return reply.code(202).send();
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (lifecycle.phase !== 'serving') return reply.code(503).send({ status: lifecycle.phase });
    return {
      status: 'ready',
      dryRun: options.responder.dryRun,
      dryRunReason: options.dryRunReason ?? null,
      senderAuthentication: senderAuth ? { audience: senderAuth.audience, allowedSenders: senderAuth.allowedSenders } : null,
      ...(options.policy ? { policy: options.policy.status() } : {}),
    };
  });

  return app;
}

/**
 * Answers a request Node refuses before Fastify sees it (headers over Node's limit, bytes that
 * are not HTTP/1.1, a request that never finished arriving) as drop answers everything else:
 * a JSON body with a DROP_* code, and `connection: close`, since Node cannot read on.
 */
export function answerClientError(log: Logger, error: Error & { code?: string; rawPacket?: Buffer }, socket: Duplex, lingerMs = defaultLingerMs): void {
  // A connection reset leaves no one to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const drop =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? new DropError('DROP_HEADERS_TOO_LARGE', 'the request line and headers are larger than Node accepts (16 KiB)')
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new DropError('DROP_REQUEST_TIMEOUT', 'the request did not arrive in time; retry')
        : new DropError('DROP_BAD_REQUEST', `the request is not valid HTTP/1.1 (${clipText(error.code ?? error.message)})`);
  log.warn({ ce: rawHeaderFields(error.rawPacket), code: drop.code, status: drop.status }, `rejected: ${drop.message}`);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = stringifyJson(drop.toBody());
  const head = `HTTP/1.1 ${drop.status} ${STATUS_CODES[drop.status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n`;
  // A lingering close: what the client is still sending (the rest of a large body) is read and
  // dropped until it closes, at most `lingerMs`. Closing with its bytes unread would make the
  // kernel reset the connection, and a reset can destroy the answer before the client reads it.
  socket.end(head + body);
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  socket.once('end', () => socket.destroy());
  socket.once('close', () => clearTimeout(timer));
}

/** How long a connection refused by Node is read and drained, at most, before it is closed. */
export const defaultLingerMs = 2000;

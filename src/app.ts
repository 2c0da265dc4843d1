import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { SenderAuth } from './auth.ts';
import { DropError } from './errors.ts';
import { alertTimeMs, parseFalcoAlert } from './falco.ts';
import { parseDelivery, type IncomingEvent } from './incoming.ts';
import { stringifyJson } from './json.ts';
import { RedeliveryMemory } from './redelivery.ts';
import { buildReply, buildReplyData } from './reply.ts';
import { respond, type Response, type ResponderOptions } from './responder.ts';

export interface AppOptions {
  readonly logger: Logger;
  readonly responder: ResponderOptions;
  /** The `source` of reply events, e.g. /falco-drop/<namespace>/<service>. */
  readonly replySource: string;
  /** Remembered deliveries (source + id) and for how long. */
  readonly redelivery: { readonly max: number; readonly ttlMs: number };
  /** Why the service is in dry-run, when it is; shown on /readyz. */
  readonly dryRunReason: string | undefined;
  /** Checks the sender's token on POST /; without it any caller is taken (DROP_AUDIENCE unset). */
  readonly senderAuth?: SenderAuth;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated sender (a service account's username), when authentication is on. */
    sender: string | undefined;
  }
}

/** The largest body accepted; larger is a final 413. */
export const bodyLimit = 1024 * 1024;

/** What one event is answered, kept so a redelivery is answered the same way. */
interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
  readonly response: Response | undefined;
}

function errorAnswer(error: DropError): Answer {
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = String(error.retryAfterSeconds);
  if (error.code === 'DROP_UNAUTHENTICATED') headers['www-authenticate'] = 'Bearer';
  return { status: error.status, headers, body: stringifyJson(error.toBody()), response: undefined };
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
    bodyLimit,
    return503OnClosing: false,
  });
  const memory = new RedeliveryMemory<Answer>({
    ...options.redelivery,
    isFinalFailure: (error) => error instanceof DropError && !error.retryable,
  });
  let closing = false;

  // Every body is read as text whatever its Content-Type (or none): 415 would lose the alert.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));

  app.addHook('preClose', async () => {
    closing = true;
  });
  // Once closing starts, ask keep-alive clients (queue-proxy) to drop the connection, so
  // close() does not wait for their keep-alive timeout (fastify issue 7044).
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    let drop: DropError;
    if (error instanceof DropError) drop = error;
    else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') drop = new DropError('DROP_BODY_TOO_LARGE', `the body is larger than ${bodyLimit} bytes`);
    else if (typeof error.statusCode === 'number' && error.statusCode < 500) drop = new DropError('DROP_NOT_AN_EVENT', error.message);
    else {
      request.log.error({ err: error }, 'unexpected failure; answering 500 so the Broker retries');
      drop = new DropError('DROP_K8S_UNAVAILABLE', 'internal error; retry', { retryAfterSeconds: options.responder.retryAfterSeconds });
    }
    // A refused sender may be someone trying to make drop act: as loud as a failure.
    const level = drop.retryable || drop.status === 401 || drop.status === 403 ? 'warn' : 'info';
    request.log[level]({ code: drop.code, status: drop.status, details: drop.details }, `rejected: ${drop.message}`);
    return send(reply, errorAnswer(drop));
  });

  async function answerAlert(event: IncomingEvent, sender: string | undefined): Promise<Answer> {
    const started = performance.now();
    const context = event.context;
    const parsed = parseFalcoAlert(event.data, context?.type);
    const base = { ce: context ? { id: context.id, source: context.source, type: context.type } : undefined, mode: event.mode, sender };
    if (typeof parsed === 'string') throw new DropError('DROP_INVALID_ALERT', `the Falco payload is invalid: ${parsed}`);
    if (parsed === undefined) {
      if (!context) {
        throw new DropError('DROP_NOT_AN_EVENT', 'the body is neither a CloudEvent nor a Falco alert (a Falco alert has rule, priority and output_fields)');
      }
      app.log.info({ ...base, decision: 'ignore' }, `ignored: a ${context.type} event is not a Falco alert`);
      return { status: 202, headers: {}, body: undefined, response: undefined };
    }
    const alert = parsed;
    const { result, replayed } = await memory.once(event.key, async () => {
      const response = await respond(options.responder, alert, context?.time);
      if (response.decision === 'skip') return { status: 202, headers: {}, body: undefined, response };
      const data = buildReplyData(response, alert, context);
      if (response.result === 'failed') {
        const error = new DropError('DROP_ACTION_FAILED', response.reason, { details: data });
        return { ...errorAnswer(error), response };
      }
      const reply = buildReply(data, options.replySource, `${response.target.namespace}/${response.target.name}`);
      return { status: 200, headers: reply.headers, body: reply.body, response };
    });
    const response = result.response as Response;
    // The age the guard judged: the alert's own time, else its CloudEvent's (respond refuses an alert with neither).
    const time = alertTimeMs(alert, context?.time)!;
    if (response.decision === 'act' && response.eventErrors.length > 0 && !replayed) {
      app.log.warn({ ...base, eventErrors: response.eventErrors }, 'could not record Kubernetes Events for what was done');
    }
    app.log.info(
      {
        ...base,
        rule: alert.rule,
        priority: alert.priority,
        source: alert.source,
        alertAgeMs: options.responder.clock.now().getTime() - time,
        evtTime: alert.outputFields['evt.time'],
        target: response.target ? `${response.target.namespace}/${response.target.name}` : undefined,
        rules: response.rules,
        decision: response.decision,
        outcome: response.decision === 'act' ? response.result : 'skipped',
        dryRun: response.dryRun,
        actions: response.decision === 'act' ? response.outcomes : [],
        status: result.status,
        replayed,
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      },
      `${response.decision}: ${response.reason}`,
    );
    return result;
  }

  app.decorateRequest('sender', undefined);
  const senderAuth = options.senderAuth;
  // The sender is checked before the body is read: an unauthenticated caller costs no parsing.
  const authenticate = senderAuth
    ? async (request: FastifyRequest) => {
        request.sender = await senderAuth.check(request.headers.authorization);
      }
    : [];

  app.post('/', { onRequest: authenticate }, async (request, reply) => {
    if (closing) throw new DropError('DROP_SHUTTING_DOWN', 'the service is shutting down; retry', { retryAfterSeconds: 1 });
    const body = typeof request.body === 'string' ? request.body : '';
    const events = parseDelivery(request.headers, body);
    // parseDelivery gives one event, or a batch's events (none for an empty batch).
    const [first] = events;
    if (first && first.mode !== 'batch') return send(reply, await answerAlert(first, request.sender));
    // A batch cannot carry one reply event: answer 202 when every event is done, else the
    // most urgent failure (a retryable one first, so the whole batch comes back; the work
    // already done is answered from memory then).
    const answers = await Promise.allSettled(events.map((event) => answerAlert(event, request.sender)));
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
    if (closing) return reply.code(503).send({ status: 'closing' });
    return {
      status: 'ready',
      dryRun: options.responder.dryRun,
      dryRunReason: options.dryRunReason ?? null,
      senderAuthentication: senderAuth ? { audience: senderAuth.audience, allowedSenders: senderAuth.allowedSenders } : null,
    };
  });

  return app;
}

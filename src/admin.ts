/**
 * The operator's listener, on DROP_ADMIN_PORT (default 9464), apart from the event path on
 * $PORT: `GET /metrics` for Prometheus, and whatever other modules register (the live page).
 * Knative routes one port of a pod, $PORT; this one is reached by pod IP from inside the
 * cluster (Prometheus scraping the pod) or through `kubectl port-forward`. `POST /` is never
 * served here: alerts come in on $PORT alone.
 */
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

/** Adds routes (or hooks, or plugins through app.register) to the admin app, when it is built. */
export type AdminRoutes = (app: FastifyInstance) => void;

export interface AdminOptions {
  /** The service's logger: its errors are logged there, marked `listener: admin`. */
  readonly logger: Logger;
  /** Each module's routes, registered in order. */
  readonly routes?: readonly AdminRoutes[];
}

/** The admin app: a second, small Fastify instance with its own routes and no event path. */
export function buildAdminApp(options: AdminOptions): FastifyInstance {
  // Fastify's own "Server listening" line would read like the event listener's: at warn and up
  // only (listenAdmin logs the address itself), and at the service's level when that is higher.
  const level = options.logger.levelVal > 40 ? options.logger.level : 'warn';
  const app = Fastify({
    loggerInstance: options.logger.child({ listener: 'admin' }, { level }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  for (const register of options.routes ?? []) register(app);
  return app;
}

/**
 * Listens and logs where, as one JSON line with `adminUrl` (tests read it there when the port
 * is 0, picked by the system). The URL names the host listened on, an IPv6 one in brackets.
 */
export async function listenAdmin(app: FastifyInstance, listen: { readonly port: number; readonly host: string }, logger: Logger): Promise<string> {
  await app.listen({ port: listen.port, host: listen.host });
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const adminUrl = `http://${host}:${address.port}`;
  logger.info({ adminUrl }, `admin listening at ${adminUrl} (GET /metrics)`);
  return adminUrl;
}

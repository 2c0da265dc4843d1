/**
 * The client library's typed APIs, built on first use (src/kube.ts loads this module then): their
 * classes and the models they (de)serialise are about half of the bundle, and an alert that
 * calls no API (one no rule matches) should not wait for them at a cold start.
 */
import {
  AppsV1Api,
  AuthenticationV1Api,
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  EventsV1Api,
  NetworkingV1Api,
  ServerConfiguration,
  createConfiguration,
  type KubeConfig,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { Agent, type Dispatcher } from 'undici';

/** The Kubernetes API as the actions use it (src/kube.ts's KubeClient): the client's typed APIs, sharing one connection pool. */
export interface Apis {
  readonly core: CoreV1Api;
  readonly networking: NetworkingV1Api;
  readonly events: EventsV1Api;
  /** Read the owner of a pod (ReplicaSet, StatefulSet, DaemonSet) for `detach`. */
  readonly apps: AppsV1Api;
  /** Read the Job that owns a pod for `detach`. */
  readonly batch: BatchV1Api;
  /** TokenReviews, to check a sender's token when sender authentication is on. */
  readonly authentication: AuthenticationV1Api;
  /** Leases in drop's own namespace: the state shared across replicas (src/state). */
  readonly coordination: CoordinationV1Api;
  /** Closes the connections the APIs opened. */
  close(): void;
}

/**
 * The client library (2.x, undici) builds a new dispatcher on every call from the kubeconfig's
 * TLS and proxy settings (CA, client certificate, insecure-skip-tls-verify, proxy-url), so no
 * connection is ever reused (a TLS handshake each time), and it sets no timeout. A middleware
 * keeps the first call's dispatcher, which has exactly those settings, and hands it to every
 * later call: one keep-alive connection pool for the client's life, closed by close(). With no
 * TLS or proxy setting at all the library leaves the dispatcher unset (undici's global one);
 * drop then uses its own keep-alive Agent, so close() still closes every connection it opened.
 * Every call gets an abort signal of `timeoutMs`, which also covers reading the answer, and goes
 * through `interceptor` when there is one (the metrics' count of API calls, src/kube.ts).
 */
export function createApis(kubeConfig: KubeConfig, server: string, timeoutMs: number, interceptor?: Dispatcher.DispatcherComposeInterceptor): Apis {
  let shared: Dispatcher | undefined;
  let used: Dispatcher | undefined;
  const middleware = {
    pre: async (context: RequestContext): Promise<RequestContext> => {
      shared ??= context.getDispatcher() ?? new Agent({ connect: { keepAlive: true, keepAliveInitialDelay: 30_000 } });
      used ??= interceptor ? shared.compose(interceptor) : shared;
      context.setDispatcher(used);
      context.setSignal(AbortSignal.timeout(timeoutMs));
      return context;
    },
    post: async (context: ResponseContext): Promise<ResponseContext> => context,
  };
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(server, {}),
    authMethods: { default: kubeConfig },
    promiseMiddleware: [middleware],
  });
  return {
    core: new CoreV1Api(configuration),
    networking: new NetworkingV1Api(configuration),
    events: new EventsV1Api(configuration),
    apps: new AppsV1Api(configuration),
    batch: new BatchV1Api(configuration),
    authentication: new AuthenticationV1Api(configuration),
    coordination: new CoordinationV1Api(configuration),
    close: () => void shared?.destroy(),
  };
}

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApiException,
  KubeConfig,
} from '@kubernetes/client-node';
import type { Dispatcher } from 'undici';
import type { Apis } from './kube-apis.ts';
import type { TokenReviewer } from './auth.ts';
import { DropError } from './errors.ts';

/** Where the service account's token, CA and namespace are mounted in a pod. */
export const serviceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeConfigSource {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly homeDir: string;
  readonly serviceAccountDir: string;
}

export type FoundKubeConfig =
  | { readonly kubeConfig: KubeConfig; readonly from: string; readonly namespace: string | undefined }
  | { readonly kubeConfig: undefined; readonly reason: string };

/**
 * Finds the cluster as the issue asks: the in-cluster service account first, else $KUBECONFIG,
 * else ~/.kube/config. Returns a reason instead of a config when none is there, so the service
 * can start in dry-run and say why. A config that exists but cannot be read is an error.
 */
export function findKubeConfig(source: KubeConfigSource): FoundKubeConfig {
  const { env } = source;
  const tokenFile = join(source.serviceAccountDir, 'token');
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(tokenFile)) {
    const kubeConfig = new KubeConfig();
    // The library reads the API server's host and port from process.env itself.
    kubeConfig.loadFromCluster(source.serviceAccountDir);
    const namespaceFile = join(source.serviceAccountDir, 'namespace');
    const namespace = existsSync(namespaceFile) ? readFileSync(namespaceFile, 'utf8').trim() : undefined;
    return { kubeConfig, from: 'in-cluster service account', namespace };
  }
  const candidates = env.KUBECONFIG
    ? env.KUBECONFIG.split(':').filter((p) => p !== '')
    : [join(source.homeDir, '.kube', 'config')];
  const file = candidates.find((p) => existsSync(p));
  if (!file) {
    const looked = env.KUBECONFIG ? `KUBECONFIG (${env.KUBECONFIG})` : candidates[0];
    return { kubeConfig: undefined, reason: `no in-cluster service account and no kubeconfig at ${looked}` };
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(file);
  if (!kubeConfig.getCurrentCluster()) return { kubeConfig: undefined, reason: `kubeconfig ${file} has no current cluster` };
  return { kubeConfig, from: `kubeconfig ${file}`, namespace: undefined };
}

export interface KubeClientOptions {
  /** Every API call is aborted after this long, and answered as "unavailable" (retry). */
  readonly timeoutMs: number;
  /** Told of every call once it ends (the metrics); it must not throw. */
  readonly observe?: ApiCallObserver;
}

/** One call to the API as the metrics count it: the kind of call, never the names in it. */
export interface ApiCall {
  /** As the API server's own metrics say it: get, list, create, update, patch, delete, deletecollection. */
  readonly verb: string;
  /** The resource, with its subresource: pods, pods/eviction, namespaces, leases, events … */
  readonly resource: string;
  /** 2xx, 3xx, 4xx, 5xx, or error: no answer read to its end (unreachable, timed out, cut). */
  readonly statusClass: string;
  readonly status: number | undefined;
  /** From the call's start to its answer read to its end (or its failure). */
  readonly seconds: number;
}

export type ApiCallObserver = (call: ApiCall) => void;

const verbs: Readonly<Record<string, readonly [string, string]>> = {
  // [the verb on one object, the verb on a collection]
  GET: ['get', 'list'],
  POST: ['create', 'create'],
  PUT: ['update', 'update'],
  PATCH: ['patch', 'patch'],
  DELETE: ['delete', 'deletecollection'],
};

/**
 * The verb and resource of an API path, e.g. DELETE /api/v1/namespaces/default/pods/web-1 is
 * delete pods; POST .../pods/web-1/eviction is create pods/eviction; GET /api/v1/namespaces/x
 * is get namespaces. Names and namespaces are dropped; a path of another shape is `other`.
 */
export function apiCallKind(method: string, path: string): { verb: string; resource: string } {
  const parts = path.split('?')[0]!.split('/').filter((p) => p !== '');
  // /api/v1/... (core) or /apis/<group>/<version>/...
  let rest = parts[0] === 'api' ? parts.slice(2) : parts[0] === 'apis' ? parts.slice(3) : [];
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const [resource, name, subresource] = rest;
  const pair = verbs[method.toUpperCase()];
  const verb = pair ? pair[name === undefined ? 1 : 0] : 'other';
  if (resource === undefined || !/^[a-z]+$/.test(resource) || (subresource !== undefined && !/^[a-z]+$/.test(subresource))) return { verb, resource: 'other' };
  return { verb, resource: subresource === undefined ? resource : `${resource}/${subresource}` };
}

/**
 * An undici interceptor that tells `observe` of each call once it ends: its answer read to the
 * end, or its failure. It wraps the call's handler, forwarding every callback unchanged.
 */
export function observeCalls(observe: ApiCallObserver): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (options, handler) => {
    const started = performance.now();
    const kind = apiCallKind(options.method, options.path);
    let status: number | undefined;
    // undici ends each call with exactly one of onResponseEnd and onResponseError.
    const tell = (statusClass: string): void => {
      try {
        observe({ ...kind, statusClass, status, seconds: (performance.now() - started) / 1000 });
      } catch {
        // Counting a call never fails it.
      }
    };
    const observed = new Proxy(handler, {
      get(target, property) {
        const value = Reflect.get(target, property) as unknown;
        if (typeof value !== 'function') return value;
        const method = value as (...args: unknown[]) => unknown;
        if (property === 'onResponseStart') {
          return (...args: unknown[]) => {
            // Interim 1xx answers come before the final one.
            if ((args[1] as number) >= 200) status = args[1] as number;
            return method.apply(target, args);
          };
        }
        if (property === 'onResponseEnd' || property === 'onResponseError') {
          return (...args: unknown[]) => {
            tell(property === 'onResponseEnd' && status !== undefined ? `${Math.floor(status / 100)}xx` : 'error');
            return method.apply(target, args);
          };
        }
        return method.bind(target);
      },
    });
    return dispatch(options, observed);
  };
}

/** The Kubernetes API as the actions use it: the client's typed APIs, sharing one connection pool. */
export interface KubeClient extends Omit<Apis, 'close'> {
  readonly kubeConfig: KubeConfig;
  close(): void;
}

/**
 * An API whose methods wait for `load` and call the real one. Every method of the client's APIs
 * returns a promise, so the caller cannot tell, but for the first call's wait.
 */
function lazyApi<T extends object>(load: () => Promise<T>): T {
  return new Proxy({} as T, {
    get: (target, name) =>
      // A method set on the object (a wrapper, as on a plain API object) is that one.
      Reflect.has(target, name)
        ? Reflect.get(target, name)
        : // Not a thenable: awaiting the API object itself must not call the API.
          name === 'then'
          ? undefined
          : (...args: unknown[]) => load().then((api) => (api[name as keyof T] as (...a: unknown[]) => unknown).apply(api, args)),
  });
}

/**
 * The Kubernetes client, with its typed APIs built on the first call (src/kube-apis.ts, a chunk
 * of its own in the bundle): a cold start loads and evaluates about half as much code, and an
 * alert that calls no API never waits for them. The first call that does waits once for the
 * load, which the start would otherwise have done before listening.
 */
export function createKubeClient(kubeConfig: KubeConfig, options: KubeClientOptions): KubeClient {
  const cluster = kubeConfig.getCurrentCluster();
  /* c8 ignore next -- findKubeConfig only returns configs with a current cluster */
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  let loading: Promise<Apis> | undefined;
  let loaded: Apis | undefined;
  let closed = false;
  const load = (): Promise<Apis> =>
    (loading ??= import('./kube-apis.ts').then(({ createApis }) => (loaded = createApis(kubeConfig, cluster.server, options.timeoutMs, options.observe && observeCalls(options.observe)))));
  // A call after close() (or waiting for the load when close() came) fails rather than open a
  // connection no one will close.
  const api = <K extends Exclude<keyof Apis, 'close'>>(key: K): Apis[K] =>
    lazyApi(() =>
      load().then((apis) => {
        if (closed) throw new Error('the Kubernetes client is closed');
        return apis[key];
      }),
    );
  return {
    core: api('core'),
    networking: api('networking'),
    events: api('events'),
    apps: api('apps'),
    batch: api('batch'),
    authentication: api('authentication'),
    coordination: api('coordination'),
    kubeConfig,
    close: () => {
      closed = true;
      loaded?.close();
    },
  };
}

/** The parts of a Kubernetes `Status` error body that drop reads. */
export interface KubeStatus {
  readonly message?: unknown;
  readonly details?: { readonly causes?: unknown };
}

/** The error's body as a `Status` object, or undefined when it is none (a proxy's text page, say). */
export function parseStatus(error: ApiException<unknown>): KubeStatus | undefined {
  if (typeof error.body !== 'string') return undefined;
  try {
    const parsed: unknown = JSON.parse(error.body);
    return typeof parsed === 'object' && parsed !== null ? (parsed as KubeStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** The Status body's message; else the start of a body that is not JSON; else the HTTP code. */
function statusMessage(error: ApiException<unknown>): string {
  const status = parseStatus(error);
  if (typeof status?.message === 'string') return status.message;
  if (status === undefined && typeof error.body === 'string') return error.body.slice(0, 200);
  return `HTTP ${error.code}`;
}

export function isApiStatus(error: unknown, code: number): boolean {
  return error instanceof ApiException && error.code === code;
}

/**
 * Turns a failed API call into the answer the Broker needs: unreachable, timed out, throttled
 * or 5xx is retried (503/429 with Retry-After); a refusal that retrying cannot fix (403, 422,
 * 400) is final. `what` names the call for the log and the error body.
 */
export function kubeFailure(error: unknown, what: string, retryAfterSeconds: number): DropError {
  if (error instanceof ApiException) {
    const message = `${what}: Kubernetes answered ${error.code}: ${statusMessage(error)}`;
    const details = { kubernetesStatus: error.code };
    if (error.code === 429) {
      const header = Number(error.headers?.['retry-after']);
      const after = Number.isFinite(header) && header > 0 ? header : retryAfterSeconds;
      return new DropError('DROP_K8S_THROTTLED', message, { retryAfterSeconds: after, details, cause: error });
    }
    if (error.code >= 500 || error.code === 408) {
      return new DropError('DROP_K8S_UNAVAILABLE', message, { retryAfterSeconds, details, cause: error });
    }
    return new DropError('DROP_K8S_REJECTED', message, { details, cause: error });
  }
  const reason = errorMessage(error);
  const timedOut = error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
  const message = `${what}: Kubernetes API ${timedOut ? 'timed out' : 'unreachable'}: ${reason}`;
  return new DropError('DROP_K8S_UNAVAILABLE', message, { retryAfterSeconds, cause: error });
}

/**
 * What went wrong with a call, in one line. undici's fetch rejects with "fetch failed" and puts
 * the socket's error (ECONNREFUSED, a TLS failure, "other side closed") in `cause`.
 */
export function errorMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message;
}

/** Asks the API server about a token for one audience (POST .../tokenreviews). */
export function tokenReviewer(kube: KubeClient, retryAfterSeconds: number): TokenReviewer {
  return async (token, audience) => {
    try {
      const review = await kube.authentication.createTokenReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } },
      });
      const status = review.status ?? {};
      return {
        authenticated: status.authenticated === true,
        username: status.user?.username,
        audiences: status.audiences ?? [],
        error: status.error || undefined,
      };
    } catch (error) {
      throw kubeFailure(error, 'review the sender\'s token', retryAfterSeconds);
    }
  };
}

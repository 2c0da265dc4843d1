import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

/** One request as the fake API server received it. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly contentType: string | undefined;
  readonly accept: string | undefined;
  readonly authorization: string | undefined;
  readonly body: unknown;
}

/** An injected answer for the next request matching `method` and `path`. */
export interface Fault {
  readonly method: string;
  readonly path: RegExp;
  readonly status?: number;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** Hold the answer this long (to trip the client's timeout). */
  readonly delayMs?: number;
  /** Drop the connection without answering. */
  readonly destroy?: boolean;
  /** How many matching requests it applies to (default 1). */
  times?: number;
}

export interface FakePod {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
    resourceVersion?: string;
    deletionTimestamp?: string;
  };
  spec: Record<string, unknown>;
  status: {
    phase: string;
    containerStatuses?: { name: string; containerID?: string; ready: boolean; restartCount: number; image: string; imageID: string }[];
  };
}

const reasons: Record<number, string> = { 400: 'BadRequest', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable' };

/** A Kubernetes `Status` error body, as the API server writes it. */
export function statusBody(code: number, message: string, details?: Record<string, unknown>): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: reasons[code] ?? 'Unknown', ...(details ? { details } : {}), code };
}

/** A pod as the API server returns it, with a running container whose id starts with `containerId`. */
export function makePod(namespace: string, name: string, uid: string, containerId = '2d90926af63e'): FakePod {
  return {
    metadata: { name, namespace, uid, labels: { app: name.split('-')[0] as string }, resourceVersion: '1001' },
    spec: { containers: [{ name: 'main', image: 'mysql:8' }] },
    status: {
      phase: 'Running',
      containerStatuses: [{ name: 'main', containerID: `containerd://${containerId}${'0'.repeat(64 - containerId.length)}`, ready: true, restartCount: 0, image: 'mysql:8', imageID: 'docker.io/library/mysql@sha256:0' }],
    },
  };
}

const podPath = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/;

/**
 * A fake Kubernetes API server over real HTTP: real paths, query parameters, content types and
 * Status error bodies. It keeps pods, records every request, and answers injected faults.
 */
export class FakeKube {
  readonly requests: RecordedRequest[] = [];
  readonly pods = new Map<string, FakePod>();
  private readonly faults: Fault[] = [];
  private readonly server: http.Server;
  private port = 0;

  constructor() {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => void this.handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    this.server.on('connection', () => this.connections++);
  }

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** TCP connections accepted so far (connection reuse shows as fewer connections than calls). */
  connections = 0;

  /** A kubeconfig pointed at this server, as a user would write it. */
  kubeConfigYaml(): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${this.url}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: drop',
      '  user:',
      '    token: test-token',
      'contexts:',
      '- name: fake',
      '  context: {cluster: fake, user: drop}',
      'current-context: fake',
      '',
    ].join('\n');
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(this.kubeConfigYaml());
    return kc;
  }

  addPod(pod: FakePod): FakePod {
    this.pods.set(`${pod.metadata.namespace}/${pod.metadata.name}`, pod);
    return pod;
  }

  fail(fault: Fault): void {
    this.faults.push({ ...fault, times: fault.times ?? 1 });
  }

  /** Requests that change something (everything but GET). */
  mutations(): RecordedRequest[] {
    return this.requests.filter((r) => r.method !== 'GET');
  }

  private send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, text: string): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    let body: unknown = text;
    if (text !== '' && (req.headers['content-type'] ?? '').includes('json')) body = JSON.parse(text);
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType: req.headers['content-type'],
      accept: req.headers.accept,
      authorization: req.headers.authorization,
      body,
    };
    this.requests.push(recorded);
    const fault = this.faults.find((f) => f.method === recorded.method && f.path.test(recorded.path) && (f.times ?? 0) > 0);
    if (fault) {
      fault.times = (fault.times ?? 1) - 1;
      if (fault.delayMs) await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
      if (fault.destroy) {
        req.socket.destroy();
        return;
      }
      if (res.destroyed) return;
      this.send(res, fault.status ?? 500, fault.body ?? statusBody(fault.status ?? 500, 'injected failure'), fault.headers);
      return;
    }
    this.route(recorded, res);
  }

  private route(request: RecordedRequest, res: http.ServerResponse): void {
    const match = podPath.exec(request.path);
    if (!match) {
      this.send(res, 404, statusBody(404, 'the server could not find the requested resource'));
      return;
    }
    const [, namespace, name] = match as unknown as [string, string, string];
    const key = `${namespace}/${name}`;
    const pod = this.pods.get(key);
    const notFound = (): void => this.send(res, 404, statusBody(404, `pods "${name}" not found`, { name, kind: 'pods' }));
    if (request.method === 'GET') {
      if (!pod) return notFound();
      return this.send(res, 200, { apiVersion: 'v1', kind: 'Pod', ...pod });
    }
    if (request.method === 'DELETE') {
      if (!pod) return notFound();
      const options = (typeof request.body === 'object' && request.body !== null ? request.body : {}) as {
        preconditions?: { uid?: string };
        dryRun?: string[];
      };
      const wanted = options.preconditions?.uid;
      if (wanted && wanted !== pod.metadata.uid) {
        return this.send(
          res,
          409,
          statusBody(409, `Precondition failed: UID in precondition: ${wanted}, UID in object meta: ${pod.metadata.uid}`, { name, kind: 'pods' }),
        );
      }
      if (!options.dryRun?.includes('All')) this.pods.delete(key);
      return this.send(res, 200, { apiVersion: 'v1', kind: 'Pod', ...pod, metadata: { ...pod.metadata, deletionTimestamp: '2026-11-23T00:00:00Z' } });
    }
    this.send(res, 405, statusBody(405, `method ${request.method} not allowed`));
  }
}

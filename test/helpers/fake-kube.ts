import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
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
  /** Over TLS: the common name of the client certificate the caller presented, if any. */
  readonly clientCertificate?: string;
  readonly body: unknown;
  /** When its headers arrived: `performance.now()` in the fake's process (for hack/bench-acting.ts). */
  readonly at: number;
}

/** The fake's TLS material (test/fixtures/tls): a CA, the server's certificate for 127.0.0.1, a client's. */
export const tlsFixture = Object.fromEntries(
  ['ca', 'server', 'server-key', 'client', 'client-key'].map((name) => [name, readFileSync(new URL(`../fixtures/tls/${name}.pem`, import.meta.url), 'utf8')]),
) as Record<'ca' | 'server' | 'server-key' | 'client' | 'client-key', string>;

/** An injected answer for the next request matching `method` and `path`. */
export interface Fault {
  readonly method: string;
  readonly path: RegExp;
  readonly status?: number;
  readonly body?: unknown;
  /** Send this text as the body instead (e.g. a proxy's page that is not JSON). */
  readonly rawBody?: string;
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
    /** When the API server stored the pod (RFC 3339, whole seconds). */
    creationTimestamp?: string;
    deletionTimestamp?: string;
    [key: string]: unknown;
  };
  spec: Record<string, unknown>;
  status: {
    phase: string;
    containerStatuses?: { name: string; containerID?: string; ready: boolean; restartCount: number; image: string; imageID: string; [key: string]: unknown }[];
    [key: string]: unknown;
  };
}

const reasons: Record<number, string> = {
  400: 'BadRequest',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

/** A Kubernetes `Status` error body, as the API server writes it. */
export function statusBody(code: number, message: string, details?: Record<string, unknown>, reason?: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: reason ?? reasons[code] ?? 'Unknown', ...(details ? { details } : {}), code };
}

/**
 * A pod as the API server returns it, with a running container whose id starts with `containerId`:
 * the size and shape of a real pod (~4.5 KB of JSON: managedFields, the service-account volume,
 * the default tolerations, status conditions), created an hour before the tests' alerts.
 */
export function makePod(namespace: string, name: string, uid: string, containerId = '2d90926af63e'): FakePod {
  const app = name.split('-')[0] as string;
  const fullId = `${containerId}${'0'.repeat(64 - containerId.length)}`;
  const created = '2025-06-12T08:00:00Z';
  const started = '2025-06-12T08:00:02Z';
  const condition = (type: string, time: string) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: time });
  const fieldsV1 = (fields: Record<string, unknown>) => fields;
  return {
    metadata: {
      name,
      namespace,
      uid,
      labels: { app },
      resourceVersion: '1001',
      creationTimestamp: created,
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'v1',
          time: created,
          fieldsType: 'FieldsV1',
          fieldsV1: fieldsV1({
            'f:metadata': { 'f:generateName': {}, 'f:labels': { '.': {}, 'f:app': {}, 'f:pod-template-hash': {} }, 'f:ownerReferences': { '.': {} } },
            'f:spec': {
              'f:containers': {
                'k:{"name":"main"}': {
                  '.': {}, 'f:env': { '.': {}, 'k:{"name":"MYSQL_DATABASE"}': { '.': {}, 'f:name': {}, 'f:value': {} } },
                  'f:image': {}, 'f:imagePullPolicy': {}, 'f:name': {}, 'f:ports': { '.': {}, 'k:{"containerPort":3306,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {}, 'f:protocol': {} } },
                  'f:resources': { '.': {}, 'f:limits': { '.': {}, 'f:memory': {} }, 'f:requests': { '.': {}, 'f:cpu': {}, 'f:memory': {} } },
                  'f:terminationMessagePath': {}, 'f:terminationMessagePolicy': {},
                },
              },
              'f:dnsPolicy': {}, 'f:enableServiceLinks': {}, 'f:restartPolicy': {}, 'f:schedulerName': {}, 'f:securityContext': {}, 'f:terminationGracePeriodSeconds': {},
            },
          }),
        },
        {
          manager: 'kubelet',
          operation: 'Update',
          apiVersion: 'v1',
          time: started,
          fieldsType: 'FieldsV1',
          subresource: 'status',
          fieldsV1: fieldsV1({
            'f:status': {
              'f:conditions': Object.fromEntries(['ContainersReady', 'Initialized', 'PodReadyToStartContainers', 'Ready'].map((type) => [`k:{"type":"${type}"}`, { '.': {}, 'f:lastProbeTime': {}, 'f:lastTransitionTime': {}, 'f:status': {}, 'f:type': {} }])),
              'f:containerStatuses': {}, 'f:hostIP': {}, 'f:hostIPs': {}, 'f:phase': {}, 'f:podIP': {}, 'f:podIPs': { '.': {}, 'k:{"ip":"10.244.1.17"}': { '.': {}, 'f:ip': {} } }, 'f:startTime': {},
            },
          }),
        },
      ],
    },
    spec: {
      volumes: [
        {
          name: 'kube-api-access-x7k2p',
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
            ],
            defaultMode: 420,
          },
        },
      ],
      containers: [
        {
          name: 'main',
          image: 'mysql:8',
          ports: [{ containerPort: 3306, protocol: 'TCP' }],
          env: [{ name: 'MYSQL_DATABASE', value: 'app' }],
          resources: { limits: { memory: '512Mi' }, requests: { cpu: '100m', memory: '256Mi' } },
          volumeMounts: [{ name: 'kube-api-access-x7k2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      nodeName: 'worker-node-2',
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {
      phase: 'Running',
      conditions: [
        condition('PodReadyToStartContainers', started),
        condition('Initialized', created),
        condition('Ready', started),
        condition('ContainersReady', started),
        condition('PodScheduled', created),
      ],
      hostIP: '172.18.0.3',
      hostIPs: [{ ip: '172.18.0.3' }],
      podIP: '10.244.1.17',
      podIPs: [{ ip: '10.244.1.17' }],
      startTime: created,
      containerStatuses: [
        {
          name: 'main',
          state: { running: { startedAt: started } },
          lastState: {},
          ready: true,
          restartCount: 0,
          image: 'docker.io/library/mysql:8',
          imageID: 'docker.io/library/mysql@sha256:0',
          containerID: `containerd://${fullId}`,
          started: true,
        },
      ],
      qosClass: 'Burstable',
    },
  };
}

/** Any other stored object: a namespace, a workload, a NetworkPolicy, an Event. */
export interface FakeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** A PodDisruptionBudget as the eviction check sees it: which pods, how many may go now. */
export interface FakeDisruptionBudget {
  namespace: string;
  name: string;
  matchLabels: Record<string, string>;
  disruptionsAllowed: number;
  desiredHealthy: number;
  currentHealthy: number;
}

/** The resources the fake stores beyond pods, with their API group and kind. */
export const collections = {
  replicasets: { group: 'apps', kind: 'ReplicaSet', writable: false },
  statefulsets: { group: 'apps', kind: 'StatefulSet', writable: false },
  daemonsets: { group: 'apps', kind: 'DaemonSet', writable: false },
  jobs: { group: 'batch', kind: 'Job', writable: false },
  networkpolicies: { group: 'networking.k8s.io', kind: 'NetworkPolicy', writable: true },
} as const;
export type Collection = keyof typeof collections;

/** RFC 7386 JSON merge patch: objects merge key by key, null removes a key, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const result: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const podPath = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/;
const evictionPath = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/eviction$/;
const namespacePath = /^\/api\/v1\/namespaces\/([^/]+)$/;
const collectionPath = /^\/apis\/(apps|batch|networking\.k8s\.io)\/v1\/namespaces\/([^/]+)\/([a-z]+)(?:\/([^/]+))?$/;
const eventsPath = /^\/apis\/events\.k8s\.io\/v1\/namespaces\/([^/]+)\/events$/;
const tokenReviewPath = '/apis/authentication.k8s.io/v1/tokenreviews';
const logPath = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/;
const secretsPath = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/;
/** A request on drop's state store (src/state/): a Lease, or a Secret that keeps a capture. */
function isStateRequest(request: RecordedRequest): boolean {
  return request.path.startsWith('/apis/coordination.k8s.io/') || secretsPath.test(request.path);
}

const leasesPath = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/]+))?$/;
/** A DNS-1123 subdomain, what the API server requires of a Lease's name. */
const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * A service-account token as the API server issues it: a JWT whose claims carry the audiences,
 * the subject and the expiry (the signature is not checked by the fake; it knows its tokens).
 */
export function serviceAccountToken(claims: { sub: string; aud: string[]; exp: number }): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256', kid: 'fake' })}.${part({ iss: 'https://kubernetes.default.svc.cluster.local', ...claims })}.c2lnbmF0dXJl`;
}
/** metav1.MicroTime's wire form (RFC 3339 with exactly six fraction digits). */
const microTime = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;

/**
 * A fake Kubernetes API server over real HTTP: real paths, query parameters, content types and
 * Status error bodies. It keeps pods, namespaces, workloads, NetworkPolicies, disruption budgets
 * and Events, records every request, and answers injected faults.
 */
export class FakeKube {
  readonly requests: RecordedRequest[] = [];
  readonly pods = new Map<string, FakePod>();
  readonly namespaces = new Map<string, FakeObject>();
  /** Workloads and NetworkPolicies, by `resource/namespace/name`. */
  readonly objects = new Map<string, FakeObject>();
  readonly disruptionBudgets: FakeDisruptionBudget[] = [];
  /** Tokens the fake's TokenReview accepts, with whom they belong to and their audiences. */
  readonly tokens = new Map<string, { readonly username: string; readonly audiences: readonly string[] }>();
  /** Events created through events.k8s.io/v1, in order. */
  readonly events: FakeObject[] = [];
  /** coordination.k8s.io/v1 Leases, by `namespace/name`. */
  readonly leases = new Map<string, FakeObject>();
  /** v1 Secrets, by `namespace/name`. */
  readonly secrets = new Map<string, FakeObject>();
  /** Each container's log as the kubelet would serve it, by `namespace/pod/container`. */
  readonly logs = new Map<string, Buffer>();
  private readonly faults: Fault[] = [];
  private readonly server: http.Server | https.Server;
  private port = 0;
  private version = 2000;
  private uids = 0;

  /**
   * With `terminatingPods`, a DELETE with a grace period leaves the pod readable and terminating
   * (deletionTimestamp set), as the API server keeps it until the kubelet has stopped it; without
   * it, a deleted pod is gone at once.
   */
  constructor(private readonly options: { readonly terminatingPods?: boolean; readonly tls?: boolean } = {}) {
    const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const at = performance.now();
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => void this.handle(req, res, Buffer.concat(chunks).toString('utf8'), at));
    };
    // With `tls`, HTTPS as the API server serves it: its certificate signed by the cluster CA;
    // a client certificate is asked for and, when given, must be signed by that CA.
    this.server = options.tls
      ? https.createServer({ key: tlsFixture['server-key'], cert: tlsFixture.server, ca: tlsFixture.ca, requestCert: true, rejectUnauthorized: false }, listener)
      : http.createServer(listener);
    this.server.on(options.tls ? 'secureConnection' : 'connection', () => this.connections++);
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
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  /** TCP connections accepted so far (connection reuse shows as fewer connections than calls). */
  connections = 0;

  /**
   * A kubeconfig pointed at this server, as a user would write it. Over TLS it names the cluster
   * CA (unless `trustCa` is false) and, with `clientCertificate`, the client's certificate and key.
   */
  kubeConfigYaml(options: { readonly trustCa?: boolean; readonly clientCertificate?: boolean } = {}): string {
    const base64 = (pem: string) => Buffer.from(pem).toString('base64');
    const trust = this.options.tls
      ? options.trustCa === false ? [] : [`    certificate-authority-data: ${base64(tlsFixture.ca)}`]
      : ['    insecure-skip-tls-verify: true'];
    const user = options.clientCertificate
      ? [`    client-certificate-data: ${base64(tlsFixture.client)}`, `    client-key-data: ${base64(tlsFixture['client-key'])}`]
      : ['    token: test-token'];
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${this.url}`,
      ...trust,
      'users:',
      '- name: drop',
      '  user:',
      ...user,
      'contexts:',
      '- name: fake',
      '  context: {cluster: fake, user: drop}',
      'current-context: fake',
      '',
    ].join('\n');
  }

  kubeConfig(options: Parameters<FakeKube['kubeConfigYaml']>[0] = {}): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(this.kubeConfigYaml(options));
    return kc;
  }

  addPod(pod: FakePod): FakePod {
    this.pods.set(`${pod.metadata.namespace}/${pod.metadata.name}`, pod);
    return pod;
  }

  /** A namespace as the API server keeps it (with the automatic `kubernetes.io/metadata.name` label). */
  addNamespace(name: string, labels: Record<string, string> = {}, annotations?: Record<string, string>): FakeObject {
    const namespace: FakeObject = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name,
        uid: this.nextUid(),
        resourceVersion: this.nextVersion(),
        labels: { 'kubernetes.io/metadata.name': name, ...labels },
        ...(annotations ? { annotations } : {}),
      },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    };
    this.namespaces.set(name, namespace);
    return namespace;
  }

  /** Stores a workload or NetworkPolicy (its metadata.namespace and name give its place). */
  addObject(resource: Collection, object: FakeObject): FakeObject {
    const { group, kind } = collections[resource];
    const stored: FakeObject = {
      apiVersion: `${group}/v1`,
      kind,
      ...object,
      metadata: { uid: this.nextUid(), resourceVersion: this.nextVersion(), generation: 1, ...object.metadata },
    };
    this.objects.set(`${resource}/${object.metadata.namespace}/${object.metadata.name}`, stored);
    return stored;
  }

  object(resource: Collection, namespace: string, name: string): FakeObject | undefined {
    return this.objects.get(`${resource}/${namespace}/${name}`);
  }

  /** A PodDisruptionBudget: evictions of matching pods are refused (429) once no disruption is allowed. */
  addDisruptionBudget(budget: FakeDisruptionBudget): void {
    this.disruptionBudgets.push(budget);
  }

  /** Sets what the kubelet has logged for a container (text is written as UTF-8). */
  setLog(namespace: string, pod: string, container: string, log: string | Buffer): void {
    this.logs.set(`${namespace}/${pod}/${container}`, typeof log === 'string' ? Buffer.from(log, 'utf8') : log);
  }

  /** A stored Secret's data, decoded. */
  secretData(namespace: string, name: string): Record<string, Buffer> | undefined {
    const data = this.secrets.get(`${namespace}/${name}`)?.data as Record<string, string> | undefined;
    return data && Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
  }

  fail(fault: Fault): void {
    this.faults.push({ ...fault, times: fault.times ?? 1 });
  }

  /** Requests that change something (everything but GET). */
  /**
   * Resolves once a request matching `method` and `path` has arrived (it is recorded before any
   * injected delay), so a test can act while that request is in flight instead of sleeping.
   */
  async arrived(method: string, path: RegExp, timeoutMs = 10_000): Promise<RecordedRequest> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.requests.find((r) => r.method === method && path.test(r.path));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${method} ${path} reached the fake API server in ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Issues a token for a service account and audiences, as the Broker's token would be. */
  addToken(username: string, audiences: readonly string[], expiresAt = new Date('2030-01-01T00:00:00Z')): string {
    const token = serviceAccountToken({ sub: username, aud: [...audiences], exp: Math.floor(expiresAt.getTime() / 1000) });
    this.tokens.set(token, { username, audiences });
    return token;
  }

  /** What changed the cluster: every request but reads and TokenReviews (which store nothing). */
  mutations(): RecordedRequest[] {
    return this.requests.filter((r) => r.method !== 'GET' && r.path !== tokenReviewPath);
  }

  /** The requests about the cluster's workloads: all but those on drop's own state (Leases). */
  get workRequests(): RecordedRequest[] {
    return this.requests.filter((r) => !isStateRequest(r));
  }

  /** The requests on drop's own state: its claims and its budget, Leases in coordination.k8s.io. */
  get stateRequests(): RecordedRequest[] {
    return this.requests.filter(isStateRequest);
  }

  private nextVersion(): string {
    return String(++this.version);
  }

  private nextUid(): string {
    return `00000000-0000-4000-8000-${String(++this.uids).padStart(12, '0')}`;
  }

  private send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    writeBody(res, status, { 'content-type': 'application/json', ...headers }, JSON.stringify(body));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, text: string, at: number): Promise<void> {
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
      ...(this.options.tls ? { clientCertificate: clientName(req.socket as TLSSocket) } : {}),
      body,
      at,
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
      if (fault.rawBody !== undefined) {
        writeBody(res, fault.status ?? 500, { 'content-type': 'text/plain', ...fault.headers }, fault.rawBody);
        return;
      }
      this.send(res, fault.status ?? 500, fault.body ?? statusBody(fault.status ?? 500, 'injected failure'), fault.headers);
      return;
    }
    const answer = this.route(recorded);
    if (answer.raw) writeBody(res, answer.status, { 'content-type': 'text/plain', ...answer.headers }, answer.raw);
    else this.send(res, answer.status, answer.body, answer.headers);
  }

  private route(request: RecordedRequest): Answer {
    const { path } = request;
    let m: RegExpExecArray | null;
    if ((m = podPath.exec(path))) return this.pod(request, m[1] as string, m[2] as string);
    if ((m = logPath.exec(path))) return this.log(request, m[1] as string, m[2] as string);
    if ((m = secretsPath.exec(path))) return this.secret(request, m[1] as string, m[2]);
    if ((m = evictionPath.exec(path))) return this.evict(request, m[1] as string, m[2] as string);
    if ((m = namespacePath.exec(path))) return this.namespace(request, m[1] as string);
    if ((m = eventsPath.exec(path))) return this.event(request, m[1] as string);
    if (path === tokenReviewPath && request.method === 'POST') return this.tokenReview(request);
    if ((m = leasesPath.exec(path))) return this.lease(request, m[1] as string, m[2]);
    if ((m = collectionPath.exec(path))) {
      const resource = m[3] as string;
      if (resource in collections && collections[resource as Collection].group === m[1]) {
        return this.collection(request, resource as Collection, m[2] as string, m[4]);
      }
    }
    return { status: 404, body: statusBody(404, 'the server could not find the requested resource') };
  }

  /**
   * coordination.k8s.io/v1 Leases as kube-apiserver serves them (generic registry store, lease
   * strategy): create (409 AlreadyExists), get, list by label selector, update (a resourceVersion
   * is required: AllowUnconditionalUpdate is false; a stale one is 409 Conflict; an update of a
   * missing Lease creates it: AllowCreateOnUpdate is true), delete with preconditions. MicroTime
   * fields must have exactly six fraction digits, or the decoder refuses the body (400).
   */
  private lease(request: RecordedRequest, namespace: string, name: string | undefined): Answer {
    const resource = 'leases.coordination.k8s.io';
    const details = (n: string) => ({ name: n, group: 'coordination.k8s.io', kind: 'leases' });
    const notFound = (n: string): Answer => ({ status: 404, body: statusBody(404, `${resource} "${n}" not found`, details(n)) });
    const conflict = (n: string, why: string): Answer => ({ status: 409, body: statusBody(409, `Operation cannot be fulfilled on ${resource} "${n}": ${why}`, details(n)) });
    const key = (n: string) => `${namespace}/${n}`;
    if (request.method === 'GET' && name === undefined) return this.listLeases(request, namespace);
    if (name === undefined && request.method !== 'POST') return { status: 405, body: statusBody(405, `method ${request.method} not allowed`) };
    if (request.method === 'GET') {
      const found = this.leases.get(key(name as string));
      return found ? { status: 200, body: found } : notFound(name as string);
    }
    if (request.method === 'DELETE') {
      const current = this.leases.get(key(name as string));
      if (!current) return notFound(name as string);
      const options = (isPlainObject(request.body) ? request.body : {}) as { preconditions?: { uid?: string; resourceVersion?: string } };
      const wanted = options.preconditions ?? {};
      if (wanted.uid && wanted.uid !== current.metadata.uid) {
        return conflict(name as string, `Precondition failed: UID in precondition: ${wanted.uid}, UID in object meta: ${current.metadata.uid}`);
      }
      if (wanted.resourceVersion && wanted.resourceVersion !== current.metadata.resourceVersion) {
        return conflict(name as string, `Precondition failed: ResourceVersion in precondition: ${wanted.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`);
      }
      this.leases.delete(key(name as string));
      return { status: 200, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { ...details(name as string), uid: current.metadata.uid } } };
    }
    if (!['POST', 'PUT'].includes(request.method)) return { status: 405, body: statusBody(405, `method ${request.method} not allowed`) };
    if (!isPlainObject(request.body)) return { status: 400, body: statusBody(400, 'the body is not a JSON object') };
    const lease = request.body as unknown as FakeObject & { spec?: Record<string, unknown> };
    const spec = isPlainObject(lease.spec) ? lease.spec : {};
    for (const field of ['acquireTime', 'renewTime']) {
      const value = spec[field];
      if (value !== undefined && value !== null && !(typeof value === 'string' && microTime.test(value))) {
        return {
          status: 400,
          body: statusBody(400, `Lease in version "v1" cannot be handled as a Lease: parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse`),
        };
      }
    }
    const metadata = isPlainObject(lease.metadata) ? lease.metadata : ({} as FakeObject['metadata']);
    if (metadata.namespace !== undefined && metadata.namespace !== namespace) {
      return { status: 400, body: statusBody(400, 'the namespace of the provided object does not match the namespace sent on the request') };
    }
    const objectName = typeof metadata.name === 'string' ? metadata.name : '';
    if (request.method === 'PUT' && objectName !== name) return { status: 400, body: statusBody(400, 'the name of the object does not match the name on the URL') };
    const problems: [string, string, string][] = [];
    if (objectName === '') problems.push(['metadata.name', 'FieldValueRequired', 'Required value: name or generateName is required']);
    else if (objectName.length > 253 || !dnsSubdomain.test(objectName)) {
      problems.push(['metadata.name', 'FieldValueInvalid', `Invalid value: "${objectName}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`]);
    }
    const duration = spec.leaseDurationSeconds;
    if (duration !== undefined && duration !== null && !(typeof duration === 'number' && duration > 0)) {
      problems.push(['spec.leaseDurationSeconds', 'FieldValueInvalid', `Invalid value: ${JSON.stringify(duration)}: must be greater than 0`]);
    }
    const annotationBytes = Object.entries(metadata.annotations ?? {}).reduce((sum, [k, v]) => sum + k.length + String(v).length, 0);
    if (annotationBytes > 256 * 1024) problems.push(['metadata.annotations', 'FieldValueTooLong', 'Too long: must have at most 262144 bytes']);
    if (problems.length > 0) return invalid('Lease', 'coordination.k8s.io', objectName, problems);
    const current = this.leases.get(key(objectName));
    const stored = (uid: string, created: string): FakeObject => ({
      ...lease,
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...metadata, namespace, uid, resourceVersion: this.nextVersion(), creationTimestamp: created },
    });
    if (request.method === 'POST' || !current) {
      if (current) return { status: 409, body: statusBody(409, `${resource} "${objectName}" already exists`, details(objectName), 'AlreadyExists') };
      const created = stored(this.nextUid(), new Date().toISOString().replace(/\.\d+Z$/, 'Z'));
      this.leases.set(key(objectName), created);
      return { status: 201, body: created };
    }
    if (metadata.resourceVersion === undefined || metadata.resourceVersion === '') {
      return invalid('leases', 'coordination.k8s.io', objectName, [['metadata.resourceVersion', 'FieldValueInvalid', 'Invalid value: 0x0: must be specified for an update']]);
    }
    if (metadata.resourceVersion !== current.metadata.resourceVersion) {
      return conflict(objectName, 'the object has been modified; please apply your changes to the latest version and try again');
    }
    const replaced = stored(current.metadata.uid as string, current.metadata.creationTimestamp as string);
    this.leases.set(key(objectName), replaced);
    return { status: 200, body: replaced };
  }

  /** A LeaseList, filtered by an equality label selector (`k=v,k2=v2`). */
  private listLeases(request: RecordedRequest, namespace: string): Answer {
    const wanted = (request.query.labelSelector ?? '').split(',').filter((s) => s !== '').map((term) => {
      const at = term.indexOf('=');
      return at < 1 ? (['', term] as const) : ([term.slice(0, at), term.slice(at + 1).replace(/^=/, '')] as const);
    });
    if (wanted.some(([k]) => k === '')) return { status: 400, body: statusBody(400, `unable to parse requirement: ${request.query.labelSelector}`) };
    const items = [...this.leases.entries()]
      .filter(([k]) => k.startsWith(`${namespace}/`))
      .map(([, lease]) => lease)
      .filter((lease) => wanted.every(([k, v]) => lease.metadata.labels?.[k] === v))
      .map(({ apiVersion: _a, kind: _k, ...rest }) => rest);
    return { status: 200, body: { kind: 'LeaseList', apiVersion: 'coordination.k8s.io/v1', metadata: { resourceVersion: String(this.version) }, items } };
  }

  /**
   * pods/log as kube-apiserver and the kubelet serve it: the container is required when the pod
   * has several (400 naming them), must be one of the pod's (400), and must have run (400
   * "waiting to start"); `tailLines` picks the last lines, then `limitBytes` keeps the first
   * bytes of those; `previous` asks for the last terminated instance. Answered as text/plain,
   * the bytes as the container wrote them.
   */
  private log(request: RecordedRequest, namespace: string, name: string): Answer {
    if (request.method !== 'GET') return { status: 405, body: statusBody(405, `method ${request.method} not allowed`) };
    const pod = this.pods.get(`${namespace}/${name}`);
    if (!pod) return { status: 404, body: statusBody(404, `pods "${name}" not found`, { name, kind: 'pods' }) };
    const names = (list: unknown) => ((list as { name: string }[] | undefined) ?? []).map((c) => c.name);
    const containers = names(pod.spec.containers);
    const all = [...containers, ...names(pod.spec.initContainers), ...names(pod.spec.ephemeralContainers)];
    let container = request.query.container ?? '';
    if (container === '') {
      if (containers.length !== 1) {
        const inits = names(pod.spec.initContainers);
        const more = inits.length > 0 ? ` or one of the init containers: [${inits.join(' ')}]` : '';
        return { status: 400, body: statusBody(400, `a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]${more}`) };
      }
      container = containers[0] as string;
    } else if (!all.includes(container)) {
      return { status: 400, body: statusBody(400, `container ${container} is not valid for pod ${name}`) };
    }
    const key = `${namespace}/${name}/${container}${request.query.previous === 'true' ? '/previous' : ''}`;
    const log = this.logs.get(key);
    if (!log) return { status: 400, body: statusBody(400, `container "${container}" in pod "${name}" is waiting to start: ContainerCreating`) };
    const lines = request.query.tailLines === undefined ? undefined : Number(request.query.tailLines);
    const limit = request.query.limitBytes === undefined ? undefined : Number(request.query.limitBytes);
    let out = lines === undefined ? log : tailLines(log, lines);
    if (limit !== undefined) out = out.subarray(0, limit);
    return { status: 200, body: undefined, raw: Buffer.from(out) };
  }

  /**
   * v1 Secrets: create (409 AlreadyExists; data must be base64, 1 MiB at most in all), list by
   * label selector (with `Accept: …;as=PartialObjectMetadataList…`, metadata only, as the API
   * server answers kubectl), get, delete with preconditions.
   */
  private secret(request: RecordedRequest, namespace: string, name: string | undefined): Answer {
    const details = (n: string) => ({ name: n, kind: 'secrets' });
    const notFound = (n: string): Answer => ({ status: 404, body: statusBody(404, `secrets "${n}" not found`, details(n)) });
    const key = (n: string) => `${namespace}/${n}`;
    if (request.method === 'GET' && name === undefined) {
      const wanted = (request.query.labelSelector ?? '').split(',').filter((term) => term !== '').map((term) => term.split('=') as [string, string]);
      const items = [...this.secrets.entries()]
        .filter(([k]) => k.startsWith(`${namespace}/`))
        .map(([, secret]) => secret)
        .filter((secret) => wanted.every(([k, v]) => secret.metadata.labels?.[k] === v));
      if (request.accept?.includes('as=PartialObjectMetadataList')) {
        const partial = items.map((s) => ({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: s.metadata }));
        return {
          status: 200,
          body: { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: String(this.version) }, items: partial },
          headers: { 'content-type': 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1' },
        };
      }
      return { status: 200, body: { kind: 'SecretList', apiVersion: 'v1', metadata: { resourceVersion: String(this.version) }, items: items.map(({ apiVersion: _a, kind: _k, ...rest }) => rest) } };
    }
    if (request.method === 'GET') {
      const found = this.secrets.get(key(name as string));
      return found ? { status: 200, body: found } : notFound(name as string);
    }
    if (request.method === 'DELETE' && name !== undefined) {
      const current = this.secrets.get(key(name));
      if (!current) return notFound(name);
      const wanted = ((isPlainObject(request.body) ? request.body : {}) as { preconditions?: { uid?: string } }).preconditions ?? {};
      if (wanted.uid && wanted.uid !== current.metadata.uid) {
        return { status: 409, body: statusBody(409, `Operation cannot be fulfilled on secrets "${name}": Precondition failed: UID in precondition: ${wanted.uid}, UID in object meta: ${current.metadata.uid}`, details(name)) };
      }
      this.secrets.delete(key(name));
      return { status: 200, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { ...details(name), uid: current.metadata.uid } } };
    }
    if (request.method !== 'POST' || name !== undefined || !isPlainObject(request.body)) return { status: 405, body: statusBody(405, `the fake API server does not ${request.method} ${request.path}`) };
    const secret = request.body as unknown as FakeObject & { data?: Record<string, string> };
    const objectName = secret.metadata?.name ?? '';
    if (secret.metadata?.namespace !== undefined && secret.metadata.namespace !== namespace) {
      return { status: 400, body: statusBody(400, 'the namespace of the provided object does not match the namespace sent on the request') };
    }
    const problems: [string, string, string][] = [];
    if (!dnsSubdomain.test(objectName) || objectName.length > 253) problems.push(['metadata.name', 'FieldValueInvalid', `Invalid value: "${objectName}": a lowercase RFC 1123 subdomain`]);
    let total = 0;
    for (const [k, v] of Object.entries(secret.data ?? {})) {
      if (!/^[-._a-zA-Z0-9]+$/.test(k)) problems.push([`data[${k}]`, 'FieldValueInvalid', `Invalid value: "${k}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`]);
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v)) return { status: 400, body: statusBody(400, `Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data[${k}]`) };
      total += Buffer.from(v, 'base64').length;
    }
    if (total > 1024 * 1024) problems.push(['data', 'FieldValueTooLong', 'Too long: must have at most 1048576 bytes']);
    if (problems.length > 0) return invalid('Secret', '', objectName, problems);
    if (this.secrets.has(key(objectName))) return { status: 409, body: statusBody(409, `secrets "${objectName}" already exists`, details(objectName), 'AlreadyExists') };
    const created: FakeObject = {
      ...secret,
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { ...secret.metadata, namespace, uid: this.nextUid(), resourceVersion: this.nextVersion(), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
    };
    if (request.query.dryRun !== 'All') this.secrets.set(key(objectName), created);
    return { status: 201, body: created };
  }

  /** The API server's TokenReview: 201 with a status, whether or not the token is good. */
  private tokenReview(request: RecordedRequest): Answer {
    const review = request.body as { apiVersion?: string; kind?: string; spec?: { token?: string; audiences?: string[] } };
    if (request.contentType !== 'application/json' || review.kind !== 'TokenReview' || review.apiVersion !== 'authentication.k8s.io/v1') {
      return { status: 400, body: statusBody(400, 'the body is not an authentication.k8s.io/v1 TokenReview') };
    }
    const asked = review.spec?.audiences ?? [];
    const known = this.tokens.get(review.spec?.token ?? '');
    const audiences = known ? known.audiences.filter((a) => asked.length === 0 || asked.includes(a)) : [];
    let status: Record<string, unknown>;
    if (!known) status = { user: {}, error: '[invalid bearer token, square/go-jose: error in cryptographic primitive]' };
    else if (audiences.length === 0) {
      status = { user: {}, error: `[invalid bearer token, token audiences ${JSON.stringify(known.audiences)} is invalid for the target audiences ${JSON.stringify(asked)}]` };
    } else {
      const [, namespace] = known.username.split(':').slice(1);
      status = { authenticated: true, user: { username: known.username, uid: `uid-${known.username}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'] }, audiences };
    }
    return { status: 201, body: { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec: review.spec, status } };
  }

  private pod(request: RecordedRequest, namespace: string, name: string): Answer {
    const key = `${namespace}/${name}`;
    const pod = this.pods.get(key);
    if (!pod && ['GET', 'DELETE', 'PATCH'].includes(request.method)) {
      return { status: 404, body: statusBody(404, `pods "${name}" not found`, { name, kind: 'pods' }) };
    }
    if (request.method === 'GET') return { status: 200, body: { apiVersion: 'v1', kind: 'Pod', ...pod } };
    if (request.method === 'DELETE') {
      const options = (isPlainObject(request.body) ? request.body : {}) as { preconditions?: { uid?: string }; dryRun?: string[]; gracePeriodSeconds?: number };
      const refused = uidPrecondition(options.preconditions?.uid, pod!, name);
      if (refused) return refused;
      const grace = options.gracePeriodSeconds ?? (pod!.spec.terminationGracePeriodSeconds as number | undefined) ?? 30;
      const terminating: FakePod = { ...pod!, metadata: { ...pod!.metadata, deletionTimestamp: pod!.metadata.deletionTimestamp ?? '2026-11-23T00:00:00Z', deletionGracePeriodSeconds: grace } };
      if (!options.dryRun?.includes('All')) {
        if (this.options.terminatingPods && grace > 0) this.pods.set(key, terminating);
        else this.pods.delete(key);
      }
      return { status: 200, body: { apiVersion: 'v1', kind: 'Pod', ...terminating } };
    }
    if (request.method === 'PATCH') return this.patchPod(request, pod!, key);
    return { status: 405, body: statusBody(405, `method ${request.method} not allowed`) };
  }

  /** A JSON merge patch, with the API server's checks on what a patch may change. */
  private patchPod(request: RecordedRequest, pod: FakePod, key: string): Answer {
    const name = pod.metadata.name;
    if (!request.contentType?.startsWith('application/merge-patch+json')) {
      return { status: 415, body: statusBody(415, `the fake API server only applies application/merge-patch+json, got ${request.contentType}`) };
    }
    if (!isPlainObject(request.body)) return { status: 400, body: statusBody(400, 'error decoding patch: not a JSON object') };
    const patchMeta = (request.body.metadata ?? {}) as { resourceVersion?: string };
    if (patchMeta.resourceVersion !== undefined && patchMeta.resourceVersion !== pod.metadata.resourceVersion) {
      return { status: 409, body: statusBody(409, `Operation cannot be fulfilled on pods "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, kind: 'pods' }) };
    }
    const patched = mergePatch(pod, request.body) as FakePod;
    if (patched.metadata.uid !== pod.metadata.uid) {
      const message = `Invalid value: "${patched.metadata.uid}": field is immutable`;
      return {
        status: 422,
        body: statusBody(422, `Pod "${name}" is invalid: metadata.uid: ${message}`, { name, kind: 'Pod', causes: [{ reason: 'FieldValueInvalid', message, field: 'metadata.uid' }] }),
      };
    }
    patched.metadata.resourceVersion = request.query.dryRun === 'All' ? pod.metadata.resourceVersion : this.nextVersion();
    if (request.query.dryRun !== 'All') this.pods.set(key, patched);
    return { status: 200, body: { apiVersion: 'v1', kind: 'Pod', ...patched } };
  }

  /** policy/v1 Eviction: the pod goes unless a disruption budget refuses (429, as the API server answers). */
  private evict(request: RecordedRequest, namespace: string, name: string): Answer {
    if (request.method !== 'POST') return { status: 405, body: statusBody(405, `method ${request.method} not allowed`) };
    const key = `${namespace}/${name}`;
    const pod = this.pods.get(key);
    if (!pod) return { status: 404, body: statusBody(404, `pods "${name}" not found`, { name, kind: 'pods' }) };
    const eviction = (isPlainObject(request.body) ? request.body : {}) as {
      metadata?: { name?: string };
      deleteOptions?: { preconditions?: { uid?: string }; dryRun?: string[] };
    };
    if (eviction.metadata?.name !== name) return { status: 400, body: statusBody(400, 'name in URL does not match name in Eviction object') };
    const refused = uidPrecondition(eviction.deleteOptions?.preconditions?.uid, pod, name);
    if (refused) return refused;
    const labels = pod.metadata.labels ?? {};
    const budget = this.disruptionBudgets.find(
      (b) => b.namespace === namespace && Object.entries(b.matchLabels).every(([k, v]) => labels[k] === v),
    );
    if (budget && budget.disruptionsAllowed <= 0) {
      return {
        status: 429,
        body: statusBody(429, "Cannot evict pod as it would violate the pod's disruption budget.", {
          causes: [{ reason: 'DisruptionBudget', message: `The disruption budget ${budget.name} needs ${budget.desiredHealthy} healthy pods and has ${budget.currentHealthy} currently` }],
        }),
      };
    }
    const dryRun = request.query.dryRun === 'All' || Boolean(eviction.deleteOptions?.dryRun?.includes('All'));
    if (!dryRun) {
      if (budget) budget.disruptionsAllowed--;
      this.pods.delete(key);
    }
    return { status: 201, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 } };
  }

  private namespace(request: RecordedRequest, name: string): Answer {
    if (request.method !== 'GET') return { status: 405, body: statusBody(405, `method ${request.method} not allowed`) };
    const namespace = this.namespaces.get(name);
    if (!namespace) return { status: 404, body: statusBody(404, `namespaces "${name}" not found`, { name, kind: 'namespaces' }) };
    return { status: 200, body: namespace };
  }

  private collection(request: RecordedRequest, resource: Collection, namespace: string, name: string | undefined): Answer {
    const { group, kind, writable } = collections[resource];
    const notFound = (n: string): Answer => ({ status: 404, body: statusBody(404, `${resource}.${group} "${n}" not found`, { name: n, group, kind: resource }) });
    const dryRun = request.query.dryRun === 'All';
    if (request.method === 'GET' && name !== undefined) {
      const found = this.object(resource, namespace, name);
      return found ? { status: 200, body: found } : notFound(name);
    }
    if (!writable || !isPlainObject(request.body) || (request.method === 'POST') !== (name === undefined) || !['POST', 'PUT'].includes(request.method)) {
      return { status: 405, body: statusBody(405, `the fake API server does not ${request.method} ${request.path}`) };
    }
    const object = request.body as unknown as FakeObject;
    const objectName = object.metadata?.name;
    if (object.metadata?.namespace !== undefined && object.metadata.namespace !== namespace) {
      return { status: 400, body: statusBody(400, 'the namespace of the provided object does not match the namespace sent on the request') };
    }
    if (request.method === 'POST') {
      if (!objectName) return invalid(kind, group, '', [['metadata.name', 'FieldValueRequired', 'Required value: name or generateName is required']]);
      if (this.object(resource, namespace, objectName)) {
        return { status: 409, body: statusBody(409, `${resource}.${group} "${objectName}" already exists`, { name: objectName, group, kind: resource }, 'AlreadyExists') };
      }
      const created: FakeObject = {
        ...object,
        apiVersion: `${group}/v1`,
        kind,
        metadata: { ...object.metadata, namespace, uid: this.nextUid(), resourceVersion: this.nextVersion(), generation: 1, creationTimestamp: '2026-11-23T00:00:00Z' },
      };
      if (!dryRun) this.objects.set(`${resource}/${namespace}/${objectName}`, created);
      return { status: 201, body: created };
    }
    const current = this.object(resource, namespace, name as string);
    if (!current) return notFound(name as string);
    if (objectName !== name) return { status: 400, body: statusBody(400, 'the name of the object does not match the name on the URL') };
    const wanted = object.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== current.metadata.resourceVersion) {
      return { status: 409, body: statusBody(409, `Operation cannot be fulfilled on ${resource}.${group} "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, group, kind: resource }) };
    }
    const changed = JSON.stringify(object.spec) !== JSON.stringify(current.spec);
    const replaced: FakeObject = {
      ...object,
      apiVersion: `${group}/v1`,
      kind,
      metadata: {
        ...object.metadata,
        namespace,
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        resourceVersion: this.nextVersion(),
        generation: (current.metadata.generation ?? 1) + (changed ? 1 : 0),
      },
    };
    if (!dryRun) this.objects.set(`${resource}/${namespace}/${name}`, replaced);
    return { status: 200, body: replaced };
  }

  /** events.k8s.io/v1 Event create, with the API server's validation of the required fields. */
  private event(request: RecordedRequest, namespace: string): Answer {
    if (request.method !== 'POST') return { status: 405, body: statusBody(405, `method ${request.method} not allowed`) };
    const event = (isPlainObject(request.body) ? request.body : {}) as Record<string, unknown> & { metadata?: { name?: string; namespace?: string }; regarding?: Record<string, unknown> };
    if (event.eventTime !== undefined && !(typeof event.eventTime === 'string' && microTime.test(event.eventTime))) {
      return {
        status: 400,
        body: statusBody(400, `Event in version "v1" cannot be handled as a Event: parsing time ${JSON.stringify(event.eventTime)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse`),
      };
    }
    const name = event.metadata?.name ?? '';
    const problems: [string, string, string][] = [];
    const required = (field: string, value: unknown): void => {
      if (typeof value !== 'string' || value === '') problems.push([field, 'FieldValueRequired', 'Required value']);
    };
    required('metadata.name', event.metadata?.name);
    if (event.metadata?.namespace !== undefined && event.metadata.namespace !== namespace) {
      return { status: 400, body: statusBody(400, 'the namespace of the provided object does not match the namespace sent on the request') };
    }
    required('eventTime', event.eventTime);
    required('reportingController', event.reportingController);
    if (typeof event.reportingController === 'string' && !/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(event.reportingController)) {
      problems.push(['reportingController', 'FieldValueInvalid', `Invalid value: "${event.reportingController}": must be a qualified name`]);
    }
    required('reportingInstance', event.reportingInstance);
    required('action', event.action);
    required('reason', event.reason);
    for (const field of ['reportingInstance', 'action', 'reason'] as const) {
      const value = event[field];
      if (typeof value === 'string' && value.length > 128) problems.push([field, 'FieldValueTooLong', 'Too long: may not be longer than 128']);
    }
    if (event.type !== 'Normal' && event.type !== 'Warning') problems.push(['type', 'FieldValueNotSupported', `Unsupported value: ${JSON.stringify(event.type)}: supported values: "Normal", "Warning"`]);
    if (typeof event.note === 'string' && Buffer.byteLength(event.note) > 1024) problems.push(['note', 'FieldValueTooLong', 'Too long: may not be longer than 1024']);
    required('regarding.kind', event.regarding?.kind);
    required('regarding.name', event.regarding?.name);
    if (problems.length > 0) return invalid('Event', 'events.k8s.io', name, problems);
    const created: FakeObject = {
      ...(event as unknown as FakeObject),
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { ...(event.metadata as FakeObject['metadata']), namespace, uid: this.nextUid(), resourceVersion: this.nextVersion() },
    };
    this.events.push(created);
    return { status: 201, body: created };
  }
}

/**
 * Writes an answer as the API server's Go net/http does: a body that fits its 2 KB buffer goes
 * with a Content-Length; a larger one (a pod, ~4.5 KB) goes chunked (Transfer-Encoding: chunked,
 * no Content-Length), in parts. Node sets Content-Length itself when res.end(body) comes before
 * the headers are sent, so the headers go first and the body follows in pieces.
 */
export const goBufferBytes = 2048;
function writeBody(res: http.ServerResponse, status: number, headers: Record<string, string>, text: string | Buffer): void {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  if (bytes.length <= goBufferBytes) {
    res.writeHead(status, { ...headers, 'content-length': String(bytes.length) });
    res.end(bytes);
    return;
  }
  res.writeHead(status, headers);
  res.flushHeaders();
  for (let at = 0; at < bytes.length; at += goBufferBytes) res.write(bytes.subarray(at, at + goBufferBytes));
  res.end();
}

/** The common name of a client certificate signed by the fake's CA, or undefined. */
function clientName(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const cn = socket.getPeerCertificate().subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
  /** Bytes sent as they are, as text/plain (a container's log). */
  readonly raw?: Buffer;
}

/** The last `lines` lines of a log (a last line without its newline counts), as the kubelet's tail finds them. */
function tailLines(log: Buffer, lines: number): Buffer {
  let end = log.length;
  if (end > 0 && log[end - 1] === 0x0a) end--;
  let start = end;
  for (let found = 0; start > 0; start--) {
    if (log[start - 1] === 0x0a && ++found === lines) break;
  }
  return log.subarray(start);
}

/** 409 when a precondition names another UID, as the API server's storage answers it. */
function uidPrecondition(wanted: string | undefined, pod: FakePod, name: string): Answer | undefined {
  if (!wanted || wanted === pod.metadata.uid) return undefined;
  return {
    status: 409,
    body: statusBody(409, `Precondition failed: UID in precondition: ${wanted}, UID in object meta: ${pod.metadata.uid}`, { name, kind: 'pods' }),
  };
}

/** 422 Invalid with one cause per problem, as the API server writes field errors. */
function invalid(kind: string, group: string, name: string, problems: readonly [string, string, string][]): Answer {
  const list = problems.map(([field, , message]) => `${field}: ${message}`);
  return {
    status: 422,
    body: statusBody(422, `${kind}.${group} "${name}" is invalid: ${list.length === 1 ? list[0] : `[${list.join(', ')}]`}`, {
      name,
      group,
      kind,
      causes: problems.map(([field, reason, message]) => ({ reason, message, field })),
    }),
  };
}

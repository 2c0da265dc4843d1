import type { V1ContainerStatus, V1ObjectMeta, V1Pod } from '@kubernetes/client-node';
import { DropError } from '../errors.ts';
import { isApiStatus, kubeFailure, type KubeClient } from '../kube.ts';
import { captureName, type ContainerLog, type PodCapture } from '../state/evidence.ts';
import type { PodTarget } from '../target.ts';
import { captured, podRef, type ActionContext, type ActionModule, type ActionOutcome } from './action.ts';
import { clipLogTail, jsonBytes } from './log-tail.ts';

/** At most this much of each container's log, counted as the log's bytes in the reply's JSON. */
export const maxContainerLogBytes = 64 * 1024;
/** At most this much log in all. */
export const maxCaptureLogBytes = 256 * 1024;
/** The manifest is kept whole up to this size (a pod is a few KB; annotations may reach 256 KiB). */
export const maxManifestBytes = 128 * 1024;
/** Containers whose logs are read; the alert's container comes first. */
export const maxContainersRead = 8;
/** The first read asks for this many lines … */
export const firstTailLines = 1000;
/** … and at most this many bytes, 4 times what is kept, so that it ends with the log's last line. */
export const readLimitBytes = 4 * maxContainerLogBytes;
/** Reads of one log before taking what the last one gave. */
export const maxReads = 4;

interface ContainerRef {
  readonly name: string;
  readonly type: ContainerLog['type'];
  readonly status: V1ContainerStatus | undefined;
}

/** The pod's containers in the order their logs are kept: the alert's first, then as the pod lists them. */
function containersOf(pod: V1Pod, target: PodTarget): ContainerRef[] {
  const status = pod.status;
  const of = (type: ContainerRef['type'], names: readonly { name: string }[] | undefined, statuses: readonly V1ContainerStatus[] | undefined) =>
    (names ?? []).map((c) => ({ name: c.name, type, status: statuses?.find((s) => s.name === c.name) }));
  const all = [
    ...of('container', pod.spec?.containers, status?.containerStatuses),
    ...of('ephemeralContainer', pod.spec?.ephemeralContainers, status?.ephemeralContainerStatuses),
    ...of('initContainer', pod.spec?.initContainers, status?.initContainerStatuses),
  ];
  const id = target.containerId;
  const alerting = id ? all.findIndex((c) => c.status?.containerID?.replace(/^[a-z0-9-]+:\/\//, '').startsWith(id)) : -1;
  return alerting > 0 ? [all[alerting]!, ...all.filter((_c, i) => i !== alerting)] : all;
}

/** Whether the container has run, so the kubelet has a log for it (a running, ended or restarted one). */
function hasRun(status: V1ContainerStatus | undefined): boolean {
  return Boolean(status?.state?.running || status?.state?.terminated || status?.lastState?.terminated);
}

/** The lines in a log's text (a last line without its newline counts). */
function lineCount(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return text === '' || text.endsWith('\n') ? n : n + 1;
}

/**
 * The tail of one container's log. The API has no "last N bytes": `tailLines` picks the last
 * lines and `limitBytes` then cuts what follows the first N bytes of them (kubectl's --tail and
 * --limit-bytes). So the read asks for the last 1000 lines within 256 KiB; when that is cut, the
 * lines are long: it asks again for half as many lines as came, until the answer ends with the
 * log's end. A 400 (the container is waiting to start, has no log yet) is a note, not a failure.
 */
async function readTail(kube: KubeClient, target: PodTarget, container: string, retryAfterSeconds: number, lines = firstTailLines, read = 1): Promise<{ text: string; whole: boolean } | { note: string }> {
  let text: string;
  try {
    text = await kube.core.readNamespacedPodLog({ namespace: target.namespace, name: target.name, container, tailLines: lines, limitBytes: readLimitBytes });
  } catch (error) {
    const failure = kubeFailure(error, `read the log of container ${container}`, retryAfterSeconds);
    if (isApiStatus(error, 400)) return { note: failure.message };
    throw failure;
  }
  // Decoding only grows the text (an invalid byte becomes 3), so a log that was cut reads as at
  // least the limit; a leading byte-order mark (3 bytes) is dropped by the decoding.
  const cut = Buffer.byteLength(text) >= readLimitBytes - 3;
  if (!cut) return { text, whole: lineCount(text) < lines };
  if (lines === 1 || read === maxReads) return { text, whole: false };
  const newlines = lineCount(text) - 1;
  return readTail(kube, target, container, retryAfterSeconds, Math.max(1, Math.floor((newlines > 1 ? newlines : lines) / 2)), read + 1);
}

/** The pod as JSON, times as the API writes them, without managedFields (who wrote which field). */
function manifestOf(pod: V1Pod): Record<string, unknown> {
  const json = JSON.parse(
    JSON.stringify({ apiVersion: 'v1', kind: 'Pod', ...pod }, function (this: Record<string, unknown>, key, value: unknown) {
      const raw = this[key];
      return raw instanceof Date ? raw.toISOString().replace(/\.000Z$/, 'Z') : value;
    }),
  ) as { metadata?: Record<string, unknown> };
  delete json.metadata?.managedFields;
  const bytes = Buffer.byteLength(JSON.stringify(json));
  if (bytes <= maxManifestBytes) return json;
  // A pod read from the API always has its metadata.
  const { name, namespace, uid } = pod.metadata as V1ObjectMeta;
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, uid }, omitted: `the manifest is ${bytes} bytes, more than ${maxManifestBytes}: only the pod's identity is kept` };
}

/** Reads the logs (the alert's container first) and keeps them within the limits. */
async function readLogs(kube: KubeClient, pod: V1Pod, context: ActionContext): Promise<ContainerLog[]> {
  const containers = containersOf(pod, context.target);
  const read = await Promise.all(
    containers.map(async (c, i) => {
      if (i >= maxContainersRead) return { note: `not read: at most ${maxContainersRead} containers are read` };
      if (!hasRun(c.status)) return { note: 'no log: the container has not started' };
      return readTail(kube, context.target, c.name, context.retryAfterSeconds);
    }),
  );
  let left = maxCaptureLogBytes;
  return containers.map((c, i) => {
    const got = read[i]!;
    if ('note' in got) return { container: c.name, type: c.type, log: '', bytes: 0, truncated: false, note: got.note };
    const room = Math.min(maxContainerLogBytes, left);
    const tail = clipLogTail(got.text, room);
    left -= jsonBytes(tail.text);
    const note = tail.clipped && room < maxContainerLogBytes ? { note: `cut to ${room} bytes: the capture keeps ${maxCaptureLogBytes} bytes of logs in all` } : {};
    return { container: c.name, type: c.type, log: tail.text, bytes: Buffer.byteLength(tail.text), truncated: tail.clipped || !got.whole, ...note };
  });
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

/** What was captured, in a few words: "manifest, logs of 2 containers (70.2 KiB)". */
function summary(capture: PodCapture): string {
  const logged = capture.logs.filter((l) => l.bytes > 0);
  const bytes = capture.logs.reduce((n, l) => n + l.bytes, 0);
  return `manifest, logs of ${logged.length} container${logged.length === 1 ? '' : 's'} (${kib(bytes)})`;
}

/** A capture that failed: final (`failed`) when required, else `skipped` so the next actions run. */
function notCaptured(error: unknown, required: boolean, ref: string, extra: Partial<ActionOutcome> = {}): ActionOutcome {
  // Only API failures are outcomes; anything else is a bug, and is thrown.
  if (!(error instanceof DropError)) throw error;
  if (required) {
    if (error.retryable) throw error;
    return { action: 'capture', status: 'failed', reason: `could not capture pod ${ref} (required): ${error.message}`, ...extra };
  }
  return { action: 'capture', status: 'skipped', reason: `could not capture pod ${ref}: ${error.message}; not required, so the next actions run`, ...extra };
}

/**
 * Records what the actions after it will destroy: the pod's manifest and the tail of each
 * container's log, carried in the reply event and kept in a Secret in drop's own namespace
 * (src/state/evidence.ts), before the next action runs. Under dry-run it reads and keeps
 * nothing. Not destructive. A capture that fails lets the next actions run unless `required`.
 */
export const captureAction: ActionModule = {
  name: 'capture',
  description: "Capture the pod's manifest and the tail of its containers' logs (reply event and a Secret in drop's namespace) before the next actions.",
  parameters: {
    type: 'object',
    additionalProperties: false,
    properties: {
      // When true, a capture that fails stops the rule's next actions (unless the step has
      // continueOnError), and an API failure is retried by the Broker before anything is destroyed.
      required: { type: 'boolean' },
    },
  },
  permissions: [{ apiGroup: '', resource: 'pods/log', verbs: ['get'] }],
  destructive: false,
  async run(context, parameters) {
    const required = parameters.required === true;
    const ref = podRef(context.target);
    const { kube, pod } = context;
    if (!kube || !pod) return { action: 'capture', status: 'dry-run', reason: `would capture the manifest and the container logs of pod ${ref} (no cluster, not read)` };
    const store = context.dryRun ? undefined : context.evidence;
    const name = store && context.event ? captureName(context.event, context.ruleName) : undefined;
    const sweep = name ? store!.sweep(1).then(() => undefined, (error: unknown) => (error as Error).message) : undefined;
    let logs: ContainerLog[];
    try {
      logs = await readLogs(kube, pod, context);
    } catch (error) {
      await sweep;
      return notCaptured(error, required, ref);
    }
    const capture: PodCapture = {
      pod: { namespace: context.target.namespace, name: context.target.name, uid: pod.metadata?.uid as string },
      capturedAt: new Date().toISOString(),
      secret: name ? `${store!.namespace}/${name}` : null,
      manifest: manifestOf(pod),
      logs,
    };
    if (!name) {
      const why = context.dryRun ? 'dry run: not kept' : 'no store: only the reply carries it';
      return { action: 'capture', status: context.dryRun ? 'dry-run' : 'done', reason: `captured pod ${ref}: ${summary(capture)} (${why})`, [captured]: capture };
    }
    let kept: 'created' | 'kept';
    try {
      kept = await store!.keep(name, capture, { rule: context.ruleName, event: context.event! });
    } catch (error) {
      await sweep;
      return notCaptured(error, required, ref, { [captured]: { ...capture, secret: null } });
    }
    const swept = await sweep;
    const notes = [kept === 'kept' ? 'the capture of an earlier delivery of this event is kept' : undefined, swept ? `could not delete old captures: ${swept}` : undefined].filter(Boolean);
    return { action: 'capture', status: 'done', reason: `kept in Secret ${capture.secret}: pod ${ref}, ${summary(capture)}${notes.length ? `; ${notes.join('; ')}` : ''}`, [captured]: capture };
  },
};

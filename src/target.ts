import type { FalcoAlert, OutputFieldValue } from './falco.ts';

/** The pod an alert is about, with what the alert says to tell it from a namesake. */
export interface PodTarget {
  readonly namespace: string;
  readonly name: string;
  /** `k8s.pod.uid` when the alert carries it: deletes then carry a UID precondition. */
  readonly uid: string | undefined;
  /** `container.id` (12 hex chars, a prefix of the runtime id) when the alert carries one. */
  readonly containerId: string | undefined;
}

export type TargetSelection = { readonly target: PodTarget } | { readonly target: undefined; readonly reason: string };

// RFC 1123 label (namespaces) and subdomain (pod names), as the API server validates them.
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const uidPattern = /^[0-9a-fA-F-]{1,64}$/;
const containerIdPattern = /^[0-9a-f]{12,64}$/;

export function isNamespaceName(value: string): boolean {
  return value.length <= 63 && dns1123Label.test(value);
}

export function isPodName(value: string): boolean {
  return value.length <= 253 && dns1123Subdomain.test(value);
}

function field(fields: Readonly<Record<string, OutputFieldValue>>, key: string): string | undefined {
  const value = fields[key];
  // Falco writes "<NA>" in text and null in output_fields for a field it could not read.
  return typeof value === 'string' && value !== '' && value !== '<NA>' ? value : undefined;
}

/** The fields a target is read from: the pod's names, and the identity that tells it from a namesake. */
function targetKeys(source: string): readonly string[] {
  const names = source === 'k8s_audit' ? ['ka.target.resource', 'ka.target.namespace', 'ka.target.name'] : ['k8s.ns.name', 'k8s.pod.name'];
  return [...names, 'k8s.pod.uid', 'container.id'];
}

/**
 * Why a field the target is read from is malformed: Falco writes these as strings, or null when
 * it could not read them. A number or a boolean is neither; read as "absent" it would skip the
 * identity check and let drop act on whatever pod now has the name.
 */
function malformedField(alert: FalcoAlert): string | undefined {
  for (const key of targetKeys(alert.source)) {
    const value = alert.outputFields[key];
    if (value !== undefined && value !== null && typeof value !== 'string') {
      return `${key} is the ${typeof value === 'boolean' ? 'boolean' : 'number'} ${String(value)}, not a string: a malformed alert is not acted on`;
    }
  }
  return undefined;
}

/**
 * Finds the pod an alert is about: `k8s.ns.name`/`k8s.pod.name` for syscall-style sources, or
 * for a k8s_audit alert whose API call targets a pod, `ka.target.namespace`/`ka.target.name`.
 * Host processes, other plugin sources and names that are not valid Kubernetes names have no
 * target, so a forged or odd value never reaches the API; nor do fields of the wrong type.
 */
export function selectTarget(alert: FalcoAlert): TargetSelection {
  const fields = alert.outputFields;
  const malformed = malformedField(alert);
  if (malformed) return { target: undefined, reason: malformed };
  let namespace: string | undefined;
  let name: string | undefined;
  if (alert.source === 'k8s_audit') {
    const resource = field(fields, 'ka.target.resource');
    if (resource !== 'pods') return { target: undefined, reason: `k8s_audit alert targets ${resource ?? 'no resource'}, not a pod` };
    namespace = field(fields, 'ka.target.namespace');
    name = field(fields, 'ka.target.name');
  } else {
    namespace = field(fields, 'k8s.ns.name');
    name = field(fields, 'k8s.pod.name');
  }
  if (namespace === undefined || name === undefined) {
    const where = field(fields, 'container.id') === 'host' ? 'a host process' : `a ${alert.source} alert without a pod`;
    return { target: undefined, reason: `${where}: no pod to act on` };
  }
  if (!isNamespaceName(namespace)) return { target: undefined, reason: `namespace ${JSON.stringify(namespace)} is not a valid Kubernetes name` };
  if (!isPodName(name)) return { target: undefined, reason: `pod name ${JSON.stringify(name)} is not a valid Kubernetes name` };
  // An identity the alert claims but that cannot be checked is a reason not to act at all.
  const uid = field(fields, 'k8s.pod.uid');
  if (uid !== undefined && !uidPattern.test(uid)) return { target: undefined, reason: `k8s.pod.uid ${JSON.stringify(uid)} is not a UID` };
  const containerId = field(fields, 'container.id')?.toLowerCase();
  if (containerId !== undefined && !containerIdPattern.test(containerId)) {
    return { target: undefined, reason: `container.id ${JSON.stringify(containerId)} is not a container id` };
  }
  return { target: { namespace, name, uid, containerId } };
}

import type { V1NetworkPolicy, V1NetworkPolicyEgressRule } from '@kubernetes/client-node';
import { isApiStatus, kubeFailure, type KubeClient } from '../kube.ts';
import { podRef, type ActionContext, type ActionModule } from './action.ts';
import { notPatched, patchPod } from './pod.ts';

/** The label that puts a pod in quarantine; its value is the pod's UID. */
export const quarantineLabel = 'falco-drop/quarantine';

/** The NetworkPolicy of one quarantined pod: a deterministic name, from the pod's UID. */
export function quarantinePolicyName(uid: string): string {
  return `falco-drop-quarantine-${uid}`;
}

interface EgressAllowance {
  readonly cidr: string;
  readonly ports?: readonly { readonly port: number; readonly protocol?: 'TCP' | 'UDP' | 'SCTP' }[];
}

const ipv4Cidr = '(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(?:3[0-2]|[12]?[0-9])';
const ipv6Cidr = '[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])';

function egressRules(allow: readonly EgressAllowance[]): V1NetworkPolicyEgressRule[] {
  return allow.map((a) => ({
    to: [{ ipBlock: { cidr: a.cidr } }],
    // The API server defaults protocol to TCP; spelled out so a re-read policy compares equal.
    ...(a.ports ? { ports: a.ports.map((p) => ({ port: p.port, protocol: p.protocol ?? 'TCP' })) } : {}),
  }));
}

/**
 * One policy per quarantined pod (not one shared per namespace): each response rule may allow
 * different egress, and a pod's policy is owned by the pod, so the garbage collector removes it
 * with the pod. It selects only the quarantine label, whose value is the pod's UID.
 */
function quarantinePolicy(context: ActionContext, uid: string, allow: readonly EgressAllowance[]): V1NetworkPolicy {
  const { namespace, name } = context.target;
  const egress = egressRules(allow);
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: quarantinePolicyName(uid),
      namespace,
      labels: { 'app.kubernetes.io/managed-by': 'falco-drop' },
      annotations: { 'falco-drop/rule': context.ruleName, 'falco-drop/falco-rule': context.alert.rule },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name, uid }],
    },
    // No ingress rule and no egress rule but the allowed ones: all other traffic is denied.
    // (The API server drops empty lists, so none is sent: a re-read policy compares equal.)
    spec: {
      podSelector: { matchLabels: { [quarantineLabel]: uid } },
      policyTypes: ['Ingress', 'Egress'],
      ...(egress.length > 0 ? { egress } : {}),
    },
  };
}

/** JSON with sorted keys and no undefined members: the client's typed objects compare by value. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
}

/** Creates the policy, or brings an existing one of that name to this spec. Says what it did. */
async function ensurePolicy(context: ActionContext, kube: KubeClient, policy: V1NetworkPolicy): Promise<'created' | 'updated' | 'unchanged'> {
  const namespace = context.target.namespace;
  const name = policy.metadata?.name as string;
  const dryRun = context.dryRun ? { dryRun: 'All' } : {};
  const failure = (error: unknown, verb: string): Error => kubeFailure(error, `${verb} NetworkPolicy ${namespace}/${name}`, context.retryAfterSeconds);
  try {
    await kube.networking.createNamespacedNetworkPolicy({ namespace, body: policy, ...dryRun });
    return 'created';
  } catch (error) {
    if (!isApiStatus(error, 409)) throw failure(error, 'create');
  }
  let existing: V1NetworkPolicy;
  try {
    existing = await kube.networking.readNamespacedNetworkPolicy({ namespace, name });
  } catch (error) {
    throw failure(error, 'read');
  }
  if (canonical(existing.spec) === canonical(policy.spec)) return 'unchanged';
  // Replace bound to the version just read: a concurrent change answers 409 rather than being lost.
  const body = { ...policy, metadata: { ...policy.metadata, resourceVersion: existing.metadata?.resourceVersion } };
  try {
    await kube.networking.replaceNamespacedNetworkPolicy({ namespace, name, body, ...dryRun });
  } catch (error) {
    throw failure(error, 'replace');
  }
  return 'updated';
}

/**
 * Cuts the pod off the network and leaves it running, for forensics: a NetworkPolicy that denies
 * all ingress and all egress but an optional allow-list (e.g. DNS), selecting a quarantine label
 * that is then merge-patched onto the pod. The policy comes first, so the pod is cut off the
 * moment the label lands. Both steps are idempotent: a redelivery finds both in place and skips.
 *
 * Destructive: it kills nothing and is undone by removing the label, but a quarantined pod
 * serves no traffic. Isolating every replica is an outage as complete as deleting them (worse:
 * nothing replaces them), so isolations count against the budget of destructive actions.
 */
export const isolateAction: ActionModule = {
  name: 'isolate',
  description: 'Cut the pod off the network with a deny-all NetworkPolicy (optional egress allow-list) selecting a quarantine label.',
  parameters: {
    type: 'object',
    additionalProperties: false,
    properties: {
      allowEgress: {
        type: 'array',
        maxItems: 32,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['cidr'],
          properties: {
            cidr: { type: 'string', pattern: `^(?:${ipv4Cidr}|${ipv6Cidr})$` },
            ports: {
              type: 'array',
              minItems: 1,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['port'],
                properties: {
                  port: { type: 'integer', minimum: 1, maximum: 65535 },
                  protocol: { type: 'string', enum: ['TCP', 'UDP', 'SCTP'] },
                },
              },
            },
          },
        },
      },
    },
  },
  permissions: [
    { apiGroup: '', resource: 'pods', verbs: ['patch'] },
    { apiGroup: 'networking.k8s.io', resource: 'networkpolicies', verbs: ['create', 'get', 'update'] },
  ],
  destructive: true,
  async run(context, parameters) {
    const allow = (parameters.allowEgress as EgressAllowance[] | undefined) ?? [];
    const ref = podRef(context.target);
    const egress = allow.length === 0 ? 'no egress' : `egress only to ${allow.map((a) => a.cidr).join(', ')}`;
    if (!context.kube) {
      return { action: 'isolate', status: 'dry-run', reason: `would isolate pod ${ref}: deny all ingress, ${egress} (no cluster, not sent)` };
    }
    const uid = context.pod?.metadata?.uid as string;
    const policy = quarantinePolicy(context, uid, allow);
    const step = await ensurePolicy(context, context.kube, policy);
    const labelled = context.pod?.metadata?.labels?.[quarantineLabel] === uid;
    if (!labelled) {
      const result = await patchPod(context, context.kube, { metadata: { labels: { [quarantineLabel]: uid } } });
      // The policy just made is owned by that (gone) pod UID: the garbage collector removes it.
      if (result !== 'patched') return { action: 'isolate', status: 'skipped', reason: notPatched(result, context) };
    }
    if (step === 'unchanged' && labelled) return { action: 'isolate', status: 'skipped', reason: `pod ${ref} is already isolated (${policy.metadata?.name})` };
    const what = `NetworkPolicy ${policy.metadata?.name} ${step}, label ${quarantineLabel}=${uid}${labelled ? ' already set' : ' set'}: deny all ingress, ${egress}`;
    if (context.dryRun) return { action: 'isolate', status: 'dry-run', reason: `would isolate pod ${ref} (server-side dry run accepted): ${what}` };
    return { action: 'isolate', status: 'done', reason: `isolated pod ${ref}: ${what}` };
  },
};

import { podRef, type ActionModule } from './action.ts';
import { notPatched, patchPod } from './pod.ts';

/**
 * A label or annotation key as Kubernetes validates it: an optional DNS-subdomain prefix (at most
 * 253 characters) and '/', then a name of 1–63 characters, alphanumeric at both ends.
 */
export const qualifiedNamePattern =
  '^(?:(?=[^/]{1,253}/)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?(?=[^/]{1,63}$)[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$';

/** A label value: empty, or 1–63 characters, alphanumeric at both ends. */
export const labelValuePattern = '^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$';

interface MetadataActionSpec {
  readonly name: 'label' | 'annotate';
  readonly field: 'labels' | 'annotations';
  readonly description: string;
  /** JSON schema of one value; null (remove the key) is always allowed on top. */
  readonly value: Readonly<Record<string, unknown>>;
  /** "labelled" / "annotated", for the outcome. */
  readonly past: string;
}

/** `key=value` for a value set, `key-` for a key removed (kubectl's syntax); long values shortened. */
function describe(changes: Readonly<Record<string, string | null>>): string {
  return Object.entries(changes)
    .map(([key, value]) => (value === null ? `${key}-` : `${key}=${value.length > 40 ? `${value.slice(0, 40)}…` : value}`))
    .join(', ');
}

/**
 * `label` and `annotate`: one JSON merge patch on the pod's `metadata.labels` or
 * `metadata.annotations` (null removes a key). Keys and values are checked by the parameter
 * schema when the policy loads, as the API server would check them. A pod that already has
 * exactly these values is skipped without a request, so a redelivery changes nothing.
 */
export function metadataAction(spec: MetadataActionSpec): ActionModule {
  const { name, field, past } = spec;
  return {
    name,
    description: spec.description,
    parameters: {
      type: 'object',
      additionalProperties: false,
      required: [field],
      properties: {
        [field]: {
          type: 'object',
          minProperties: 1,
          propertyNames: { type: 'string', pattern: qualifiedNamePattern },
          additionalProperties: { ...spec.value, nullable: true },
        },
      },
    },
    permissions: [{ apiGroup: '', resource: 'pods', verbs: ['patch'] }],
    // Labels and annotations change no running thing (though a label can change what selects the pod).
    destructive: false,
    async run(context, parameters) {
      const wanted = parameters[field] as Record<string, string | null>;
      const ref = podRef(context.target);
      if (!context.kube) return { action: name, status: 'dry-run', reason: `would set on pod ${ref}: ${describe(wanted)} (no cluster, not sent)` };
      const current = context.pod?.metadata?.[field] ?? {};
      const pending = Object.entries(wanted).filter(([key, value]) => (value === null ? key in current : current[key] !== value));
      if (pending.length === 0) return { action: name, status: 'skipped', reason: `pod ${ref} is already ${past}: ${describe(wanted)}` };
      const result = await patchPod(context, context.kube, { metadata: { [field]: wanted } });
      if (result !== 'patched') return { action: name, status: 'skipped', reason: notPatched(result, context) };
      const changes = describe(Object.fromEntries(pending));
      if (context.dryRun) return { action: name, status: 'dry-run', reason: `would set on pod ${ref}: ${changes} (server-side dry run accepted)` };
      return { action: name, status: 'done', reason: `${past} pod ${ref}: ${changes}` };
    },
  };
}

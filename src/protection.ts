/**
 * Namespaces no policy can act in: the control plane's, Knative's and Falco's. A policy can add
 * to this list, never remove from it; the service's own namespace is added at startup so drop
 * never acts on its own pods (or on Falcosidekick beside it).
 */
export const builtInProtectedNamespaces: readonly string[] = [
  'kube-system',
  'kube-public',
  'kube-node-lease',
  'knative-serving',
  'knative-eventing',
  'falco',
];

export function buildProtectedNamespaces(fromPolicy: readonly string[], ownNamespace: string | undefined): ReadonlySet<string> {
  return new Set([...builtInProtectedNamespaces, ...fromPolicy, ...(ownNamespace ? [ownNamespace] : [])]);
}

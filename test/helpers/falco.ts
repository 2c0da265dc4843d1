import { stringifyJson } from '../../src/json.ts';

/** Go's encoding/json escapes these in strings; Falcosidekick's bodies carry them so. */
function goEscape(json: string): string {
  return json.replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

export interface PayloadOptions {
  uuid?: string;
  rule?: string;
  priority?: string;
  source?: string;
  time?: string;
  hostname?: string;
  tags?: string[];
  output?: string;
  /** Merged over the default syscall fields; null values are kept (Falco's "<NA>"). */
  fields?: Record<string, string | number | bigint | null>;
  /** Replace the default fields entirely. */
  onlyFields?: Record<string, string | number | bigint | null>;
}

export const defaultFields = {
  'container.id': '2d90926af63e',
  'container.name': 'mysql',
  'evt.time': 1749720067118402960n,
  'evt.type': 'execve',
  'k8s.ns.name': 'default',
  'k8s.pod.name': 'mysql-db-7d59548d75-g9msc',
  'proc.cmdline': 'bash',
  'proc.name': 'bash',
  'proc.tty': 34816,
  'user.loginuid': -1,
  'user.name': 'root',
};

/** A Falco payload as Falcosidekick marshals it: Go field order, sorted map keys, Go escapes. */
export function falcoPayload(options: PayloadOptions = {}): string {
  const fields = options.onlyFields ?? { ...defaultFields, ...options.fields };
  const sorted = Object.fromEntries(Object.keys(fields).sort().map((k) => [k, fields[k]]));
  const rule = options.rule ?? 'Terminal shell in container';
  const priority = options.priority ?? 'Notice';
  const payload = {
    uuid: options.uuid ?? '8e2f6a7c-1d2b-4c3e-9f40-5a6b7c8d9e01',
    output:
      options.output ??
      `09:21:07.118402960: ${priority} A shell was spawned in a container with an attached terminal (evt_type=execve user=root user_loginuid=-1 process=bash proc_exepath=/usr/bin/bash parent=containerd-shim command=bash terminal=34816 exe_flags=<NA> container_id=2d90926af63e container_name=mysql)`,
    priority,
    rule,
    time: options.time ?? '2025-06-12T09:21:07.11840296Z',
    output_fields: sorted,
    source: options.source ?? 'syscall',
    tags: options.tags ?? ['T1059', 'container', 'maturity_stable', 'mitre_execution', 'shell'],
    ...(options.hostname === '' ? {} : { hostname: options.hostname ?? 'worker-node-2' }),
  };
  return goEscape(stringifyJson(payload));
}

/** The headers sdk-go writes for Falcosidekick's binary-mode CloudEvent (canonical casing). */
export function sidekickHeaders(id: string, options: { rule?: string; priority?: string; source?: string; eventsource?: string } = {}): Record<string, string> {
  return {
    'Ce-Eventsource': options.eventsource ?? 'syscall',
    'Ce-Hostname': 'worker-node-2',
    'Ce-Id': id,
    'Ce-Priority': options.priority ?? 'Notice',
    'Ce-Rule': options.rule ?? 'Terminal shell in container',
    'Ce-Source': options.source ?? 'https://falco.org',
    'Ce-Specversion': '1.0',
    'Ce-Time': '2025-06-12T09:21:07.11840296Z',
    'Ce-Type': 'falco.rule.output.v1',
    'Content-Type': 'application/json',
  };
}

/** What the Knative Broker adds when it delivers to a subscriber (contract.md §1.4). */
export function brokerHeaders(id: string, options: Parameters<typeof sidekickHeaders>[1] = {}): Record<string, string> {
  return {
    ...sidekickHeaders(id, options),
    'Ce-Knativearrivaltime': '2025-06-12T09:21:07.2201Z',
    'Kn-Namespace': 'falco-drop',
    Prefer: 'reply',
    Traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  };
}

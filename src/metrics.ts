/**
 * drop's Prometheus metrics (docs/metrics.md): what it received, decided and did, the
 * guard rails that stopped it, its answers, its calls to the Kubernetes API, the state it
 * shares with other replicas, and the process itself. Served as `GET /metrics` on the admin
 * listener (src/admin.ts), from a registry of its own (never prom-client's global one).
 *
 * Each replica counts what it did itself: a response answered from another replica's record
 * counts as `answered-elsewhere`, not as actions again, so sums across replicas add up.
 * Labels are bounded: response rule, action, guard and mode names come from drop and its
 * policy; Falco rule names, which anyone who can send an alert can choose, are kept to the
 * policy's own plus the first `falcoRuleLabels` others seen, the rest counted as `other`;
 * pod names, namespaces, alert text and ids are never labels.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import type { Decision } from './decisions.ts';
import { parsePriority } from './falco.ts';
import type { ApiCall } from './kube.ts';
import type { Policy } from './policy.ts';

export interface MetricsOptions {
  /** The policy: its match.rules names are labelled as they are. */
  readonly policy?: Policy;
  /** How many other Falco rule names get a label of their own (default 32). */
  readonly falcoRuleLabels?: number;
  /** Also collect the process's own metrics (CPU, memory, event loop, GC); default true. */
  readonly processMetrics?: boolean;
}

/** Every metric name starts with this. */
export const metricPrefix = 'falco_drop_';

/** Other Falco rule names labelled as they are, by default. */
export const defaultFalcoRuleLabels = 32;

/** Seconds: from 0.5 ms (an answer from memory) to 30 s (several API calls at their timeout). */
const answerBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds: from 1 ms (a local API server) to 10 s (past DROP_API_TIMEOUT_MS's default). */
const apiBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class DropMetrics {
  readonly registry = new Registry();
  private readonly alerts: Counter<'mode' | 'decision' | 'outcome'>;
  private readonly falcoAlerts: Counter<'falco_rule' | 'priority'>;
  private readonly decisions: Counter<'rule' | 'decision' | 'outcome'>;
  private readonly actions: Counter<'action' | 'outcome'>;
  private readonly guardSkips: Counter<'guard'>;
  private readonly answers: Counter<'status'>;
  private readonly answerSeconds: Histogram<'decision'>;
  private readonly apiCalls: Counter<'verb' | 'resource' | 'status_class'>;
  private readonly apiSeconds: Histogram<'verb' | 'resource'>;
  private readonly conflicts: Counter<'kind'>;
  private readonly falcoRules = new Set<string>();
  private readonly falcoRuleLabels: number;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Counter<L>({ name: metricPrefix + name, help, labelNames, registers });
    this.alerts = counter('alerts_received_total', 'Events delivered and answered (each event of a batch, redeliveries too), by delivery mode, decision and outcome.', ['mode', 'decision', 'outcome']);
    this.falcoAlerts = counter('falco_alerts_total', 'Falco alerts decided on (not counting redeliveries), by Falco rule (bounded: other past the limit) and priority.', ['falco_rule', 'priority']);
    this.decisions = counter('decisions_total', 'Decisions per response rule (policy names; (none) when no rule matched), not counting redeliveries.', ['rule', 'decision', 'outcome']);
    this.actions = counter('actions_total', 'Actions this replica ran (or would have, dry-run), by action and outcome.', ['action', 'outcome']);
    this.guardSkips = counter('guard_skips_total', 'Responses a guard rail stopped, by guard.', ['guard']);
    this.answers = counter('answers_total', 'Answers by HTTP status, one per event (a batch\'s events each with its own).', ['status']);
    this.answerSeconds = new Histogram({
      name: `${metricPrefix}answer_duration_seconds`,
      help: 'Time from a request\'s arrival to an event\'s answer, by decision.',
      labelNames: ['decision'],
      buckets: answerBuckets,
      registers,
    });
    this.apiCalls = counter('kube_api_requests_total', 'Calls to the Kubernetes API, by verb, resource and status class (2xx, 3xx, 4xx, 5xx, error: no answer).', ['verb', 'resource', 'status_class']);
    this.apiSeconds = new Histogram({
      name: `${metricPrefix}kube_api_request_duration_seconds`,
      help: 'Time of a call to the Kubernetes API, answer read to its end, by verb and resource.',
      labelNames: ['verb', 'resource'],
      buckets: apiBuckets,
      registers,
    });
    this.conflicts = counter(
      'state_conflicts_total',
      'Where another replica came first: in-progress (a copy answered 503: another replica is responding to the event), answered-elsewhere (a rule answered from another replica\'s record), write-conflict (a state Lease write answered 409: another replica wrote it first).',
      ['kind'],
    );
    this.falcoRuleLabels = options.falcoRuleLabels ?? defaultFalcoRuleLabels;
    for (const rule of options.policy?.rules ?? []) for (const name of rule.match.rules ?? []) this.falcoRules.add(name);
    this.falcoRuleLabels += this.falcoRules.size;
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: metricPrefix });
  }

  /** Counts one event answered (AppOptions.observe). */
  readonly observe = (decision: Decision): void => {
    this.alerts.inc({ mode: decision.mode, decision: decision.decision, outcome: decision.outcome });
    this.answers.inc({ status: String(decision.status) });
    this.answerSeconds.observe({ decision: decision.decision }, decision.durationMs / 1000);
    if (decision.code === 'DROP_IN_PROGRESS') this.conflicts.inc({ kind: 'in-progress' });
    // A redelivery answered from memory decided nothing new.
    if (decision.replayed) return;
    if (decision.falco) this.falcoAlerts.inc({ falco_rule: this.falcoRuleLabel(decision.falco.rule), priority: parsePriority(decision.falco.priority) ?? 'other' });
    if (decision.decision === 'skip') {
      this.guardSkips.inc({ guard: decision.guard as string });
      for (const rule of decision.rules.length > 0 ? decision.rules : ['(none)']) this.decisions.inc({ rule, decision: 'skip', outcome: 'skipped' });
    }
    if (decision.decision !== 'act') return;
    const elsewhere = new Set(decision.fromRecord);
    for (const rule of decision.rules) {
      this.decisions.inc({ rule, decision: 'act', outcome: elsewhere.has(rule) ? 'answered-elsewhere' : decision.outcome });
      if (elsewhere.has(rule)) this.conflicts.inc({ kind: 'answered-elsewhere' });
    }
    // The actions of rules answered from a record were counted by the replica that ran them.
    // A response partly answered from one (two rules, one done elsewhere) is left to that
    // replica's count too: the outcomes do not say which rule each belongs to.
    if (elsewhere.size > 0) return;
    for (const action of decision.actions) this.actions.inc({ action: action.action, outcome: action.status });
  };

  /** Counts one call to the Kubernetes API (createKubeClient's observe). */
  readonly observeApiCall = (call: ApiCall): void => {
    this.apiCalls.inc({ verb: call.verb, resource: call.resource, status_class: call.statusClass });
    this.apiSeconds.observe({ verb: call.verb, resource: call.resource }, call.seconds);
    if (call.status === 409 && call.resource === 'leases' && (call.verb === 'update' || call.verb === 'patch')) this.conflicts.inc({ kind: 'write-conflict' });
  };

  /** The Falco rule's label: its name while there is room for it, else `other`. */
  private falcoRuleLabel(name: string): string {
    if (this.falcoRules.has(name)) return name;
    if (this.falcoRules.size >= this.falcoRuleLabels) return 'other';
    this.falcoRules.add(name);
    return name;
  }

  /** `GET /metrics` on the admin app, in Prometheus' text format. */
  readonly routes = (app: FastifyInstance): void => {
    app.get('/metrics', async (_request, reply) => {
      reply.header('content-type', this.registry.contentType);
      return this.registry.metrics();
    });
  };
}

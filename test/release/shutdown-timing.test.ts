import t from 'tap';
import { closeTimeoutSeconds, defaultDrainSeconds } from '../../src/shutdown.ts';
import { config, find, readManifests, releaseStandalone, standalone } from './documents.ts';

/**
 * queue-proxy's drain: its preStop hook (/wait-for-drain) returns only once 30 s have passed
 * without a request (Knative Serving's DrainSleepDuration); drop gets SIGTERM after that.
 */
const queueProxyDrainSeconds = 30;
/** Room left for the kubelet, the last log lines and slow, shared nodes. */
const marginSeconds = 10;

for (const [where, manifests] of [
  ['config/400-service.yaml', config],
  ['release.yaml', readManifests(['release.yaml'])],
] as const) {
  t.test(`${where}: the grace period holds queue-proxy's drain, drop's drain and the requests in flight`, async (t) => {
    const spec = find(manifests, 'Service', 'drop').spec.template.spec;
    const env = spec.containers[0].env as { name: string; value: string }[];
    const drain = Number(env.find((e) => e.name === 'DROP_DRAIN_SECONDS')?.value ?? defaultDrainSeconds);
    const timeout = spec.timeoutSeconds as number;
    t.ok(Number.isInteger(timeout), 'timeoutSeconds is set (it becomes terminationGracePeriodSeconds)');
    const needed = queueProxyDrainSeconds + drain + closeTimeoutSeconds + marginSeconds;
    t.ok(timeout >= needed, `timeoutSeconds ${timeout} >= ${queueProxyDrainSeconds} (queue-proxy) + ${drain} (drain) + ${closeTimeoutSeconds} (in flight) + ${marginSeconds}`);
    t.ok(drain > 0, 'a drain is on: SIGTERM while traffic still flows resets nothing');
  });
}

// Without Knative (config/standalone/): no queue-proxy and no preStop hook, so SIGTERM comes at
// once, while the endpoints controller and kube-proxy still send for a few seconds; drop's drain
// answers through that. The grace period holds the drain and the requests in flight.
for (const [where, manifests] of [
  ['config/standalone/400-deployment.yaml', standalone],
  ['release-standalone.yaml', releaseStandalone],
] as const) {
  t.test(`${where}: the grace period holds drop's drain and the requests in flight`, async (t) => {
    const spec = find(manifests, 'Deployment', 'drop').spec.template.spec;
    const [container] = spec.containers;
    const env = container.env as { name: string; value: string }[];
    const drain = Number(env.find((e) => e.name === 'DROP_DRAIN_SECONDS')?.value ?? defaultDrainSeconds);
    const grace = spec.terminationGracePeriodSeconds as number;
    t.ok(Number.isInteger(grace), 'terminationGracePeriodSeconds is set (the default, 30, is too short)');
    t.equal(container.lifecycle?.preStop, undefined, 'no preStop hook: nothing before SIGTERM takes from the grace period');
    const needed = drain + closeTimeoutSeconds + marginSeconds;
    t.ok(grace >= needed, `terminationGracePeriodSeconds ${grace} >= ${drain} (drain) + ${closeTimeoutSeconds} (in flight) + ${marginSeconds}`);
    t.ok(drain > 0, 'a drain is on: SIGTERM while traffic still flows resets nothing');
  });
}

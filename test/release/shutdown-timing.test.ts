import t from 'tap';
import { closeTimeoutSeconds, defaultDrainSeconds } from '../../src/shutdown.ts';
import { config, find, readManifests } from './documents.ts';

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

/**
 * The entry point: the one impure file. It reads the environment, finds the cluster, loads the
 * policy, builds the app and listens; SIGTERM closes it. Everything it wires is tested through
 * buildApp and the end-to-end test that runs this file as `npm start` does.
 */
import { homedir } from 'node:os';
import { pino } from 'pino';
import { ActivePolicy } from './active-policy.ts';
import { buildAdminApp, listenAdmin } from './admin.ts';
import { buildApp } from './app.ts';
import { SenderAuth } from './auth.ts';
import { findKubeConfig, createKubeClient, serviceAccountDir, tokenReviewer } from './kube.ts';
import { DecisionLog, liveRoutes } from './live.ts';
import { LogOutput } from './log-output.ts';
import { DropMetrics } from './metrics.ts';
import { loadPolicyFiles, type Guards } from './policy.ts';
import { formatProblem } from './policy-problems.ts';
import { PolicyWatch, policyDirs } from './policy-watch.ts';
import { createSafety, scheduleSweeps, ClusterSafety, type MemorySafety } from './safety.ts';
import { closeTimeoutSeconds, Lifecycle, Shutdown } from './shutdown.ts';
import { parseSettings } from './settings.ts';
import { EvidenceStore, scheduleEvidenceSweeps } from './state/evidence.ts';

async function main(): Promise<void> {
  const settings = parseSettings(process.env);
  // stdout written in the background (sonic-boom, as pino does by default), kept at hand to be
  // ended before the process exits. Requests wait while 4 MiB of lines are unwritten (LogOutput).
  // sonic-boom's 16 KiB a write stays: it measures its last buffered chunk at every line, so a
  // larger chunk costs more per line (4 MiB made a flood of batches 50 times slower).
  const destination = pino.destination({ dest: 1, sync: false, minLength: 0 });
  const output = new LogOutput(destination);
  const logger = pino({ level: settings.logLevel, base: { service: settings.service } }, output);
  // The same load at startup and at each reload. What DROP_TALON_UNSUPPORTED=skip left out is
  // reported at warn once per policy (by its sha256), not at every unchanged re-read.
  let reported: string | undefined;
  const load = async () => {
    const loaded = await loadPolicyFiles(settings.policyPath, { talonUnsupported: settings.talonUnsupported });
    if (loaded.sha256 !== reported) {
      reported = loaded.sha256;
      for (const s of loaded.skipped) {
        logger.warn({ policy: loaded.policy.origin, sha256: loaded.sha256, file: s.file ?? loaded.policy.origin, line: s.line, column: s.column, path: s.path }, `skipped (DROP_TALON_UNSUPPORTED=skip): ${formatProblem(s, loaded.policy.origin)}`);
      }
    }
    return loaded;
  };
  const loaded = await load();
  const policy = loaded.policy;
  const found = findKubeConfig({ env: process.env, homeDir: homedir(), serviceAccountDir });
  // GET /metrics on the admin listener (src/metrics.ts): every event answered and every API call.
  const metrics = new DropMetrics({ policy });
  const kube = found.kubeConfig ? createKubeClient(found.kubeConfig, { timeoutMs: settings.apiTimeoutMs, observe: metrics.observeApiCall }) : undefined;
  const namespace = settings.namespace ?? (found.kubeConfig ? found.namespace : undefined);
  const clock = { now: () => new Date() };
  const dryRunReason = settings.dryRun ? 'DROP_DRY_RUN=true' : found.kubeConfig ? undefined : found.reason;
  if (settings.audience && !found.kubeConfig) {
    throw new Error(`DROP_AUDIENCE=${settings.audience}: checking tokens needs the Kubernetes API (TokenReview), but ${found.reason}`);
  }
  const senderAuth =
    settings.audience && kube
      ? new SenderAuth({
          audience: settings.audience,
          allowedSenders: settings.allowedSenders,
          namespace,
          review: tokenReviewer(kube, settings.retryAfterSeconds),
          clock,
        })
      : undefined;

  const dryRun = dryRunReason !== undefined;
  // Where the claims and the budget live: drop's namespace; run outside a pod without
  // DROP_NAMESPACE, the kubeconfig context's namespace, as kubectl would pick it.
  const stateNamespace = namespace ?? found.kubeConfig?.getContextObject(found.kubeConfig.getCurrentContext())?.namespace ?? 'default';
  const safetyFor = (guards: Guards): ClusterSafety | MemorySafety =>
    createSafety({
      kube,
      dryRun,
      namespace: stateNamespace,
      identity: settings.identity,
      clock,
      retryAfterSeconds: settings.retryAfterSeconds,
      destructivePerMinute: guards.destructivePerMinute,
      maxAlertAgeSeconds: guards.maxAlertAgeSeconds,
    });
  const safety = safetyFor(policy.guards);
  // The expired claims are swept by the safety state in force (a reload of the guards makes a new one).
  let stopSweeps = (): void => {};
  let stopEvidenceSweeps = (): void => {};
  const sweepWith = (current: ClusterSafety): ClusterSafety => {
    stopSweeps();
    stopSweeps = scheduleSweeps(current, logger);
    return current;
  };
  const active = new ActivePolicy({
    loaded,
    load,
    ownNamespace: namespace,
    safety,
    rebuildSafety: safety instanceof ClusterSafety ? (guards) => sweepWith(safetyFor(guards) as ClusterSafety) : undefined,
    log: logger,
    clock,
  });
  // What `capture` collects is kept in Secrets beside the claims; never under the dry-run.
  const evidence = kube && !dryRun ? new EvidenceStore({ core: kube.core, namespace: stateNamespace, clock, retryAfterSeconds: settings.retryAfterSeconds }) : undefined;
  const lifecycle = new Lifecycle();
  // This replica's recent decisions, for the live page on the admin listener.
  const decisions = new DecisionLog();
  const app = buildApp({
    lifecycle,
    logger,
    replySource: `/falco-drop/${namespace ?? 'local'}/${settings.service}`,
    redelivery: { max: settings.redeliveryMax, ttlMs: settings.redeliveryTtlSeconds * 1000 },
    dryRunReason,
    senderAuth,
    // Each event answered: counted for /metrics, and shown on the live page.
    logRoom: () => output.room(),
    observe: (decision) => {
      metrics.observe(decision);
      decisions.add(decision);
    },
    responder: {
      // At startup; each alert takes the policy, protected namespaces and safety state in force from `policy` below.
      policy,
      kube,
      dryRun,
      protectedNamespaces: active.current().protectedNamespaces,
      gracePeriodSeconds: settings.gracePeriodSeconds,
      retryAfterSeconds: settings.retryAfterSeconds,
      clock,
      safety,
      evidence,
    },
    policy: active,
  });

  if (dryRunReason) logger.warn({ dryRun: true, reason: dryRunReason }, `DRY-RUN: nothing will be changed in any cluster (${dryRunReason})`);
  else logger.info({ dryRun: false, cluster: found.kubeConfig?.getCurrentCluster()?.server, from: 'from' in found ? found.from : undefined }, 'acting on the cluster');
  logger.info({ policy: policy.origin, sha256: loaded.sha256, files: loaded.files, rules: policy.rules.map((r) => r.name) }, 'policy loaded');
  // Without DROP_POLICY the built-in default is in force: there is no file to watch.
  const watch = settings.policyPath
    ? new PolicyWatch({
        dirs: policyDirs(settings.policyPath, loaded.files),
        check: async () => void (await active.reload()),
        everyMs: settings.policyCheckSeconds * 1000,
        onWatchError: (dir, error) => logger.warn({ dir, err: error }, `cannot watch ${dir} for policy changes; checking every ${settings.policyCheckSeconds} s`),
      }).start()
    : undefined;
  if (watch) logger.info({ dirs: watch.watching, everySeconds: settings.policyCheckSeconds }, 'watching the policy files: a valid change is in force from the next alert, no restart needed');
  if (safety instanceof ClusterSafety) {
    sweepWith(safety);
    // Acting on a cluster, so the captures have their store too; a reload does not change it.
    stopEvidenceSweeps = scheduleEvidenceSweeps(evidence as EvidenceStore, logger);
    logger.info({ state: safety.home, namespace: stateNamespace, identity: settings.identity }, `claims and the destructive budget live in Leases in namespace ${stateNamespace}, shared by every replica`);
  } else {
    logger.info({ state: safety.home }, 'dry-run: claims and the destructive budget live in this process\'s memory, not in the cluster');
  }
  if (senderAuth) logger.info({ audience: senderAuth.audience, allowedSenders: senderAuth.allowedSenders }, 'sender authentication on: POST / needs a token for the audience from an allowed sender');
  else {
    // release.yaml names the Triggers' OIDC accounts ahead of OIDC being turned on: say they wait for it.
    logger.warn(
      { audience: null, allowedSenders: settings.allowedSenders ?? null },
      `sender authentication off: anyone who can reach this service can make it act (set DROP_AUDIENCE)${settings.allowedSenders ? '; DROP_ALLOWED_SENDERS is unused until then' : ''}`,
    );
  }

  // The operator's listener (src/admin.ts): closed after the event listener, so the metrics
  // can be scraped while the drain goes on.
  const admin = buildAdminApp({ logger, routes: [metrics.routes, liveRoutes(decisions, { replica: settings.identity, dryRun })] });
  const shutdown = new Shutdown({
    lifecycle,
    drainMs: settings.drainSeconds * 1000,
    closeTimeoutMs: closeTimeoutSeconds * 1000,
    close: async () => {
      await app.close();
      await admin.close();
    },
    cutConnections: () => {
      app.server.closeAllConnections();
      admin.server.closeAllConnections();
    },
    log: logger,
  });
  // Exits once every log line is written. The stream writes in the background: exiting with a
  // write on its way (which process.exit's own flush does not wait for) could put that line
  // after the last ones, or lose it. Ending the stream waits for it, then writes the rest.
  const exit = (code: number): void => {
    destination.once('close', () => process.exit(code));
    destination.end();
    // A stdout that no longer drains must not hold the exit past the grace period.
    setTimeout(() => process.exit(code), 2000);
  };
  const stop = (signal: 'SIGTERM' | 'SIGINT'): void => {
    stopSweeps();
    stopEvidenceSweeps();
    void watch?.stop();
    shutdown.signal(signal).then(
      () => {
        kube?.close();
        logger.info('stopped');
        exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'close failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await app.listen({ port: settings.port, host: settings.host });
  await listenAdmin(admin, { port: settings.adminPort, host: settings.host }, logger);
}

main().catch((error: unknown) => {
  // Startup failures (bad settings, invalid policy, unreadable kubeconfig) say what is wrong and exit 1.
  process.stderr.write(`falco-drop: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

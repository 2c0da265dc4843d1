import { defaultDrainSeconds } from './shutdown.ts';

/** The service's settings, read from the environment (the README's settings table). */
export interface Settings {
  readonly port: number;
  readonly host: string;
  /** DROP_DRY_RUN: true forces dry-run; false or unset acts when a cluster is configured. */
  readonly dryRun: boolean;
  /** DROP_POLICY: a file, a comma-separated list of files, or a directory (policy.ts `policyFiles`). */
  readonly policyPath: string | undefined;
  /** DROP_TALON_UNSUPPORTED: a Talon action drop cannot run is an error (default) or is skipped and logged. */
  readonly talonUnsupported: 'error' | 'skip';
  readonly logLevel: string;
  readonly gracePeriodSeconds: number;
  /**
   * DROP_POLICY_CHECK_SECONDS: how often the policy files are read again and compared, beside
   * watching their directories (src/policy-watch.ts), since a symlink swap can go unnoticed.
   */
  readonly policyCheckSeconds: number;
  readonly apiTimeoutMs: number;
  readonly retryAfterSeconds: number;
  readonly redeliveryMax: number;
  readonly redeliveryTtlSeconds: number;
  /** The namespace drop runs in (protected); from DROP_NAMESPACE, else the service account's. */
  readonly namespace: string | undefined;
  /** DROP_AUDIENCE: when set, POST / needs a service-account token for this audience. */
  readonly audience: string | undefined;
  /**
   * DROP_ALLOWED_SENDERS: usernames (globs) allowed to send; unset means the Triggers in drop's
   * namespace. Accepted without DROP_AUDIENCE (release.yaml sets it ready for the day OIDC is
   * turned on) and unused until DROP_AUDIENCE turns authentication on.
   */
  readonly allowedSenders: readonly string[] | undefined;
  /** Knative's K_SERVICE, used in the reply events' source. */
  readonly service: string;
  /**
   * This replica, as the holder of the claims it makes: DROP_IDENTITY, else HOSTNAME (in a pod,
   * the pod's name), else `drop`. Written for people to read; correctness never depends on it.
   */
  readonly identity: string;
  /** DROP_DRAIN_SECONDS: after SIGTERM, how long alerts are still answered before closing. */
  readonly drainSeconds: number;
}

export class SettingsError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid settings:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'SettingsError';
  }
}

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Parses the environment; throws SettingsError listing every bad value. */
export function parseSettings(env: Readonly<Record<string, string | undefined>>): Settings {
  const problems: string[] = [];
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name}=${raw}: must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  };
  const flag = (name: string): boolean => {
    const raw = env[name]?.toLowerCase();
    if (raw === undefined || raw === '') return false;
    if (['true', '1', 'yes'].includes(raw)) return true;
    if (!['false', '0', 'no'].includes(raw)) problems.push(`${name}=${env[name]}: must be true or false`);
    return false;
  };
  const talonUnsupported = env.DROP_TALON_UNSUPPORTED?.toLowerCase() || 'error';
  if (talonUnsupported !== 'error' && talonUnsupported !== 'skip') problems.push(`DROP_TALON_UNSUPPORTED=${env.DROP_TALON_UNSUPPORTED}: must be error or skip`);
  const logLevel = env.LOG_LEVEL?.toLowerCase() || 'info';
  if (!logLevels.includes(logLevel)) problems.push(`LOG_LEVEL=${env.LOG_LEVEL}: must be one of ${logLevels.join(', ')}`);
  const settings: Settings = {
    port: integer('PORT', 8080, 0, 65535),
    host: env.DROP_HOST || '0.0.0.0',
    dryRun: flag('DROP_DRY_RUN'),
    policyPath: env.DROP_POLICY || undefined,
    talonUnsupported: talonUnsupported === 'skip' ? 'skip' : 'error',
    logLevel,
    gracePeriodSeconds: integer('DROP_GRACE_PERIOD_SECONDS', 1, 0, 3600),
    policyCheckSeconds: integer('DROP_POLICY_CHECK_SECONDS', 10, 1, 3600),
    apiTimeoutMs: integer('DROP_API_TIMEOUT_MS', 5000, 100, 120_000),
    retryAfterSeconds: integer('DROP_RETRY_AFTER_SECONDS', 5, 1, 3600),
    redeliveryMax: integer('DROP_REDELIVERY_MAX', 10_000, 1, 10_000_000),
    redeliveryTtlSeconds: integer('DROP_REDELIVERY_TTL_SECONDS', 86_400, 1, 30 * 86_400),
    namespace: env.DROP_NAMESPACE || undefined,
    audience: env.DROP_AUDIENCE?.trim() || undefined,
    allowedSenders: allowedSenders(env.DROP_ALLOWED_SENDERS),
    service: env.K_SERVICE || 'drop',
    identity: env.DROP_IDENTITY || env.HOSTNAME || 'drop',
    drainSeconds: integer('DROP_DRAIN_SECONDS', defaultDrainSeconds, 0, 300),
  };
  if (settings.allowedSenders?.length === 0) problems.push(`DROP_ALLOWED_SENDERS=${env.DROP_ALLOWED_SENDERS}: names no sender`);
  if (problems.length > 0) throw new SettingsError(problems);
  return settings;
}

function allowedSenders(raw: string | undefined): string[] | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  return raw.split(',').map((name) => name.trim()).filter((name) => name !== '');
}

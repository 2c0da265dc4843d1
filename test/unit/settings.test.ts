import t from 'tap';
import { parseSettings, SettingsError, type Settings } from '../../src/settings.ts';

const defaults: Settings = {
  port: 8080,
  host: '0.0.0.0',
  dryRun: false,
  policyPath: undefined,
  talonUnsupported: 'error',
  logLevel: 'info',
  gracePeriodSeconds: 1,
  policyCheckSeconds: 10,
  apiTimeoutMs: 5000,
  retryAfterSeconds: 5,
  redeliveryMax: 10_000,
  redeliveryTtlSeconds: 86_400,
  namespace: undefined,
  audience: undefined,
  allowedSenders: undefined,
  service: 'drop',
  identity: 'drop',
  drainSeconds: 10,
};

/** The SettingsError parseSettings throws; anything else (or no throw) fails the test. */
function settingsError(env: Record<string, string>): SettingsError {
  try {
    parseSettings(env);
  } catch (error) {
    if (error instanceof SettingsError) return error;
    throw error;
  }
  throw new Error('the settings were accepted');
}

t.test('uses the defaults for an empty environment', async (t) => {
  t.same(parseSettings({}), defaults);
});

t.test('treats empty values as unset', async (t) => {
  const env = Object.fromEntries(
    ['PORT', 'DROP_HOST', 'DROP_DRY_RUN', 'DROP_POLICY', 'DROP_TALON_UNSUPPORTED', 'LOG_LEVEL', 'DROP_GRACE_PERIOD_SECONDS', 'DROP_API_TIMEOUT_MS', 'DROP_RETRY_AFTER_SECONDS', 'DROP_REDELIVERY_MAX', 'DROP_REDELIVERY_TTL_SECONDS', 'DROP_NAMESPACE', 'DROP_AUDIENCE', 'DROP_ALLOWED_SENDERS', 'K_SERVICE', 'DROP_IDENTITY', 'HOSTNAME', 'DROP_DRAIN_SECONDS'].map((name) => [name, '']),
  );
  t.same(parseSettings(env), defaults);
});

t.test('reads every variable', async (t) => {
  const env = {
    PORT: '9090',
    DROP_HOST: '127.0.0.1',
    DROP_DRY_RUN: 'true',
    DROP_POLICY: '/etc/drop/rules.yaml,/etc/drop/rules_override.yaml',
    DROP_TALON_UNSUPPORTED: 'Skip',
    LOG_LEVEL: 'DEBUG',
    DROP_GRACE_PERIOD_SECONDS: '0',
    DROP_POLICY_CHECK_SECONDS: '60',
    DROP_API_TIMEOUT_MS: '120000',
    DROP_RETRY_AFTER_SECONDS: '30',
    DROP_REDELIVERY_MAX: '1',
    DROP_REDELIVERY_TTL_SECONDS: '2592000',
    DROP_NAMESPACE: 'falco-drop',
    DROP_AUDIENCE: ' falco-drop ',
    DROP_ALLOWED_SENDERS: 'system:serviceaccount:falco-drop:drop-shell-oidc-eventing.knative.dev-trigger, system:serviceaccount:ops:*',
    K_SERVICE: 'drop-prod',
    K_REVISION: 'drop-prod-00001',
    HOSTNAME: 'drop-prod-00001-deployment-5d9f7c6b8-x2x7q',
    DROP_DRAIN_SECONDS: '0',
  };
  t.same(parseSettings(env), {
    port: 9090,
    host: '127.0.0.1',
    dryRun: true,
    policyPath: '/etc/drop/rules.yaml,/etc/drop/rules_override.yaml',
    talonUnsupported: 'skip',
    logLevel: 'debug',
    gracePeriodSeconds: 0,
    policyCheckSeconds: 60,
    apiTimeoutMs: 120_000,
    retryAfterSeconds: 30,
    redeliveryMax: 1,
    redeliveryTtlSeconds: 2_592_000,
    namespace: 'falco-drop',
    audience: 'falco-drop',
    allowedSenders: ['system:serviceaccount:falco-drop:drop-shell-oidc-eventing.knative.dev-trigger', 'system:serviceaccount:ops:*'],
    service: 'drop-prod',
    identity: 'drop-prod-00001-deployment-5d9f7c6b8-x2x7q',
    drainSeconds: 0,
  });
});

t.test('names the replica DROP_IDENTITY, else the pod (HOSTNAME), else drop', async (t) => {
  t.equal(parseSettings({ DROP_IDENTITY: 'replica-a', HOSTNAME: 'pod-b' }).identity, 'replica-a');
  t.equal(parseSettings({ HOSTNAME: 'pod-b' }).identity, 'pod-b');
  t.equal(parseSettings({}).identity, 'drop');
});

t.test('reads DROP_DRY_RUN as a flag in any case', async (t) => {
  const cases: [string, boolean][] = [
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['yes', true],
    ['Yes', true],
    ['false', false],
    ['False', false],
    ['0', false],
    ['no', false],
  ];
  for (const [value, dryRun] of cases) t.equal(parseSettings({ DROP_DRY_RUN: value }).dryRun, dryRun, value);
});

t.test('accepts each log level', async (t) => {
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) t.equal(parseSettings({ LOG_LEVEL: level }).logLevel, level, level);
});

t.test('accepts the bounds of each number', async (t) => {
  const cases: [string, string, keyof Settings, number][] = [
    ['PORT', '0', 'port', 0],
    ['PORT', '65535', 'port', 65_535],
    ['DROP_GRACE_PERIOD_SECONDS', '3600', 'gracePeriodSeconds', 3600],
    ['DROP_API_TIMEOUT_MS', '100', 'apiTimeoutMs', 100],
    ['DROP_RETRY_AFTER_SECONDS', '1', 'retryAfterSeconds', 1],
    ['DROP_RETRY_AFTER_SECONDS', '3600', 'retryAfterSeconds', 3600],
    ['DROP_REDELIVERY_MAX', '10000000', 'redeliveryMax', 10_000_000],
    ['DROP_REDELIVERY_TTL_SECONDS', '1', 'redeliveryTtlSeconds', 1],
    ['DROP_POLICY_CHECK_SECONDS', '1', 'policyCheckSeconds', 1],
    ['DROP_POLICY_CHECK_SECONDS', '3600', 'policyCheckSeconds', 3600],
  ];
  for (const [name, value, key, parsed] of cases) t.equal(parseSettings({ [name]: value })[key], parsed, `${name}=${value}`);
});

t.test('rejects each bad value with the variable, the value and what is allowed', async (t) => {
  const cases: [string, string, string][] = [
    ['PORT', 'http', 'PORT=http: must be a whole number from 0 to 65535'],
    ['DROP_TALON_UNSUPPORTED', 'ignore', 'DROP_TALON_UNSUPPORTED=ignore: must be error or skip'],
    ['PORT', '65536', 'PORT=65536: must be a whole number from 0 to 65535'],
    ['PORT', '-1', 'PORT=-1: must be a whole number from 0 to 65535'],
    ['PORT', '80.5', 'PORT=80.5: must be a whole number from 0 to 65535'],
    ['DROP_GRACE_PERIOD_SECONDS', '3601', 'DROP_GRACE_PERIOD_SECONDS=3601: must be a whole number from 0 to 3600'],
    ['DROP_API_TIMEOUT_MS', '99', 'DROP_API_TIMEOUT_MS=99: must be a whole number from 100 to 120000'],
    ['DROP_RETRY_AFTER_SECONDS', '0', 'DROP_RETRY_AFTER_SECONDS=0: must be a whole number from 1 to 3600'],
    ['DROP_REDELIVERY_MAX', '0', 'DROP_REDELIVERY_MAX=0: must be a whole number from 1 to 10000000'],
    ['DROP_REDELIVERY_TTL_SECONDS', '2592001', 'DROP_REDELIVERY_TTL_SECONDS=2592001: must be a whole number from 1 to 2592000'],
    ['DROP_POLICY_CHECK_SECONDS', '0', 'DROP_POLICY_CHECK_SECONDS=0: must be a whole number from 1 to 3600'],
    ['DROP_DRAIN_SECONDS', '301', 'DROP_DRAIN_SECONDS=301: must be a whole number from 0 to 300'],
    ['DROP_DRY_RUN', 'Maybe', 'DROP_DRY_RUN=Maybe: must be true or false'],
    ['LOG_LEVEL', 'Loud', 'LOG_LEVEL=Loud: must be one of fatal, error, warn, info, debug, trace, silent'],
  ];
  for (const [name, value, problem] of cases) {
    const error = settingsError({ [name]: value });
    t.same(error.problems, [problem], `${name}=${value}`);
  }
});

t.test('lists every bad value together in one SettingsError', async (t) => {
  const error = settingsError({ PORT: 'x', DROP_DRY_RUN: 'perhaps', LOG_LEVEL: 'verbose', DROP_API_TIMEOUT_MS: '0', DROP_HOST: '::' });
  t.same(error.problems, [
    'LOG_LEVEL=verbose: must be one of fatal, error, warn, info, debug, trace, silent',
    'PORT=x: must be a whole number from 0 to 65535',
    'DROP_DRY_RUN=perhaps: must be true or false',
    'DROP_API_TIMEOUT_MS=0: must be a whole number from 100 to 120000',
  ]);
  t.equal(error.name, 'SettingsError');
  t.type(error, Error);
  t.equal(
    error.message,
    'invalid settings:\n  LOG_LEVEL=verbose: must be one of fatal, error, warn, info, debug, trace, silent\n  PORT=x: must be a whole number from 0 to 65535\n  DROP_DRY_RUN=perhaps: must be true or false\n  DROP_API_TIMEOUT_MS=0: must be a whole number from 100 to 120000',
  );
});

t.test('allowed senders may be set before authentication is on, and must name someone', async (t) => {
  // release.yaml sets the Triggers' accounts while DROP_AUDIENCE stays off until OIDC is on.
  const senders = 'system:serviceaccount:falco-drop:drop-critical-oidc-eventing.knative.dev-trigger';
  t.match(parseSettings({ DROP_ALLOWED_SENDERS: senders }), { audience: undefined, allowedSenders: [senders] });
  t.same(settingsError({ DROP_AUDIENCE: 'falco-drop', DROP_ALLOWED_SENDERS: ' , ' }).problems, ['DROP_ALLOWED_SENDERS= , : names no sender']);
  t.same(settingsError({ DROP_ALLOWED_SENDERS: ',' }).problems, ['DROP_ALLOWED_SENDERS=,: names no sender'], 'an empty list is an error with authentication off too');
  t.same(parseSettings({ DROP_AUDIENCE: 'falco-drop' }).allowedSenders, undefined, 'unset: the default (Triggers in drop\'s namespace) applies');
});

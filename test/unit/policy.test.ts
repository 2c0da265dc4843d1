import { createHash } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import type { FalcoAlert } from '../../src/falco.ts';
import {
  defaultGuards,
  defaultPolicyYaml,
  evaluateRules,
  loadPolicy,
  loadPolicyFiles,
  parsePolicy,
  policyFromObject,
  selectRules,
  PolicyError,
  type Policy,
  type PolicyProblem,
} from '../../src/policy.ts';
import { describeSchemaError } from '../../src/policy-problems.ts';
import { falcoAlert, type AlertParts } from './fixtures/falco.ts';

const alert = (parts: AlertParts = {}): FalcoAlert => falcoAlert(parts);

/** The PolicyError `fn` throws; anything else (or no throw) fails the test. */
function policyError(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PolicyError) return error;
    throw error;
  }
  throw new Error('the policy was accepted');
}

const places = (problems: readonly PolicyProblem[]) => problems.map((p) => [p.line, p.column, p.path]);

t.test('the built-in default deletes the pod on "Terminal shell in container"', async (t) => {
  const policy = await loadPolicy(undefined);
  t.same(policy, {
    origin: 'built-in default',
    protectedNamespaces: [],
    guards: { cooldownSeconds: 60, destructivePerMinute: 30, maxAlertAgeSeconds: 900 },
    rules: [
      {
        name: 'terminal-shell',
        match: { rules: ['Terminal shell in container'] },
        actions: [{ action: 'delete', parameters: {}, continueOnError: false }],
        dryRun: false,
        continue: true,
        cooldownSeconds: 60,
      },
    ],
  });
  t.same(defaultGuards, policy.guards);
  t.same(parsePolicy(defaultPolicyYaml, 'x').rules, policy.rules, 'the default is the YAML it shows');
  t.same(selectRules(policy, alert(), 'default').map((r) => r.name), ['terminal-shell']);
  t.same(selectRules(policy, alert({ rule: 'Write below etc' }), 'default'), []);
});

t.test('builds every part of a full policy', async (t) => {
  const policy = parsePolicy(
    `protectedNamespaces: [payments]
guards:
  cooldownSeconds: 30
  maxAlertAgeSeconds: 60
rules:
  - name: shells
    description: any shell in prod
    match:
      rules: ["Terminal shell*"]
      priority: ">=notice"
      tags: {anyOf: [shell], allOf: [container]}
      source: syscall
      outputFields:
        - {field: user.name, equals: root}
        - {field: proc.tty, notEquals: 0}
        - {field: user.loginuid, oneOf: [-1, 0, "1000", true]}
        - {field: k8s.pod.name, prefix: mysql-}
      namespaces: {include: ["prod-*", default], exclude: [default-old]}
      anyOf:
        - {priority: "==Notice"}
        - {source: [syscall, k8s_audit]}
    actions:
      - action: delete
        parameters: {gracePeriodSeconds: 0}
        continueOnError: true
      - action: delete
    dryRun: true
    continue: false
    cooldownSeconds: 5
  - name: audit
    match: {}
    actions: [{action: delete}]
`,
    '/etc/drop/policy.yaml',
  );
  t.equal(policy.origin, '/etc/drop/policy.yaml');
  t.same(policy.protectedNamespaces, ['payments']);
  t.same(policy.guards, { cooldownSeconds: 30, destructivePerMinute: 30, maxAlertAgeSeconds: 60 }, 'a guard left out keeps its default');
  const [shells, audit] = policy.rules;
  t.same(shells, {
    name: 'shells',
    match: {
      rules: ['Terminal shell*'],
      priority: { comparator: '>=', priority: 'Notice' },
      tags: { anyOf: ['shell'], allOf: ['container'] },
      source: ['syscall'],
      outputFields: [
        { field: 'user.name', equals: 'root' },
        { field: 'proc.tty', notEquals: '0' },
        { field: 'user.loginuid', oneOf: ['-1', '0', '1000', 'true'] },
        { field: 'k8s.pod.name', prefix: 'mysql-' },
      ],
      namespaces: { include: ['prod-*', 'default'], exclude: ['default-old'] },
      anyOf: [{ priority: { comparator: '=', priority: 'Notice' } }, { source: ['syscall', 'k8s_audit'] }],
    },
    actions: [
      { action: 'delete', parameters: { gracePeriodSeconds: 0 }, continueOnError: true },
      { action: 'delete', parameters: {}, continueOnError: false },
    ],
    dryRun: true,
    continue: false,
    cooldownSeconds: 5,
  });
  t.same(audit, { name: 'audit', match: {}, actions: [{ action: 'delete', parameters: {}, continueOnError: false }], dryRun: false, continue: true, cooldownSeconds: 30 }, 'a rule\'s cooldown defaults to the guard\'s');
  t.same(selectRules(policy, alert(), 'default').map((r) => r.name), ['shells'], 'the built match selects the sample alert');
});

t.test('reports every problem of a file together, each at the line and column of its key', async (t) => {
  const text = `rules:
  - name: shell
    match:
      priority: ">=Loud"
      colour: red
    actions:
      - action: delete
        parameters:
          gracePeriodSeconds: soon
      - action: explode
  - name: shell
    actions:
      - action: delete
`;
  const error = policyError(() => parsePolicy(text, 'policy.yaml'));
  t.same(places(error.problems), [
    [4, 7, '/rules/0/match/priority'],
    [5, 7, '/rules/0/match/colour'],
    [9, 11, '/rules/0/actions/0/parameters/gracePeriodSeconds'],
    [10, 9, '/rules/0/actions/1/action'],
    [11, 5, '/rules/1'],
    [11, 5, '/rules/1/name'],
  ]);
  const messages = error.problems.map((p) => p.message);
  t.equal(messages[0], '"Loud" is not a Falco priority (Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)');
  t.equal(messages[1], 'unknown key "colour"');
  t.equal(messages[2], 'must be integer');
  t.match(messages[3], /^unknown action "explode" \(known: delete(, \w+)*\)$/);
  t.equal(messages[4], 'missing required key "match"');
  t.equal(messages[5], 'duplicate rule name "shell" (also /rules/0)');
  t.equal(error.name, 'PolicyError');
  t.type(error, Error);
  const lines = error.message.split('\n');
  t.equal(lines[0], 'invalid policy policy.yaml (6 problems):');
  t.equal(lines[2], '  policy.yaml:5:7 /rules/0/match/colour: unknown key "colour"');
  t.equal(lines.length, 7);
});

t.test('places problems in flow style by column', async (t) => {
  const line = '  - {name: a, match: {}, actions: [{action: delete, parameters: {"123": 1}}], bogus: 1}';
  const error = policyError(() => parsePolicy(`rules:\n${line}\n`, 'p.yaml'));
  t.same(places(error.problems), [
    [2, line.indexOf('parameters') + 1, '/rules/0/actions/0/parameters/123'],
    [2, line.indexOf('bogus') + 1, '/rules/0/bogus'],
  ], 'a key the path cannot name exactly is placed at its nearest ancestor');
});

t.test('reports YAML syntax errors with their line and column', async (t) => {
  const cases: { name: string; text: string; problems: [number, number, string][] }[] = [
    {
      name: 'an unclosed flow sequence',
      text: 'rules:\n  - name: a\n    match: {rules: [x}\n',
      problems: [
        [3, 22, 'Flow sequence in block collection must be sufficiently indented and end with a ]'],
        [3, 23, 'Flow map in block collection must be sufficiently indented and end with a }'],
      ],
    },
    { name: 'a duplicate key', text: 'rules:\n  - name: a\n    name: b\n', problems: [[3, 5, 'Map keys must be unique']] },
    { name: 'a tab as indentation', text: 'rules:\n\t- name: a\n', problems: [[2, 1, 'Tabs are not allowed as indentation']] },
  ];
  for (const c of cases) {
    const error = policyError(() => parsePolicy(c.text, 'p.yaml'));
    t.same(
      error.problems.map((p) => [p.line, p.column, p.message]),
      c.problems,
      c.name,
    );
    t.ok(error.problems.every((p) => p.path === ''), `${c.name}: a syntax error has no path`);
  }
});

t.test('reports shape problems of whole documents', async (t) => {
  const cases: { name: string; text: string; problem: PolicyProblem; message: string }[] = [
    {
      name: 'an empty file',
      text: '',
      problem: { path: '', line: undefined, column: undefined, message: 'no response rule: the file holds 0 "- action:" blocks and no "- rule:" block (a file of overrides needs the rules file it overrides, listed before it)' },
      message: 'invalid policy p.yaml (1 problem):\n  p.yaml /: no response rule: the file holds 0 "- action:" blocks and no "- rule:" block (a file of overrides needs the rules file it overrides, listed before it)',
    },
    {
      name: 'a file that is neither a mapping nor a list',
      text: 'hello\n',
      problem: { path: '', line: 1, column: 1, message: 'must be object' },
      message: 'invalid policy p.yaml (1 problem):\n  p.yaml:1:1 /: must be object',
    },
    {
      name: 'an empty list of rules',
      text: 'rules: []\n',
      problem: { path: '/rules', line: 1, column: 1, message: 'no response rule: the list is empty, so drop would act on nothing' },
      message: 'invalid policy p.yaml (1 problem):\n  p.yaml:1:1 /rules: no response rule: the list is empty, so drop would act on nothing',
    },
    {
      name: 'no rules',
      text: 'protectedNamespaces: [payments]\n',
      problem: { path: '', line: 1, column: 1, message: 'missing required key "rules"' },
      message: 'invalid policy p.yaml (1 problem):\n  p.yaml:1:1 /: missing required key "rules"',
    },
    {
      name: 'an unknown top-level key',
      text: 'rules: [{name: r, match: {}, actions: [{action: delete}]}]\nextra: 1\n',
      problem: { path: '/extra', line: 2, column: 1, message: 'unknown key "extra"' },
      message: 'invalid policy p.yaml (1 problem):\n  p.yaml:2:1 /extra: unknown key "extra"',
    },
    {
      name: 'a guard switched off',
      text: 'rules: [{name: r, match: {}, actions: [{action: annotate, parameters: {annotations: {a: b}}}]}]\nguards:\n  destructivePerMinute: 0\n',
      problem: { path: '/guards/destructivePerMinute', line: 3, column: 3, message: 'must be >= 1' },
      message: 'invalid policy p.yaml (1 problem):\n  p.yaml:3:3 /guards/destructivePerMinute: must be >= 1',
    },
  ];
  for (const c of cases) {
    const error = policyError(() => parsePolicy(c.text, 'p.yaml'));
    t.same(error.problems, [c.problem], c.name);
    t.equal(error.message, c.message, c.name);
  }
});

t.test('checks action parameters only where the action is known and they are an object', async (t) => {
  const rule = (action: string) => `rules:\n  - name: r\n    match: {}\n    actions:\n      ${action}\n`;
  const cases: { name: string; action: string; problems: [string, string][] }[] = [
    { name: 'valid parameters', action: '- {action: delete, parameters: {gracePeriodSeconds: 30}}', problems: [] },
    { name: 'an unknown parameter', action: '- {action: delete, parameters: {force: true}}', problems: [['/rules/0/actions/0/parameters/force', 'unknown key "force"']] },
    { name: 'a parameter out of range', action: '- {action: delete, parameters: {gracePeriodSeconds: 7200}}', problems: [['/rules/0/actions/0/parameters/gracePeriodSeconds', 'must be <= 3600']] },
    { name: 'parameters that are not an object', action: '- {action: delete, parameters: soon}', problems: [['/rules/0/actions/0/parameters', 'must be object']] },
    { name: 'an action that is not a string', action: '- {action: 3}', problems: [['/rules/0/actions/0/action', 'must be string']] },
    { name: 'a step that is not an object', action: '- delete', problems: [['/rules/0/actions/0', 'must be object']] },
  ];
  for (const c of cases) {
    const run = () => parsePolicy(rule(c.action), 'p.yaml');
    if (c.problems.length === 0) {
      t.same(run().rules[0]?.actions[0]?.parameters, { gracePeriodSeconds: 30 }, c.name);
      continue;
    }
    t.same(policyError(run).problems.map((p) => [p.path, p.message]), c.problems, c.name);
  }
});

t.test('policyFromObject lists every problem of a policy that is not from a file', async (t) => {
  const value = {
    rules: [
      5,
      { name: 1, match: 3, actions: 'x' },
      { name: 'n', match: { anyOf: [{ priority: 'x' }, 7] }, actions: [7, { action: 3 }] },
    ],
  };
  const error = policyError(() => policyFromObject(value, 'talon.yaml'));
  t.same(
    error.problems.map((p) => [p.path, p.line, p.message]),
    [
      ['/rules/0', undefined, 'must be object'],
      ['/rules/1/name', undefined, 'must be string'],
      ['/rules/1/match', undefined, 'must be object'],
      ['/rules/1/actions', undefined, 'must be array'],
      ['/rules/2/match/anyOf/1', undefined, 'must be object'],
      ['/rules/2/actions/0', undefined, 'must be object'],
      ['/rules/2/actions/1/action', undefined, 'must be string'],
      ['/rules/2/match/anyOf/0/priority', undefined, '"x" is not a Falco priority (Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)'],
    ],
    'in the order found when nothing has a place',
  );
  t.match(error.message, /^invalid policy talon\.yaml \(8 problems\):\n {2}talon\.yaml \/rules\/0: must be object\n/);
  t.same(policyError(() => policyFromObject(42, 'x')).problems, [{ path: '', line: undefined, column: undefined, message: 'must be object' }]);
  t.same(policyFromObject({ rules: [{ name: 'r', match: {}, actions: [{ action: 'delete' }] }] }, 'x').rules.map((r) => r.name), ['r'], 'a valid object builds');
  t.same(policyError(() => policyFromObject({ rules: [] }, 'x')).problems.map((p) => p.message), ['no response rule: the list is empty, so drop would act on nothing']);
});

t.test('loadPolicy reads a file', async (t) => {
  const dir = t.testdir({ 'policy.yaml': 'rules:\n  - name: any\n    match: {}\n    actions: [{action: delete}]\n', 'bad.yaml': 'rules: 5\n' });
  const policy = await loadPolicy(join(dir, 'policy.yaml'));
  t.equal(policy.origin, join(dir, 'policy.yaml'));
  t.same(policy.rules.map((r) => r.name), ['any']);
  const error = await loadPolicy(join(dir, 'bad.yaml')).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(error, PolicyError);
  t.equal((error as PolicyError).message, `invalid policy ${join(dir, 'bad.yaml')} (1 problem):\n  ${join(dir, 'bad.yaml')}:1:1 /rules: must be array`);
});

t.test('loadPolicyFiles names the files read and the sha256 of their bytes, which a user can compare with sha256sum', async (t) => {
  const text = 'rules:\n  - name: any\n    match: {}\n    actions: [{action: delete}]\n';
  const dir = t.testdir({ 'policy.yaml': text });
  const loaded = await loadPolicyFiles(join(dir, 'policy.yaml'));
  t.same(loaded.files, [join(dir, 'policy.yaml')]);
  t.equal(loaded.sha256, createHash('sha256').update(text).digest('hex'));
  t.same(loaded.policy.rules.map((r) => r.name), ['any']);
  const builtIn = await loadPolicyFiles(undefined);
  t.same(builtIn.files, [], 'the built-in default is read from no file');
  t.equal(builtIn.sha256, createHash('sha256').update(defaultPolicyYaml).digest('hex'));
});

t.test('loadPolicy of a missing file is a PolicyError naming the file', async (t) => {
  const path = join(t.testdir({}), 'missing.yaml');
  const error = await loadPolicy(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(error, PolicyError);
  const { problems, message } = error as PolicyError;
  t.match(problems, [{ path: '', line: undefined, column: undefined, message: /^cannot read: ENOENT/ }]);
  t.equal(problems.length, 1);
  t.match(message, `invalid policy ${path} (1 problem):\n  ${path} /: cannot read: ENOENT`);
});

t.test('evaluates rules in file order and stops after a matching rule with continue: false', async (t) => {
  const policy: Policy = parsePolicy(
    `rules:
  - {name: first, match: {}, actions: [{action: delete}]}
  - {name: not-a-shell, match: {rules: [Other]}, continue: false, actions: [{action: delete}]}
  - {name: stop, match: {priority: ">=Notice"}, continue: false, actions: [{action: delete}]}
  - {name: never, match: {}, actions: [{action: delete}]}
`,
    'p.yaml',
  );
  const evaluations = evaluateRules(policy, alert(), 'default');
  t.same(
    evaluations.map((e) => [e.rule.name, e.mismatch]),
    [
      ['first', undefined],
      ['not-a-shell', 'rule "Terminal shell in container" is not one of Other'],
      ['stop', undefined],
    ],
    'a rule that does not match never stops evaluation',
  );
  t.same(selectRules(policy, alert(), 'default').map((r) => r.name), ['first', 'stop']);
  t.same(
    selectRules(policy, alert({ priority: 'Debug' }), 'default').map((r) => r.name),
    ['first', 'never'],
    'when the stopping rule does not match, later rules apply',
  );
});

t.test('an empty match matches any alert, with or without a pod', async (t) => {
  const policy = parsePolicy('rules:\n  - {name: all, match: {}, actions: [{action: delete}]}\n', 'p.yaml');
  const alerts = [alert(), alert({ rule: 'Anything', priority: 'Debug', source: 'aws_cloudtrail', tags: [], fields: {} })];
  for (const a of alerts) {
    t.same(selectRules(policy, a, undefined).map((r) => r.name), ['all'], a.rule);
    t.same(selectRules(policy, a, 'kube-system').map((r) => r.name), ['all'], `${a.rule} in kube-system (protection is not the policy's job)`);
  }
});


t.test('describeSchemaError names the keyword when a schema error has no message', async (t) => {
  const error = { keyword: 'multipleOf', instancePath: '/guards/cooldownSeconds', schemaPath: '#/x', params: { multipleOf: 5 } };
  t.same(describeSchemaError(error), { path: '/guards/cooldownSeconds', message: 'multipleOf' });
  t.same(describeSchemaError({ ...error, message: 'must be multiple of 5' }), { path: '/guards/cooldownSeconds', message: 'must be multiple of 5' });
});

t.test('refuses a rule with more destructive actions than the budget allows in a minute', async (t) => {
  const yaml = 'guards: {destructivePerMinute: 1}\nrules:\n  - name: twice\n    match: {}\n    actions: [{action: evict}, {action: delete}, {action: label, parameters: {labels: {a: b}}}]\n';
  const error = t.throws(() => parsePolicy(yaml, 'p.yaml')) as PolicyError;
  t.match(error.message, 'p.yaml:5:5 /rules/0/actions: 2 destructive actions in one response, more than guards.destructivePerMinute (1): it could never run');
  const fine = parsePolicy(yaml.replace('destructivePerMinute: 1', 'destructivePerMinute: 2'), 'p.yaml');
  t.equal(fine.rules[0]?.actions.length, 3, 'within the budget it loads');
});

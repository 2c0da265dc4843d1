import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { LineCounter, parseDocument } from 'yaml';
import { parseFalcoAlert, type FalcoAlert } from '../src/falco.ts';
import { parseJson } from '../src/json.ts';
import { PolicyError, loadPolicyFiles, parsePolicy, parsePolicyFiles, selectRules, type Policy } from '../src/policy.ts';
import { selectTarget } from '../src/target.ts';
import { convertTalonRules } from '../src/talon.ts';
import { createFakeAndApp } from './helpers/app.ts';
import { makePod } from './helpers/fake-kube.ts';
import { falcoPayload, type PayloadOptions } from './helpers/falco.ts';
import { loadRequestFixture, sendRaw } from './helpers/http.ts';

const fixture = (name: string): string => readFileSync(new URL(`fixtures/talon/${name}`, import.meta.url), 'utf8');

function convert(text: string): unknown {
  const lines = new LineCounter();
  return convertTalonRules(parseDocument(text, { lineCounter: lines }), lines, 'talon.yaml');
}

function problemsOf(text: string): string[] {
  try {
    parsePolicy(text, 'talon.yaml');
  } catch (error) {
    if (error instanceof PolicyError) return error.problems.map((p) => `${p.line}:${p.column} ${p.message}`);
    throw error;
  }
  return [];
}

function alert(options: PayloadOptions = {}): FalcoAlert {
  return parseFalcoAlert(parseJson(falcoPayload(options))) as FalcoAlert;
}

function sample(name: string): FalcoAlert {
  const value = parseJson(readFileSync(new URL(`fixtures/alerts/${name}`, import.meta.url), 'utf8')) as { data?: unknown };
  return parseFalcoAlert((name.startsWith('cloudevent') ? value.data : value) as never) as FalcoAlert;
}

/** The names of the response rules that apply to an alert, as the responder selects them. */
function applying(policy: Policy, event: FalcoAlert): string[] {
  return selectRules(policy, event, selectTarget(event).target?.namespace).map((r) => r.name);
}

const terminate = `- action: Terminate
  actionner: kubernetes:terminate
`;
/** A rule with the given match lines (indented under match:) and one terminate action. */
const ruleWith = (match: string): string => `${terminate}- rule: r
  match:
${match
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
  actions:
    - action: Terminate
`;

t.test('the fixture using all four mapped actionners converts to this drop policy', async (t) => {
  const allow = { labels: { 'falco-drop/suspicious': 'true' } };
  t.same(convert(fixture('rules.yaml')), {
    rules: [
      {
        name: 'Shell in a workload',
        description: 'Label, then terminate, pods where someone opened a terminal, outside the system namespaces',
        match: {
          rules: ['Terminal shell in container'],
          priority: '>=Notice',
          anyOf: [
            {
              tags: { allOf: ['container', 'shell'] },
              outputFields: [
                { field: 'k8s.ns.name', notEquals: 'kube-system' },
                { field: 'k8s.ns.name', notEquals: 'falco' },
              ],
            },
            {
              tags: { allOf: ['mitre_execution'] },
              outputFields: [
                { field: 'k8s.ns.name', notEquals: 'kube-system' },
                { field: 'k8s.ns.name', notEquals: 'falco' },
              ],
            },
          ],
        },
        // terminate does not continue by default: the annotation step after it is dropped.
        actions: [
          { action: 'label', parameters: allow, continueOnError: false },
          { action: 'delete', parameters: { gracePeriodSeconds: 2, skipOwnerKinds: ['DaemonSet', 'StatefulSet'] }, continueOnError: false },
        ],
        dryRun: false,
        continue: false,
      },
      {
        name: 'Exec into a pod',
        match: { rules: ['Attach/Exec Pod'], priority: 'Notice', outputFields: [{ field: 'ka.target.resource', equals: 'pods' }] },
        actions: [
          {
            action: 'annotate',
            parameters: { annotations: { 'falco-drop/exec': 'someone ran a command in this pod', 'falco-drop/alert': 'a Falco rule fired here' } },
            continueOnError: false,
          },
          { action: 'label', parameters: allow, continueOnError: true },
        ],
        dryRun: false,
        continue: true,
      },
      {
        name: 'Sensitive files read',
        match: { priority: '>=Warning', tags: { allOf: ['filesystem', 'mitre_credential_access'] } },
        actions: [{ action: 'label', parameters: allow, continueOnError: false }],
        dryRun: false,
        continue: true,
      },
      {
        name: 'Quarantine critical payments',
        match: {
          priority: '>=Critical',
          anyOf: [{ outputFields: [{ field: 'k8s.ns.name', equals: 'payments' }] }, { outputFields: [{ field: 'k8s.ns.name', equals: 'checkout' }] }],
        },
        actions: [
          { action: 'isolate', parameters: { allowEgress: [{ cidr: '10.96.0.10/32' }] }, continueOnError: false },
          { action: 'label', parameters: allow, continueOnError: false },
        ],
        dryRun: true,
        continue: true,
      },
    ],
  });
});

t.test('the fixture loads as a policy unchanged and selects rules for the sample alerts as Talon would', async (t) => {
  const policy = parsePolicy(fixture('rules.yaml'), 'rules.yaml');
  t.same(applying(policy, sample('terminal-shell.json')), ['Shell in a workload'], 'a shell in default: the first rule, which stops the evaluation');
  t.same(applying(policy, sample('k8s-audit-exec.json')), ['Exec into a pod'], 'the k8s_audit exec alert about a pod');
  t.same(applying(policy, sample('host-event.json')), ['Sensitive files read'], 'the host event matches by its tags (and has no pod)');
  t.same(applying(policy, sample('cloudevent-structured.json')), ['Quarantine critical payments'], 'a Critical alert in payments');
  t.same(applying(policy, alert({ fields: { 'k8s.ns.name': 'kube-system' } })), [], 'k8s.ns.name!=kube-system keeps kube-system out');
  t.same(applying(policy, alert({ tags: ['container'] })), [], 'neither tag group is complete: container without shell, no mitre_execution');
  t.same(applying(policy, alert({ tags: ['mitre_execution'] })), ['Shell in a workload'], 'the second tag group alone is enough');
});

interface MatchCase {
  readonly name: string;
  readonly match: string;
  readonly becomes: unknown;
  readonly matches: readonly PayloadOptions[];
  readonly misses: readonly PayloadOptions[];
}

const matchCases: MatchCase[] = [
  {
    name: 'match.rules is a list of exact names, any of them',
    match: 'rules: [Write below etc, Terminal shell in container]',
    becomes: { rules: ['Write below etc', 'Terminal shell in container'] },
    matches: [{}, { rule: 'Write below etc' }],
    misses: [{ rule: 'Terminal shell in container 2' }, { rule: 'terminal shell in container' }],
  },
  {
    name: 'a priority without a comparator is that priority exactly',
    match: 'priority: Warning',
    becomes: { priority: 'Warning' },
    matches: [{ priority: 'Warning' }, { priority: 'warning' }],
    misses: [{ priority: 'Critical' }, { priority: 'Notice' }],
  },
  {
    name: 'a priority with = is that priority exactly',
    match: 'priority: "=Notice"',
    becomes: { priority: '=Notice' },
    matches: [{ priority: 'Notice' }],
    misses: [{ priority: 'Warning' }],
  },
  {
    name: 'priority >=Critical',
    match: 'priority: ">=Critical"',
    becomes: { priority: '>=Critical' },
    matches: [{ priority: 'Critical' }, { priority: 'Emergency' }],
    misses: [{ priority: 'Error' }],
  },
  {
    name: 'priority <Warning, with an event of unknown priority ranking lowest',
    match: 'priority: <warning',
    becomes: { priority: '<warning' },
    matches: [{ priority: 'Notice' }, { priority: 'Loud' }],
    misses: [{ priority: 'Warning' }],
  },
  {
    name: 'a comparator with no level matches every priority',
    match: 'priority: ">="',
    becomes: {},
    matches: [{ priority: 'Debug' }, { priority: 'Loud' }],
    misses: [],
  },
  {
    name: 'one tags item: all of its comma-separated tags (spaces removed)',
    match: 'tags: ["shell,container ,  T1059"]',
    becomes: { tags: { allOf: ['shell', 'container', 'T1059'] } },
    matches: [{}],
    misses: [{ tags: ['shell', 'container'] }],
  },
  {
    name: 'several tags items: any of them',
    match: 'tags: [nope, "shell, mitre_execution"]',
    becomes: { anyOf: [{ tags: { allOf: ['nope'] } }, { tags: { allOf: ['shell', 'mitre_execution'] } }] },
    matches: [{}, { tags: ['nope'] }],
    misses: [{ tags: ['shell'] }],
  },
  {
    name: '!= conditions: a missing or null field passes them',
    match: 'output_fields: ["k8s.ns.name!=kube-system, fd.name!=/etc/shadow"]',
    becomes: {
      outputFields: [
        { field: 'k8s.ns.name', notEquals: 'kube-system' },
        { field: 'fd.name', notEquals: '/etc/shadow' },
      ],
    },
    matches: [{}, { fields: { 'fd.name': null } }, { onlyFields: {} }],
    misses: [{ fields: { 'k8s.ns.name': 'kube-system' } }, { fields: { 'fd.name': '/etc/shadow' } }],
  },
  {
    name: '= conditions compare text, quotes removed; a missing or null field fails them',
    match: 'output_fields: [\'proc.tty=34816,user.name="root"\']',
    becomes: {
      outputFields: [
        { field: 'proc.tty', equals: '34816' },
        { field: 'user.name', equals: 'root' },
      ],
    },
    matches: [{}],
    misses: [{ fields: { 'user.name': null } }, { onlyFields: { 'proc.tty': 34816 } }, { fields: { 'user.name': 'admin' } }],
  },
  {
    name: 'tags items × output_fields items: every pairing is an alternative',
    match: 'tags: [shell, k8s]\noutput_fields: [k8s.ns.name=default, k8s.ns.name=prod]',
    becomes: {
      anyOf: [
        { tags: { allOf: ['shell'] }, outputFields: [{ field: 'k8s.ns.name', equals: 'default' }] },
        { tags: { allOf: ['shell'] }, outputFields: [{ field: 'k8s.ns.name', equals: 'prod' }] },
        { tags: { allOf: ['k8s'] }, outputFields: [{ field: 'k8s.ns.name', equals: 'default' }] },
        { tags: { allOf: ['k8s'] }, outputFields: [{ field: 'k8s.ns.name', equals: 'prod' }] },
      ],
    },
    matches: [{}, { tags: ['k8s'], fields: { 'k8s.ns.name': 'prod' } }],
    misses: [{ tags: ['k8s'], fields: { 'k8s.ns.name': 'dev' } }, { tags: [] }],
  },
  {
    name: 'source is compared exactly (an alert without one is syscall)',
    match: 'source: k8s_audit',
    becomes: { source: 'k8s_audit' },
    matches: [{ source: 'k8s_audit' }],
    misses: [{}],
  },
  {
    name: 'an empty source, an empty match: any alert',
    match: 'source: ""',
    becomes: {},
    matches: [{}, { rule: 'Anything', priority: 'Debug' }],
    misses: [],
  },
];

for (const c of matchCases) {
  t.test(c.name, async (t) => {
    const text = ruleWith(c.match);
    t.same((convert(text) as { rules: { match: unknown }[] }).rules[0]!.match, c.becomes, 'becomes this drop match');
    const policy = parsePolicy(text, 'talon.yaml');
    for (const options of c.matches) t.same(applying(policy, alert(options)), ['r'], `matches ${JSON.stringify(options)}`);
    for (const options of c.misses) t.same(applying(policy, alert(options)), [], `misses ${JSON.stringify(options)}`);
  });
}

t.test('a rule without match applies to every alert', async (t) => {
  const policy = parsePolicy(`${terminate}- rule: everything\n  actions: [{action: Terminate}]\n`, 'talon.yaml');
  t.same(applying(policy, alert({ rule: 'Anything' })), ['everything']);
});

interface ChainCase {
  readonly name: string;
  readonly yaml: string;
  readonly steps: readonly { action: string; continueOnError?: boolean; parameters?: unknown }[];
  readonly rule?: { dryRun?: boolean; continue?: boolean };
}

const blocks = `- action: Label
  actionner: kubernetes:label
  parameters:
    labels: {a: "1"}
- action: Annotate
  actionner: kubernetes:annotation
  parameters:
    annotations: {note: x}
${terminate}`;

const chainCases: ChainCase[] = [
  {
    name: 'terminate ends the chain by default (its actionner does not continue)',
    yaml: '- action: Terminate\n    - action: Label',
    steps: [{ action: 'delete' }],
  },
  {
    name: 'terminate with continue: true lets the chain go on',
    yaml: '- action: Terminate\n      continue: true\n    - action: Label',
    steps: [{ action: 'delete' }, { action: 'label' }],
  },
  {
    name: 'label, annotation and networkpolicy continue by default',
    yaml: '- action: Label\n    - action: Annotate\n    - {action: Cut, actionner: kubernetes:networkpolicy}\n    - action: Terminate',
    steps: [{ action: 'label' }, { action: 'annotate' }, { action: 'isolate' }, { action: 'delete' }],
  },
  {
    name: 'an action with continue: false is the last one (string or YAML boolean)',
    yaml: '- action: Label\n      continue: "false"\n    - action: Annotate',
    steps: [{ action: 'label' }],
  },
  {
    name: 'ignore_errors becomes continueOnError',
    yaml: '- action: Label\n      ignore_errors: true\n    - action: Annotate\n      ignore_errors: "false"',
    steps: [{ action: 'label', continueOnError: true }, { action: 'annotate', continueOnError: false }],
  },
  {
    name: 'dry_run and continue on the rule become dryRun and continue',
    yaml: '- action: Label\n  dry_run: true\n  continue: false',
    steps: [{ action: 'label' }],
    rule: { dryRun: true, continue: false },
  },
  {
    name: 'the rule-level continue defaults to true: later rules run too',
    yaml: '- action: Label\n  continue: null\n  dry_run: "false"',
    steps: [{ action: 'label' }],
    rule: { dryRun: false, continue: true },
  },
];

for (const c of chainCases) {
  t.test(c.name, async (t) => {
    const converted = convert(`${blocks}- rule: r\n  actions:\n    ${c.yaml}\n`) as { rules: { actions: { action: string; continueOnError: boolean }[]; dryRun: boolean; continue: boolean }[] };
    const rule = converted.rules[0]!;
    t.same(
      rule.actions.map((s) => ({ action: s.action, continueOnError: s.continueOnError })),
      c.steps.map((s) => ({ action: s.action, continueOnError: s.continueOnError ?? false })),
    );
    t.same({ dryRun: rule.dryRun, continue: rule.continue }, { dryRun: false, continue: true, ...c.rule });
  });
}

t.test('a block can set continue and ignore_errors for every rule using it; a step overrides them', async (t) => {
  const text = `- action: Stop here
  actionner: kubernetes:label
  continue: false
  ignore_errors: true
  parameters: {labels: {a: "1"}}
${terminate}- rule: inherits
  actions: [{action: Stop here}, {action: Terminate}]
- rule: overrides
  actions: [{action: Stop here, continue: true, ignore_errors: false}, {action: Terminate}]
`;
  const { rules } = convert(text) as { rules: { actions: { action: string; continueOnError: boolean }[] }[] };
  t.same(rules[0]!.actions.map((s) => [s.action, s.continueOnError]), [['label', true]]);
  t.same(rules[1]!.actions.map((s) => [s.action, s.continueOnError]), [['label', false], ['delete', false]]);
});

t.test("a step's parameters merge with its block's as Talon merges them", async (t) => {
  const text = `- action: Terminate
  actionner: kubernetes:terminate
  parameters: {grace_period_seconds: 5, ignore_daemonsets: true, ignore_standalone_pods: null}
- action: Cut
  actionner: kubernetes:networkpolicy
  parameters: {allow_cidr: [10.0.0.0/8]}
- action: Note
  actionner: kubernetes:annotation
  parameters: {annotations: {shared: from-block, block: b}}
- rule: r
  actions:
    - action: Note
      parameters: {annotations: {shared: from-step, step: s}}
    - action: Cut
      parameters: {allow_cidr: [192.168.0.0/16]}
    - action: Terminate
      parameters: {grace_period_seconds: 0, ignore_statefulsets: true, ignore_standalone_pods: true}
`;
  const { rules } = convert(text) as { rules: { actions: { parameters: unknown }[] }[] };
  t.same(
    rules[0]!.actions.map((s) => s.parameters),
    [
      { annotations: { shared: 'from-block', step: 's', block: 'b' } },
      { allowEgress: [{ cidr: '10.0.0.0/8' }, { cidr: '192.168.0.0/16' }] },
      { gracePeriodSeconds: 0, skipOwnerKinds: ['DaemonSet', 'StatefulSet'], skipStandalone: true },
    ],
    "maps: the block's entry wins a shared key; lists: the block's then the step's; scalars: the step's",
  );
});

t.test('parameters map onto the drop actions', async (t) => {
  const text = `- rule: r
  notifiers: []
  actions:
    - action: Remove labels
      actionner: kubernetes:label
      additional_contexts: []
      parameters: {level: pod, labels: {gone: "", also-gone: null, kept: "yes"}}
    - action: Cut everything
      actionner: kubernetes:networkpolicy
    - action: Terminate without options
      actionner: kubernetes:terminate
      parameters: {ignore_daemonsets: false}
- action: Unused
  actionner: kubernetes:annotation
  description: an action block may come after the rules that use it, or be unused
`;
  const { rules } = convert(text) as { rules: { actions: { action: string; parameters: unknown }[] }[] };
  t.same(rules[0]!.actions, [
    { action: 'label', parameters: { labels: { gone: null, 'also-gone': null, kept: 'yes' } }, continueOnError: false },
    { action: 'isolate', parameters: {}, continueOnError: false },
    { action: 'delete', parameters: {}, continueOnError: false },
  ]);
});

t.test('an empty Talon file, or one of action blocks only, is refused: drop would act on nothing', async (t) => {
  t.throws(() => parsePolicy('[]\n', 'talon.yaml'), { message: /no response rule: the file holds 0 "- action:" blocks and no "- rule:" block/ });
  t.throws(() => parsePolicy(terminate, 'talon.yaml'), { message: /no response rule: the file holds 1 "- action:" block and no "- rule:" block \(a file of overrides needs the rules file it overrides, listed before it\)/ });
});

interface ErrorCase {
  readonly name: string;
  readonly yaml: string;
  /** `line:column message` patterns, in file order. */
  readonly problems: readonly RegExp[];
}

const errorCases: ErrorCase[] = [
  {
    name: 'an unsupported actionner is named, with its line, even in a block no rule uses',
    yaml: fixture('unsupported-actionner.yaml'),
    problems: [/^6:3 actionner "kubernetes:tcpdump" is not supported by drop \(supported: kubernetes:terminate, kubernetes:label, kubernetes:annotation, kubernetes:networkpolicy\)$/],
  },
  {
    name: 'a bad priority is reported where it is written, every one of them',
    yaml: fixture('bad-priority.yaml'),
    problems: [/^7:5 incorrect priority ">=Loud"/, /^13:5 incorrect priority ">= Critical"/],
  },
  {
    name: 'a step naming no block and no actionner',
    yaml: '- rule: r\n  actions:\n    - action: Nowhere\n',
    problems: [/^3:7 missing actionner: no "- action: Nowhere" block names one/],
  },
  {
    name: 'an inline unsupported actionner',
    yaml: '- rule: r\n  actions:\n    - {action: Lambda, actionner: aws:lambda}\n    - {action: Odd, actionner: 7}\n',
    problems: [/^3:24 actionner "aws:lambda" is not supported/, /^4:21 actionner "7" is not supported/],
  },
  {
    name: 'items that are not action or rule blocks',
    yaml: '- just text\n- {action: a, rule: b}\n- {description: neither}\n',
    problems: [/^1:3 each item/, /^2:3 each item/, /^3:3 each item/],
  },
  {
    name: 'names that are missing or empty',
    yaml: `- action: ""\n- rule: "  "\n  actions: [{action: 5}]\n`,
    problems: [/^1:3 action must be a non-empty name/, /^2:3 rule must be a non-empty name/, /^3:14 action must be a non-empty name/],
  },
  {
    name: 'rules without actions',
    yaml: '- rule: none\n- rule: empty\n  actions: []\n- rule: wrong\n  actions: {action: x}\n- rule: odd\n  actions: [text]\n',
    problems: [/^1:3 no action specified/, /^3:3 no action specified/, /^5:3 no action specified/, /^7:13 must be a map with an action name/],
  },
  {
    name: 'unknown keys, which Talon would ignore',
    yaml: '- action: a\n  actioner: kubernetes:label\n- rule: r\n  dryrun: true\n  match: {rule: [x], priority: Notice}\n  actions: [{action: a, actionner: kubernetes:label, parameters: {labels: {a: b}}, continu: false}]\n',
    problems: [/^2:3 unknown key "actioner"/, /^4:3 unknown key "dryrun"/, /^5:11 unknown key "rule"/, /^6:84 unknown key "continu"/],
  },
  {
    name: 'Talon features drop does not have',
    yaml: '- action: a\n  actionner: kubernetes:label\n  parameters: {labels: {a: b}}\n  output: {target: aws:s3}\n  additional_contexts: [aws]\n- rule: r\n  notifiers: [slack]\n  actions: [{action: a}]\n',
    problems: [/^4:3 output is not supported/, /^5:3 additional_contexts is not supported/, /^7:3 notifiers is not supported/],
  },
  {
    name: 'flags that are not true or false',
    yaml: `${terminate}- rule: r\n  continue: yes\n  dry_run: 1\n  actions: [{action: Terminate, continue: "no", ignore_errors: maybe}]\n`,
    problems: [/^4:3 can be true or false only/, /^5:3 can be true or false only/, /^6:33 can be true or false only/, /^6:49 can be true or false only/],
  },
  {
    name: 'match parts of the wrong shape',
    yaml: `${terminate}- rule: a\n  match: [x]\n  actions: [{action: Terminate}]\n- rule: b\n  match: {rules: x, tags: [1], source: [syscall]}\n  actions: [{action: Terminate}]\n`,
    problems: [/^4:3 must be a map/, /^7:11 must be a list/, /^7:28 must be a string/, /^7:32 must be a string/],
  },
  {
    name: 'rule names drop cannot match exactly',
    yaml: ruleWith('rules: ["", "Run shell*", "What?"]'),
    problems: [/^5:13 "": Talon matches rule names exactly/, /^5:17 "Run shell\*"/, /^5:31 "What\?"/],
  },
  {
    name: 'a priority that is not a string',
    yaml: ruleWith('priority: 4'),
    problems: [/^5:5 incorrect priority 4/],
  },
  {
    name: 'tags Talon rejects',
    yaml: ruleWith('tags: ["shell,", "-x"]'),
    problems: [/^5:12 incorrect tag ""/, /^5:22 incorrect tag "-x"/],
  },
  {
    name: 'output field conditions Talon rejects or would misread',
    yaml: ruleWith('output_fields:\n  - "k8s.ns.name = default"\n  - "=default"\n  - "proc.cmdline=a=b"\n  - "user.name!=a!b"\n  - "k8s.ns.name=a,"'),
    problems: [/^6:9 incorrect output field condition "k8s.ns.name = default"/, /^7:9 "=default" names no field/, /^8:9 "proc.cmdline=a=b": Talon cannot read/, /^9:9 "user.name!=a!b": Talon cannot read/, /^10:9 incorrect output field condition ""/],
  },
  {
    name: 'terminate parameters drop cannot honour or does not know',
    yaml: '- action: t\n  actionner: kubernetes:terminate\n  parameters: {min_healthy_replicas: 50%, ignore_jobs: true, ignore_daemonsets: "yes", grace_period_seconds: 7200}\n- rule: r\n  actions: [{action: t}]\n',
    problems: [
      /^3:16 min_healthy_replicas is not supported: drop's delete does not count/,
      /^3:43 unknown parameter "ignore_jobs" for kubernetes:terminate/,
      /^3:62 ignore_daemonsets must be true or false/,
      /^3:88 must be <= 3600 \(as drop's delete\)/,
    ],
  },
  {
    name: 'label and annotation parameters drop cannot honour',
    yaml: `- action: l
  actionner: kubernetes:label
  parameters:
    level: node
    labels: {"bad key!": x, ok: "bad value!", n: 5}
- action: a
  actionner: kubernetes:annotation
- action: e
  actionner: kubernetes:label
  parameters: {labels: {}}
- rule: r
  actions: [{action: l}, {action: a}, {action: e}, {action: p, parameters: [x]}]
`,
    problems: [
      /^4:5 level "node" is not supported: drop acts on the pod only/,
      /^5:14 key "bad key!": must match pattern/,
      /^5:29 must match pattern .* \(as drop's label\)/,
      /^5:47 the value of n must be a string/,
      /^10:16 must NOT have fewer than 1 properties \(as drop's label\)/,
      /^12:26 annotations is required/,
      /^12:53 missing actionner/,
      /^12:64 must be a map/,
    ],
  },
  {
    name: 'networkpolicy parameters drop cannot honour',
    yaml: `- action: n
  actionner: kubernetes:networkpolicy
  parameters: {allow_namespaces: [green], allow_cidr: [300.0.0.0/8, 7]}
- action: m
  actionner: kubernetes:networkpolicy
  parameters: {allow_cidr: 10.0.0.0/8}
- rule: r
  actions: [{action: n}, {action: m}]
`,
    problems: [/^3:16 allow_namespaces is not supported/, /^3:56 must match pattern/, /^3:69 7 is not a CIDR/, /^6:16 allow_cidr must be a list of CIDRs/],
  },
  {
    name: 'more egress CIDRs than drop allows',
    yaml: `- action: n
  actionner: kubernetes:networkpolicy
  parameters:
    allow_cidr: [${Array.from({ length: 33 }, (_, i) => `10.0.${i}.0/24`).join(', ')}]
- rule: r
  actions: [{action: n}]
`,
    problems: [/^4:5 must NOT have more than 32 items \(as drop's isolate\)/],
  },
  {
    name: 'a parameter whose type differs between the step and the block',
    yaml: `- action: n
  actionner: kubernetes:networkpolicy
  parameters: {allow_cidr: [10.0.0.0/8]}
- rule: r
  actions:
    - action: n
      parameters: {allow_cidr: 192.168.0.0/16}
`,
    problems: [/^7:20 is a string here but a list in the action block/, /^7:20 allow_cidr must be a list of CIDRs/],
  },
  {
    name: 'a bad value found in the step of a merged list is placed in the step',
    yaml: `- action: n
  actionner: kubernetes:networkpolicy
  parameters: {allow_cidr: [10.0.0.0/8]}
- rule: r
  actions:
    - action: n
      parameters: {allow_cidr: [not-a-cidr]}
`,
    problems: [/^7:33 must match pattern/],
  },
  {
    name: "a bad label key found in the step's map is placed in the step",
    yaml: `- action: l
  actionner: kubernetes:label
  parameters: {labels: {a: b}}
- rule: r
  actions:
    - action: l
      parameters: {labels: {"c/d/e": x}}
`,
    problems: [/^7:20 key "c\/d\/e": must match pattern/],
  },
];

for (const c of errorCases) {
  t.test(`reports ${c.name}`, async (t) => {
    const problems = problemsOf(c.yaml);
    t.equal(problems.length, c.problems.length, problems.join('\n'));
    c.problems.forEach((pattern, i) => t.match(problems[i], pattern));
  });
}

t.test('problems are reported all at once, as a PolicyError naming the file', async (t) => {
  t.throws(() => parsePolicy(fixture('bad-priority.yaml'), 'bad-priority.yaml'), {
    name: 'PolicyError',
    message: /^invalid policy bad-priority\.yaml \(2 problems\):\n {2}bad-priority\.yaml:7:5 \/1\/match\/priority: incorrect priority ">=Loud"/,
  });
});

t.test("drop's own format, a mapping, is not read as Talon's", async (t) => {
  t.equal(parsePolicy('rules:\n  - name: a\n    match: {}\n    actions: [{action: delete}]\n', 'drop.yaml').rules[0]!.name, 'a');
});

// --- Several files, merged as Talon merges them (rules.go `extractActionsRules`) ---

const chart = new URL('fixtures/talon/chart/', import.meta.url).pathname;

function filesOf(texts: Record<string, string>, talonUnsupported: 'error' | 'skip' = 'error'): ReturnType<typeof parsePolicyFiles> {
  return parsePolicyFiles(Object.entries(texts).map(([file, text]) => ({ file, text })), Object.keys(texts).join(','), { talonUnsupported });
}

function filesProblems(texts: Record<string, string>, talonUnsupported: 'error' | 'skip' = 'error'): string[] {
  try {
    filesOf(texts, talonUnsupported);
  } catch (error) {
    if (error instanceof PolicyError) return error.problems.map((p) => `${p.file ?? '-'}:${p.line}:${p.column} ${p.message}`);
    throw error;
  }
  return [];
}

t.test("the chart's rules.yaml and rules_override.yaml: every actionner and field drop cannot run is named with its file and line", async (t) => {
  const error = await loadPolicyFiles(chart).then(
    () => undefined,
    (e: unknown) => e as PolicyError,
  );
  t.ok(error instanceof PolicyError);
  const at = (line: number, column: number): string => `${chart}rules.yaml:${line}:${column}`;
  t.same(
    error!.problems.map((p) => `${p.file}:${p.line}:${p.column} ${p.message.split(':')[0]}`),
    [
      `${at(12, 5)} unknown parameter "allow" for kubernetes`,
      `${at(16, 3)} actionner "cilium`,
      `${at(29, 3)} actionner "aws`,
      `${at(30, 3)} additional_contexts is not supported`,
      `${at(38, 3)} actionner "gcp`,
      `${at(39, 3)} additional_contexts is not supported`,
      `${at(74, 9)} actionner "kubernetes`,
      `${at(85, 9)} allow_namespaces is not supported`,
      `${at(88, 7)} actionner "calico`,
      `${at(102, 7)} actionner "kubernetes`,
      `${at(104, 7)} actionner "kubernetes`,
      `${at(117, 7)} actionner "kubernetes`,
      `${at(118, 7)} additional_contexts is not supported`,
      `${at(124, 7)} actionner "kubernetes`,
      `${at(127, 7)} output is not supported`,
      `${at(133, 7)} actionner "kubernetes`,
      `${at(136, 7)} output is not supported`,
      `${at(148, 7)} actionner "kubernetes`,
      `${at(152, 7)} output is not supported`,
      `${at(163, 7)} actionner "kubernetes`,
      `${at(168, 7)} output is not supported`,
    ],
  );
  t.match(error!.message, new RegExp(`^invalid policy ${chart} \\(21 problems\\):\\n  ${chart}rules\\.yaml:12:5 /1/parameters/allow: unknown parameter`));
  for (const actionner of ['cilium:networkpolicy', 'aws:lambda', 'gcp:function', 'kubernetes:delete', 'calico:networkpolicy', 'kubernetes:cordon', 'kubernetes:drain', 'kubernetes:exec', 'kubernetes:log', 'kubernetes:download', 'kubernetes:tcpdump', 'kubernetes:sysdig']) {
    t.ok(error!.problems.some((p) => p.message.startsWith(`actionner "${actionner}" is not supported`)), actionner);
  }
});

t.test('with DROP_TALON_UNSUPPORTED=skip the chart loads: the override applies, and every skipped action and dropped rule is listed', async (t) => {
  const loaded = await loadPolicyFiles(chart, { talonUnsupported: 'skip' });
  t.same(loaded.files, [`${chart}rules.yaml`, `${chart}rules_override.yaml`], 'rules.yaml, then the override, in name order');
  t.same(loaded.policy.rules.map((r) => r.name), ['Shell in a pod']);
  const [rule] = loaded.policy.rules;
  t.same(
    rule!.actions.map((a) => [a.action, a.parameters]),
    [
      ['label', { labels: { 'falco-drop/flagged': 'true' } }],
      // rules_override.yaml: grace period replaced, the two ignore_* added, ignore_standalone_pods kept.
      ['delete', { gracePeriodSeconds: 3, skipOwnerKinds: ['DaemonSet', 'StatefulSet'], skipStandalone: true }],
    ],
  );
  const notes = loaded.skipped.map((p) => `${p.line} ${p.message}`);
  t.equal(notes.filter((n) => / dropped: none of its actions is left to run$/.test(n)).length, 7, 'the seven rules left without an action');
  t.match(notes, [
    /^64 rule "Egress to an odd place": action "Cilium egress policy" skipped: actionner "cilium:networkpolicy" is not supported .*\(.*rules\.yaml:16:3\)$/,
    /^57 rule "Egress to an odd place" dropped/,
    /^73 rule "Namespace to remove": action "Remove it" skipped: actionner "kubernetes:delete"/,
    /^66 rule "Namespace to remove" dropped/,
    /^81 rule "Egress with Calico": action "Cut egress" skipped: allow_namespaces is not supported.*rules\.yaml:85:9\); unknown parameter "allow" .*rules\.yaml:12:5\)$/,
    /^87 rule "Egress with Calico": action "Calico egress policy" skipped/,
    /^76 rule "Egress with Calico" dropped/,
    /^101 rule "Node to empty": action "Cordon it" skipped/,
    /^103 rule "Node to empty": action "Drain it" skipped/,
    /^96 rule "Node to empty" dropped/,
    /^116 rule "Evidence": action "Who am I" skipped: .*; additional_contexts is not supported/,
    /^123 rule "Evidence": action "Logs" skipped: .*; output is not supported/,
    /^132 rule "Evidence": action "Binary" skipped/,
    /^111 rule "Evidence" dropped/,
    /^147 rule "Packets": action "Capture packets" skipped/,
    /^142 rule "Packets" dropped/,
    /^162 rule "Syscalls": action "Capture syscalls" skipped/,
    /^157 rule "Syscalls" dropped/,
    /^28 action "Call a Lambda" \(used by no rule\) skipped: actionner "aws:lambda" .*; additional_contexts is not supported/,
    /^37 action "Call a Cloud Function" \(used by no rule\) skipped/,
  ]);
  t.equal(notes.length, 20);
  t.ok(loaded.skipped.every((p) => p.file === `${chart}rules.yaml`), 'each names its file');
  // The rule left acts as Talon's would.
  t.same(applying(loaded.policy, alert({ rule: 'Terminal shell in container' })), ['Shell in a pod']);
  t.same(applying(loaded.policy, alert({ rule: 'Terminal shell in container', fields: { 'k8s.ns.name': 'falco' } })), []);
});

t.test('a later action block of the same name overrides the first, in the same file or a later one', async (t) => {
  const { policy } = filesOf({
    'rules.yaml': `- action: Isolate
  actionner: kubernetes:cordon
  parameters: {allow_cidr: [10.0.0.0/8]}
- action: Isolate
  actionner: kubernetes:networkpolicy
  parameters: {allow_cidr: [10.0.0.0/8]}
- action: Mark
  actionner: kubernetes:label
  continue: false
  parameters: {labels: {a: "1", b: "2"}}
- rule: r
  actions: [{action: Mark}, {action: Isolate}]
`,
    'override.yaml': `- action: Isolate
  parameters: {allow_cidr: [192.168.0.0/16]}
- action: Mark
  continue: true
  ignore_errors: true
  parameters: {labels: {b: "3", c: "4"}}
`,
  });
  t.same(
    policy.rules[0]!.actions.map((a) => [a.action, a.parameters, a.continueOnError]),
    [
      // Labels merged (later entries win), ignore_errors added.
      ['label', { labels: { a: '1', b: '3', c: '4' } }, true],
      // continue: true from the override: the chain goes on. The actionner replaced within
      // rules.yaml, the lists appended across the three blocks.
      ['isolate', { allowEgress: [{ cidr: '10.0.0.0/8' }, { cidr: '10.0.0.0/8' }, { cidr: '192.168.0.0/16' }] }, false],
    ],
  );
});

t.test('a later rule of the same name appends its match lists and actions, and replaces priority and source', async (t) => {
  const { policy } = filesOf({
    'rules.yaml': `${terminate}- action: Mark
  actionner: kubernetes:label
  parameters: {labels: {a: "1"}}
- rule: r
  match: {rules: [A], priority: ">=Warning", source: syscall, tags: [x]}
  actions: [{action: Mark}]
`,
    'override.yaml': `- rule: r
  description: more
  dry_run: true
  continue: false
  match: {rules: [B], priority: ">=Critical", source: k8s_audit, tags: [y], output_fields: [k8s.ns.name=prod]}
  actions: [{action: Terminate}]
`,
  });
  const [rule] = policy.rules;
  t.same(rule!.actions.map((a) => a.action), ['label', 'delete']);
  t.equal(rule!.dryRun, true);
  t.equal(rule!.continue, false);
  t.same(rule!.match.rules, ['A', 'B']);
  t.same(rule!.match.source, ['k8s_audit']);
  t.same(rule!.match.anyOf?.map((m) => m.tags?.allOf), [['x'], ['y']]);
  t.same(applying(policy, alert({ rule: 'A', priority: 'Critical', source: 'k8s_audit', tags: ['y'], fields: { 'k8s.ns.name': 'prod' } })), ['r']);
  t.same(applying(policy, alert({ rule: 'A', priority: 'Error', source: 'k8s_audit', tags: ['y'], fields: { 'k8s.ns.name': 'prod' } })), [], 'the override priority');
});

t.test('an override that would clear a priority or source is refused: Talon would widen the match', async (t) => {
  const problems = filesProblems({
    'rules.yaml': ruleWith('priority: ">=Critical"\nsource: syscall'),
    'override.yaml': '- rule: r\n  match: {tags: [x]}\n',
  });
  t.match(problems, [
    /^override\.yaml:1:3 this block overrides rule "r" without a priority: Talon would replace the priority ">=Critical" \(rules\.yaml:5:5\) with none, widening the match; repeat it here$/,
    /^override\.yaml:1:3 this block overrides rule "r" without a source: Talon would replace the source "syscall" \(rules\.yaml:6:5\) with none/,
  ]);
  t.equal(problems.length, 2);
});

t.test('a parameter of another kind in an override is reported: Talon would ignore it', async (t) => {
  t.match(
    filesProblems({ 'rules.yaml': ruleWith('rules: [x]').replace('kubernetes:terminate\n', 'kubernetes:terminate\n  parameters: {grace_period_seconds: 5}\n'), 'override.yaml': '- action: Terminate\n  parameters: {grace_period_seconds: [1]}\n' }),
    [/^override\.yaml:2:16 is a list here but a number in the earlier block of this action: Talon would ignore this value$/],
  );
});

t.test('a file holding only overrides is refused, and says why', async (t) => {
  t.throws(() => filesOf({ 'rules_override.yaml': '- action: Terminate\n  parameters: {grace_period_seconds: 2}\n' }), {
    name: 'PolicyError',
    message: /no response rule: the file holds 1 "- action:" block and no "- rule:" block \(a file of overrides needs the rules file it overrides, listed before it\)/,
  });
});

t.test('skip leaves out whole actions only: a match condition or a limit drop cannot honour is still an error', async (t) => {
  const problems = filesProblems(
    {
      'rules.yaml': `- action: t
  actionner: kubernetes:terminate
  parameters: {min_healthy_replicas: 2}
- rule: r
  match: {rules: ["Shell*"], output_fields: ["proc.cmdline=a=b"]}
  actions: [{action: t}, {action: x, actionner: kubernetes:exec}]
`,
    },
    'skip',
  );
  t.match(problems, [
    /^-:3:16 min_healthy_replicas is not supported: .*a limit is never skipped/,
    /^-:5:19 "Shell\*": Talon matches rule names exactly/,
    /^-:5:46 "proc\.cmdline=a=b": Talon cannot read/,
  ]);
  t.equal(problems.length, 3, 'the exec action alone would have been skipped');
});

t.test('a skipped action that ends the chain still ends it: skipping never runs what Talon would not', async (t) => {
  const base = (step: string): string => `- action: Mark
  actionner: kubernetes:label
  parameters: {labels: {a: "1"}}
- rule: r
  match: {rules: [x]}
  actions:
    - {action: Capture, actionner: kubernetes:tcpdump${step}}
    - {action: Mark}
- rule: s
  match: {rules: [x]}
  actions:
    - {action: Lambda, actionner: aws:lambda}
    - {action: Mark}
- rule: u
  match: {rules: [x]}
  actions:
    - {action: Unknown, actionner: "vendor:thing"}
    - {action: Mark}
`;
  const stops = filesOf({ 'rules.yaml': base('') }, 'skip');
  t.same(stops.policy.rules.map((r) => [r.name, r.actions.map((a) => a.action)]), [['s', ['label']]], 'tcpdump and an actionner Talon does not have end the chain; aws:lambda continues');
  t.match(stops.skipped.map((p) => p.message), [/action "Capture" skipped/, /rule "r" dropped/, /action "Lambda" skipped/, /action "Unknown" skipped/, /rule "u" dropped/]);
  const goesOn = filesOf({ 'rules.yaml': base(', continue: true') }, 'skip');
  t.same(goesOn.policy.rules.map((r) => [r.name, r.actions.map((a) => a.action)]), [['r', ['label']], ['s', ['label']]]);
});

t.test('with skip, an action with a mistake is still an error, and a rule whose actions are all skipped leaves no policy', async (t) => {
  const mistake = filesProblems({ 'rules.yaml': '- rule: r\n  actions: [{action: a, actionner: kubernetes:label, parameters: {level: node, labels: {a: 5, b: "1"}}}]\n' }, 'skip');
  t.match(mistake, [/^-:2:89 the value of a must be a string/], 'level: node alone would be skipped; the mistake is reported, alone');
  t.equal(mistake.length, 1);
  t.throws(() => filesOf({ 'rules.yaml': '- rule: r\n  actions: [{action: a, actionner: kubernetes:cordon}]\n' }, 'skip'), {
    message: /no response rule left: every rule's actions were skipped as unsupported \(DROP_TALON_UNSUPPORTED=skip\), so drop would act on nothing/,
  });
});

t.test('a step naming its own supported actionner replaces an unsupported one in the block', async (t) => {
  const { policy, skipped } = filesOf({ 'rules.yaml': '- action: a\n  actionner: kubernetes:cordon\n- rule: r\n  actions: [{action: a, actionner: kubernetes:label, parameters: {labels: {a: "1"}}}]\n' }, 'skip');
  t.same(policy.rules[0]!.actions.map((a) => a.action), ['label']);
  t.same(skipped, [], 'the block is used, so not listed as unused');
});

t.test("Falcosidekick's talon output, pointed at drop, is acted on unchanged: a Talon user changes one address", async (t) => {
  // test/fixtures/falcosidekick-talon.http: the request Falcosidekick's `talon` output sends
  // (outputs/talon.go posts the Falco payload with the shared client of outputs/client.go: JSON
  // encoded with a trailing newline, its Content-Type and User-Agent), byte for byte.
  const request = loadRequestFixture('falcosidekick-talon.http');
  t.equal(request.headers['User-Agent'], 'Falcosidekick');
  t.equal(request.headers['Content-Type'], 'application/json; charset=utf-8');
  t.equal(Number(request.headers['Content-Length']), Buffer.byteLength(request.body));
  const { fake, drop } = await createFakeAndApp(t, [makePod('default', 'web-5f7c9d8b6-q4w2p', 'uid-web', '4b1e8c7d2a90'), makePod('default', 'web-5f7c9d8b6-other', 'uid-other')], {
    policyYaml: fixture('rules.yaml'),
    now: new Date('2025-06-13T10:02:12Z'),
  });
  await drop.app.listen({ port: 0, host: '127.0.0.1' });
  const response = await sendRaw((drop.app.server.address() as AddressInfo).port, request.bytes);
  t.equal(response.status, 200, response.body);
  t.match(JSON.parse(response.body), { result: 'done', target: { namespace: 'default', pod: 'web-5f7c9d8b6-q4w2p' } });
  const state = new Set(fake.stateRequests);
  t.same(
    fake
      .mutations()
      .filter((r) => !state.has(r) && !r.path.startsWith('/apis/events.k8s.io/'))
      .map((r) => `${r.method} ${r.path}`),
    ['PATCH /api/v1/namespaces/default/pods/web-5f7c9d8b6-q4w2p', 'DELETE /api/v1/namespaces/default/pods/web-5f7c9d8b6-q4w2p'],
    'the fixture policy: label, then terminate, that pod only',
  );
  t.same([...fake.pods.keys()], ['default/web-5f7c9d8b6-other']);
});

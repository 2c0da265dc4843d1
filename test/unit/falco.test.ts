import t from 'tap';
import { alertTimeMs, checkAlertTime, parseFalcoAlert, parsePriority, priorities, priorityRank } from '../../src/falco.ts';
import { parseJson, type Json } from '../../src/json.ts';
import type { FalcoAlert } from '../../src/falco.ts';
import { evtTime, falcoAlert, falcoJson, type AlertParts } from './fixtures/falco.ts';

t.test('ranks priorities from Emergency 7 down to Debug 0', async (t) => {
  t.same(
    priorities.map((p) => [p, priorityRank(p)]),
    [
      ['Emergency', 7],
      ['Alert', 6],
      ['Critical', 5],
      ['Error', 4],
      ['Warning', 3],
      ['Notice', 2],
      ['Informational', 1],
      ['Debug', 0],
    ],
  );
});

t.test('ranks priorities in any case and unknown names lowest', async (t) => {
  const cases: [string, number][] = [
    ['critical', 5],
    ['WARNING', 3],
    ['nOtIcE', 2],
    ['info', -1],
    ['warn', -1],
    ['', -1],
  ];
  for (const [name, rank] of cases) t.equal(priorityRank(name), rank, JSON.stringify(name));
});

t.test('parsePriority returns the canonical name in any case, undefined when unknown', async (t) => {
  const cases: [string, string | undefined][] = [
    ['Notice', 'Notice'],
    ['emergency', 'Emergency'],
    ['INFORMATIONAL', 'Informational'],
    ['info', undefined],
    ['Noticee', undefined],
  ];
  for (const [name, parsed] of cases) t.equal(parsePriority(name), parsed, name);
});

t.test('reads a Falcosidekick payload', async (t) => {
  const alert = parseFalcoAlert(parseJson(falcoJson()));
  t.same(alert, {
    uuid: '8e2f6a7c-1d2b-4c3e-9f40-5a6b7c8d9e01',
    rule: 'Terminal shell in container',
    priority: 'Notice',
    output: '09:21:07.118402960: Notice A shell was spawned in a container with an attached terminal (user=root process=bash exe_flags=<NA> container_id=2d90926af63e)',
    time: '2025-06-12T09:21:07.11840296Z',
    source: 'syscall',
    tags: ['T1059', 'container', 'maturity_stable', 'mitre_execution', 'shell'],
    hostname: 'worker-node-2',
    outputFields: {
      'container.id': '2d90926af63e',
      'container.name': 'mysql',
      'evt.time': evtTime,
      'evt.type': 'execve',
      'k8s.ns.name': 'default',
      'k8s.pod.name': 'mysql-db-7d59548d75-g9msc',
      'proc.exe_flags': null,
      'proc.tty': 34816,
      'user.loginuid': -1,
      'user.name': 'root',
    },
  });
});

t.test('fills defaults for the fields a minimal payload leaves out', async (t) => {
  const cases: { name: string; value: Json }[] = [
    { name: 'absent', value: { rule: 'r', priority: 'Debug', output_fields: {} } },
    { name: 'null', value: { rule: 'r', priority: 'Debug', output_fields: {}, uuid: null, output: null, time: null, source: null, hostname: null, tags: null } },
  ];
  for (const c of cases) {
    t.same(
      parseFalcoAlert(c.value),
      { uuid: undefined, rule: 'r', priority: 'Debug', output: '', time: undefined, source: 'syscall', tags: [], hostname: undefined, outputFields: {} },
      c.name,
    );
  }
});

t.test('keeps a non-default source and boolean output fields', async (t) => {
  const alert = parseFalcoAlert({ rule: 'r', priority: 'Notice', output_fields: { 'ka.auth.decision': true }, source: 'k8s_audit' });
  t.match(alert, { source: 'k8s_audit', outputFields: { 'ka.auth.decision': true } });
});

t.test('returns undefined for what is not trying to be an alert, in plain JSON or an event of another type', async (t) => {
  const cases: { name: string; value: Json | undefined }[] = [
    { name: 'no data', value: undefined },
    { name: 'null', value: null },
    { name: 'a string', value: 'Terminal shell in container' },
    { name: 'a number', value: 1 },
    { name: 'an array', value: [{ rule: 'r', priority: 'Notice', output_fields: {} }] },
    { name: 'an empty object', value: {} },
    { name: 'a rule alone', value: { rule: 'r' } },
    { name: 'a priority alone', value: { priority: 'Notice', hello: 'world' } },
    { name: 'output_fields alone', value: { output_fields: {} } },
    { name: 'a CloudEvent', value: { specversion: '1.0', id: 'x', source: 's', type: 't' } },
  ];
  for (const c of cases) {
    t.equal(parseFalcoAlert(c.value), undefined, `${c.name}, plain`);
    t.equal(parseFalcoAlert(c.value, 'dev.knative.kafka.event'), undefined, `${c.name}, in a dev.knative.kafka.event`);
  }
});

t.test('an object with two of rule, priority and output_fields is an alert, and a wrong type in it is named', async (t) => {
  const cases: { name: string; value: Json; problem: string }[] = [
    { name: 'a numeric rule', value: { rule: 123, priority: 'Notice', output_fields: {} }, problem: 'rule must be a string; it is a number' },
    { name: 'a rule past 2^53', value: { rule: 12345678901234567890n, priority: 'Notice' }, problem: 'rule must be a string; it is a number' },
    { name: 'no rule', value: { priority: 'Notice', output_fields: {} }, problem: 'rule must be a string; it is missing' },
    { name: 'a null rule and priority', value: { rule: null, priority: null }, problem: 'rule must be a string; it is null' },
    { name: 'a numeric priority', value: { rule: 'r', priority: 5, output_fields: {} }, problem: 'priority must be a string; it is a number' },
    { name: 'a boolean priority', value: { rule: 'r', priority: true }, problem: 'priority must be a string; it is a boolean' },
    { name: 'no priority', value: { rule: 'r', output_fields: {} }, problem: 'priority must be a string; it is missing' },
    { name: 'an object priority', value: { rule: 'r', priority: { name: 'Notice' } }, problem: 'priority must be a string; it is an object' },
    { name: 'no output_fields', value: { rule: 'r', priority: 'Notice' }, problem: 'output_fields must be an object; it is missing' },
    { name: 'output_fields a string', value: { rule: 'r', priority: 'Notice', output_fields: 'x' }, problem: 'output_fields must be an object; it is a string' },
    { name: 'output_fields null', value: { rule: 'r', priority: 'Notice', output_fields: null }, problem: 'output_fields must be an object; it is null' },
    { name: 'output_fields an array', value: { rule: 'r', priority: 'Notice', output_fields: [] }, problem: 'output_fields must be an object; it is an array' },
  ];
  for (const c of cases) {
    t.equal(parseFalcoAlert(c.value), c.problem, `${c.name}, plain`);
    t.equal(parseFalcoAlert(c.value, 'com.example.other'), c.problem, `${c.name}, in an event of another type`);
  }
});

t.test('whatever a falco.rule.output.v1 event carries must be a valid alert', async (t) => {
  const cases: { name: string; value: Json | undefined; problem: string }[] = [
    { name: 'no data', value: undefined, problem: 'a falco.rule.output.v1 event must carry a Falco payload; it has no data' },
    { name: 'null', value: null, problem: "a falco.rule.output.v1 event's data must be a JSON object" },
    { name: 'text', value: 'Notice A shell was spawned', problem: "a falco.rule.output.v1 event's data must be a JSON object" },
    { name: 'an array', value: [falcoAlert() as unknown as Json], problem: "a falco.rule.output.v1 event's data must be a JSON object" },
    { name: 'an empty object', value: {}, problem: 'rule must be a string; it is missing' },
    { name: 'a rule alone', value: { rule: 'r' }, problem: 'priority must be a string; it is missing' },
    { name: 'a numeric priority', value: { rule: 'r', priority: 5, output_fields: {} }, problem: 'priority must be a string; it is a number' },
  ];
  for (const c of cases) t.equal(parseFalcoAlert(c.value, 'falco.rule.output.v1'), c.problem, c.name);
  t.same(parseFalcoAlert(parseJson(falcoJson()), 'falco.rule.output.v1'), falcoAlert(), 'a valid one is read as in plain JSON');
});

t.test('names the field with a bad type in something shaped like an alert', async (t) => {
  const base = { rule: 'r', priority: 'Notice', output_fields: {} };
  const cases: { name: string; value: Json; problem: string }[] = [
    { name: 'an object output field', value: { ...base, output_fields: { 'a.b': { c: 1 } } }, problem: 'output_fields.a.b must be a string, number, boolean or null' },
    { name: 'an array output field', value: { ...base, output_fields: { 'a.b': [] } }, problem: 'output_fields.a.b must be a string, number, boolean or null' },
    { name: 'tags not an array', value: { ...base, tags: 'shell' }, problem: 'tags must be an array of strings' },
    { name: 'a tag not a string', value: { ...base, tags: ['shell', 1] }, problem: 'tags must be an array of strings' },
    { name: 'a numeric uuid', value: { ...base, uuid: 1 }, problem: 'uuid must be a string' },
    { name: 'an object output', value: { ...base, output: {} }, problem: 'output must be a string' },
    { name: 'a numeric time', value: { ...base, time: 1749720067 }, problem: 'time must be a string' },
    { name: 'a time that is no timestamp', value: { ...base, time: 'garbage' }, problem: 'time "garbage" is not an RFC 3339 timestamp with a UTC offset (e.g. 2025-06-12T09:21:07Z)' },
    { name: 'a time without a UTC offset', value: { ...base, time: '2025-06-12T09:21:07' }, problem: 'time "2025-06-12T09:21:07" is not an RFC 3339 timestamp with a UTC offset (e.g. 2025-06-12T09:21:07Z)' },
    { name: 'a boolean source', value: { ...base, source: true }, problem: 'source must be a string' },
    { name: 'an array hostname', value: { ...base, hostname: ['a'] }, problem: 'hostname must be a string' },
  ];
  for (const c of cases) t.equal(parseFalcoAlert(c.value), c.problem, c.name);
});

t.test('reads what the other unit tests use as alerts', async (t) => {
  const cases: AlertParts[] = [{}, { rule: 'Attach/Exec Pod', source: 'k8s_audit', priority: 'Warning', tags: [], fields: { 'ka.target.resource': 'pods' } }];
  for (const parts of cases) t.same(parseFalcoAlert(parseJson(falcoJson(parts))), falcoAlert(parts), JSON.stringify(parts));
});

t.test("the alert's time is its own, else its CloudEvent's, never the CloudEvent's in place of a bad one", async (t) => {
  const ceTime = '2025-06-12T09:00:00Z';
  t.equal(alertTimeMs(falcoAlert({ time: '2025-06-12T09:21:07.5+02:00' }), ceTime), Date.parse('2025-06-12T07:21:07.5Z'), 'its own, offset applied');
  const timeless = parseFalcoAlert({ rule: 'r', priority: 'Notice', output_fields: {}, time: null }) as FalcoAlert;
  t.equal(alertTimeMs(timeless, ceTime), Date.parse(ceTime), 'a null time is no time: the CloudEvent\'s');
  t.equal(alertTimeMs(timeless, undefined), undefined, 'none at all');
  // parseFalcoAlert refuses a bad time; an alert built some other way must not fall back either.
  t.equal(alertTimeMs({ ...falcoAlert(), time: 'garbage' }, ceTime), undefined, 'a bad own time is no time');
});

t.test('an alert with no time, or one more than 60 s ahead of the clock, is invalid', async (t) => {
  const now = new Date('2025-06-12T09:21:07Z');
  const alert = (time: string | undefined): FalcoAlert => ({ ...falcoAlert(), time });
  t.equal(checkAlertTime(alert('2025-06-12T09:22:07Z'), undefined, now), Date.parse('2025-06-12T09:22:07Z'), '60 s ahead is clock skew');
  t.equal(checkAlertTime(alert('2025-06-12T08:21:07Z'), undefined, now), Date.parse('2025-06-12T08:21:07Z'), 'an old alert is valid (the age guard judges it)');
  t.equal(checkAlertTime(alert(undefined), '2025-06-12T09:21:00Z', now), Date.parse('2025-06-12T09:21:00Z'), "the CloudEvent's time when it has none");
  t.equal(
    checkAlertTime(alert('2025-06-12T09:22:08Z'), undefined, now),
    "its time 2025-06-12T09:22:08.000Z is 61 s ahead of drop's clock (at most 60 s is taken as clock skew)",
  );
  t.equal(
    checkAlertTime(alert('2030-01-01T00:00:00Z'), '2025-06-12T09:21:00Z', now),
    "its time 2030-01-01T00:00:00.000Z is 143735933 s ahead of drop's clock (at most 60 s is taken as clock skew)",
    "its own time counts, not the CloudEvent's",
  );
  const none = 'it has no valid time (neither its own "time" nor its CloudEvent\'s): an RFC 3339 timestamp with a UTC offset (e.g. 2025-06-12T09:21:07Z) is required';
  t.equal(checkAlertTime(alert(undefined), undefined, now), none, 'neither has a time');
  t.equal(checkAlertTime(alert('garbage'), '2025-06-12T09:21:00Z', now), none, 'a bad own time does not fall back');
});

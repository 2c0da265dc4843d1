import t from 'tap';
import { parseFalcoAlert, parsePriority, priorities, priorityRank } from '../../src/falco.ts';
import { parseJson, type Json } from '../../src/json.ts';
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

t.test('returns undefined for what is not shaped like an alert', async (t) => {
  const cases: { name: string; value: Json }[] = [
    { name: 'null', value: null },
    { name: 'a string', value: 'Terminal shell in container' },
    { name: 'a number', value: 1 },
    { name: 'an array', value: [{ rule: 'r', priority: 'Notice', output_fields: {} }] },
    { name: 'an empty object', value: {} },
    { name: 'no rule', value: { priority: 'Notice', output_fields: {} } },
    { name: 'a numeric rule', value: { rule: 1, priority: 'Notice', output_fields: {} } },
    { name: 'no priority', value: { rule: 'r', output_fields: {} } },
    { name: 'a numeric priority', value: { rule: 'r', priority: 5, output_fields: {} } },
    { name: 'no output_fields', value: { rule: 'r', priority: 'Notice' } },
    { name: 'output_fields null', value: { rule: 'r', priority: 'Notice', output_fields: null } },
    { name: 'output_fields an array', value: { rule: 'r', priority: 'Notice', output_fields: [] } },
    { name: 'a CloudEvent', value: { specversion: '1.0', id: 'x', source: 's', type: 't' } },
  ];
  for (const c of cases) t.equal(parseFalcoAlert(c.value), undefined, c.name);
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
    { name: 'a boolean source', value: { ...base, source: true }, problem: 'source must be a string' },
    { name: 'an array hostname', value: { ...base, hostname: ['a'] }, problem: 'hostname must be a string' },
  ];
  for (const c of cases) t.equal(parseFalcoAlert(c.value), c.problem, c.name);
});

t.test('reads what the other unit tests use as alerts', async (t) => {
  const cases: AlertParts[] = [{}, { rule: 'Attach/Exec Pod', source: 'k8s_audit', priority: 'Warning', tags: [], fields: { 'ka.target.resource': 'pods' } }];
  for (const parts of cases) t.same(parseFalcoAlert(parseJson(falcoJson(parts))), falcoAlert(parts), JSON.stringify(parts));
});

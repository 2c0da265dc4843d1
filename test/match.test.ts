import t from 'tap';
import { parseFalcoAlert, type FalcoAlert } from '../src/falco.ts';
import { parseJson } from '../src/json.ts';
import { globPattern, matchMismatch, type Match } from '../src/match.ts';
import { parsePriorityCondition, type PriorityCondition } from '../src/priority-expression.ts';
import { falcoPayload, type PayloadOptions } from './helpers/falco.ts';

function alert(options: PayloadOptions = {}): FalcoAlert {
  return parseFalcoAlert(parseJson(falcoPayload(options))) as FalcoAlert;
}
const priority = (text: string) => parsePriorityCondition(text) as PriorityCondition;

interface Case {
  readonly name: string;
  readonly match: Match;
  readonly alert?: PayloadOptions;
  readonly namespace?: string | null;
  /** undefined: matches; a pattern: the reason it does not. */
  readonly fails?: RegExp;
}

const cases: Case[] = [
  { name: 'an empty match matches any alert', match: {} },
  { name: 'exact rule name', match: { rules: ['Terminal shell in container'] } },
  { name: 'exact rule name is case-sensitive', match: { rules: ['terminal shell in container'] }, fails: /is not one of/ },
  { name: 'one of several rule names', match: { rules: ['Write below etc', 'Terminal shell in container'] } },
  { name: 'glob rule name with *', match: { rules: ['Terminal shell*'] } },
  { name: 'glob rule name with ?', match: { rules: ['Terminal shell in containe?'] } },
  { name: 'a glob does not match a longer name', match: { rules: ['Terminal*shell'] }, fails: /is not one of/ },
  { name: 'regex characters in a name are literal', match: { rules: ['Read (sensitive) file.+'] }, alert: { rule: 'Read (sensitive) file.+' } },
  { name: 'an empty rule list means any rule', match: { rules: [] }, alert: { rule: 'Anything' } },
  { name: 'priority >=Notice matches Notice', match: { priority: priority('>=Notice') } },
  { name: 'priority >=Warning fails Notice', match: { priority: priority('>=Warning') }, fails: /priority Notice is not >=Warning/ },
  { name: 'priority <Critical matches Notice', match: { priority: priority('<Critical') } },
  { name: 'priority exact Notice', match: { priority: priority('Notice') } },
  { name: 'priority exact fails another', match: { priority: priority('Error') }, fails: /priority Notice is not Error/ },
  { name: 'priority in any case in the event', match: { priority: priority('>=Notice') }, alert: { priority: 'WARNING' } },
  { name: 'an unknown event priority ranks lowest', match: { priority: priority('>=Debug') }, alert: { priority: 'Loud' }, fails: /priority Loud/ },
  { name: 'source one of', match: { source: ['syscall', 'k8s_audit'] } },
  { name: 'source not listed', match: { source: ['k8s_audit'] }, fails: /source syscall is not one of k8s_audit/ },
  { name: 'tags anyOf: one present', match: { tags: { anyOf: ['nope', 'shell'] } } },
  { name: 'tags anyOf: none present', match: { tags: { anyOf: ['nope', 'other'] } }, fails: /no tag among nope, other/ },
  { name: 'tags allOf: all present', match: { tags: { allOf: ['shell', 'container'] } } },
  { name: 'tags allOf: one missing', match: { tags: { allOf: ['shell', 'nope'] } }, fails: /tag nope is missing/ },
  { name: 'tags anyOf and allOf together', match: { tags: { anyOf: ['x', 'T1059'], allOf: ['shell'] } } },
  { name: 'tags on an alert with none', match: { tags: { anyOf: ['shell'] } }, alert: { tags: [] }, fails: /no tag/ },
  { name: 'equals', match: { outputFields: [{ field: 'user.name', equals: 'root' }] } },
  { name: 'equals another value', match: { outputFields: [{ field: 'user.name', equals: 'admin' }] }, fails: /user.name is "root", not "admin"/ },
  { name: 'equals compares numbers as text', match: { outputFields: [{ field: 'proc.tty', equals: '34816' }] } },
  { name: 'equals keeps big integers exact', match: { outputFields: [{ field: 'evt.time', equals: '1749720067118402960' }] } },
  { name: 'equals never matches a missing field', match: { outputFields: [{ field: 'k8s.pod.labels', equals: '' }] }, fails: /k8s.pod.labels is missing/ },
  { name: 'equals never matches a null field', match: { outputFields: [{ field: 'fd.name', equals: 'null' }] }, alert: { fields: { 'fd.name': null } }, fails: /fd.name is missing/ },
  { name: 'notEquals another value passes', match: { outputFields: [{ field: 'k8s.ns.name', notEquals: 'kube-system' }] } },
  { name: 'notEquals the same value fails', match: { outputFields: [{ field: 'k8s.ns.name', notEquals: 'default' }] }, fails: /k8s.ns.name is "default"/ },
  { name: 'notEquals always passes a missing field', match: { outputFields: [{ field: 'nothing.here', notEquals: 'x' }] } },
  { name: 'notEquals passes a null field', match: { outputFields: [{ field: 'fd.name', notEquals: 'x' }] }, alert: { fields: { 'fd.name': null } } },
  { name: 'oneOf containing the value', match: { outputFields: [{ field: 'proc.name', oneOf: ['sh', 'bash'] }] } },
  { name: 'oneOf not containing it', match: { outputFields: [{ field: 'proc.name', oneOf: ['sh', 'zsh'] }] }, fails: /not one of sh, zsh/ },
  { name: 'oneOf never matches a missing field', match: { outputFields: [{ field: 'nothing', oneOf: ['a'] }] }, fails: /nothing is missing/ },
  { name: 'prefix', match: { outputFields: [{ field: 'k8s.pod.name', prefix: 'mysql-' }] } },
  { name: 'prefix not matching', match: { outputFields: [{ field: 'k8s.pod.name', prefix: 'web-' }] }, fails: /not starting with "web-"/ },
  { name: 'prefix never matches a missing field', match: { outputFields: [{ field: 'nothing', prefix: '' }] }, fails: /nothing is missing/ },
  { name: 'every output field condition must hold', match: { outputFields: [{ field: 'user.name', equals: 'root' }, { field: 'proc.name', equals: 'sh' }] }, fails: /proc.name is "bash"/ },
  { name: 'namespace included', match: { namespaces: { include: ['default', 'prod'] } } },
  { name: 'namespace included by glob', match: { namespaces: { include: ['def*'] } } },
  { name: 'namespace not included', match: { namespaces: { include: ['prod'] } }, fails: /namespace default is not included/ },
  { name: 'include with no target namespace fails', match: { namespaces: { include: ['default'] } }, namespace: null, fails: /namespace \(none\) is not included/ },
  { name: 'namespace excluded', match: { namespaces: { exclude: ['default'] } }, fails: /namespace default is excluded/ },
  { name: 'namespace excluded by glob', match: { namespaces: { exclude: ['d*'] } }, fails: /excluded/ },
  { name: 'exclude with no target namespace passes', match: { namespaces: { exclude: ['default'] } }, namespace: null },
  { name: 'anyOf: one alternative holds', match: { anyOf: [{ tags: { allOf: ['nope'] } }, { outputFields: [{ field: 'user.name', equals: 'root' }] }] } },
  { name: 'anyOf: no alternative holds', match: { anyOf: [{ tags: { allOf: ['nope'] } }, { source: ['k8s_audit'] }] }, fails: /no alternative matches \(tag nope is missing; source syscall/ },
  { name: 'anyOf and the top level must both hold', match: { rules: ['Other'], anyOf: [{}] }, fails: /is not one of Other/ },
  { name: 'an empty anyOf list adds no condition', match: { anyOf: [] } },
];

t.test('matching, condition by condition', async (t) => {
  for (const c of cases) {
    const namespace = c.namespace === null ? undefined : (c.namespace ?? 'default');
    const reason = matchMismatch(c.match, alert(c.alert), namespace);
    if (c.fails) t.match(reason, c.fails, c.name);
    else t.equal(reason, undefined, c.name);
  }
});

t.test('glob patterns are anchored and cached', async (t) => {
  t.equal(globPattern('a*'), globPattern('a*'), 'the same compiled pattern');
  t.ok(globPattern('a*c').test('abbbc'));
  t.notOk(globPattern('a*c').test('xabc'));
  t.ok(globPattern('*').test('line\nbreak'), '* matches across newlines');
});

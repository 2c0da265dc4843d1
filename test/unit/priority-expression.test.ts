import t from 'tap';
import { matchesPriority, parsePriorityCondition, type PriorityCondition } from '../../src/priority-expression.ts';

t.test('parses every comparator', async (t) => {
  const cases: [string, PriorityCondition][] = [
    ['>=Warning', { comparator: '>=', priority: 'Warning' }],
    ['>Warning', { comparator: '>', priority: 'Warning' }],
    ['<=Warning', { comparator: '<=', priority: 'Warning' }],
    ['<Critical', { comparator: '<', priority: 'Critical' }],
    ['=Notice', { comparator: '=', priority: 'Notice' }],
    ['==Notice', { comparator: '=', priority: 'Notice' }],
    ['!=Debug', { comparator: '!=', priority: 'Debug' }],
    ['Notice', { comparator: '=', priority: 'Notice' }],
    ['  >=  warning  ', { comparator: '>=', priority: 'Warning' }],
    ['EMERGENCY', { comparator: '=', priority: 'Emergency' }],
  ];
  for (const [text, condition] of cases) t.same(parsePriorityCondition(text), condition, JSON.stringify(text));
});

t.test('explains a bad form or an unknown name', async (t) => {
  const form = (text: string) => `"${text}" is not a priority condition (e.g. ">=Warning", "<Critical", "Notice")`;
  const name = (text: string) => `"${text}" is not a Falco priority (Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)`;
  const cases: [string, string][] = [
    ['', form('')],
    ['>=', form('>=')],
    ['=>Warning', form('=>Warning')],
    ['>>Warning', form('>>Warning')],
    ['>=Warning,Error', form('>=Warning,Error')],
    ['Priority 5', form('Priority 5')],
    ['>=Warn', name('Warn')],
    ['info', name('info')],
    ['==Loud', name('Loud')],
  ];
  for (const [text, message] of cases) t.equal(parsePriorityCondition(text), message, JSON.stringify(text));
});

t.test('compares an event priority with each comparator', async (t) => {
  // [condition, event priority, expected]
  const cases: [string, string, boolean][] = [
    ['>=Warning', 'Warning', true],
    ['>=Warning', 'Error', true],
    ['>=Warning', 'Notice', false],
    ['>Warning', 'Warning', false],
    ['>Warning', 'Critical', true],
    ['<=Warning', 'Warning', true],
    ['<=Warning', 'Error', false],
    ['<=Warning', 'Debug', true],
    ['<Critical', 'Error', true],
    ['<Critical', 'Critical', false],
    ['=Notice', 'Notice', true],
    ['==Notice', 'Warning', false],
    ['Notice', 'notice', true],
    ['Notice', 'Informational', false],
    ['!=Debug', 'Debug', false],
    ['!=Debug', 'Emergency', true],
    ['>=Debug', 'Loud', false],
    ['<Debug', 'Loud', true],
    ['<=Emergency', '', true],
    ['!=Debug', 'Loud', true],
  ];
  for (const [text, event, expected] of cases) {
    const condition = parsePriorityCondition(text) as PriorityCondition;
    t.equal(matchesPriority(condition, event), expected, `${text} against ${JSON.stringify(event)}`);
  }
});

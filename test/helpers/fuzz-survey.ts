/**
 * Every distinct failure of the fuzz test at once (the test stops at the first): runs the same
 * generator (seed and count from SEED and RUNS, default 42 and 500) against the built service
 * and prints each class of broken property with its count and its smallest request.
 *
 *   npm run build && node --import @tapjs/typescript/import test/helpers/fuzz-survey.ts
 *
 * Not a test file (tap runs only *.test.ts); a tool for reading what test/fuzz.test.ts finds.
 */
import fc from 'fast-check';
import { startFuzzTarget } from './fuzz-harness.ts';
import { requestSpec } from './fuzz-requests.ts';

const runs = Number(process.env.RUNS ?? 500);
const seed = Number(process.env.SEED ?? 42);
const target = await startFuzzTarget();
const classes = new Map<string, { count: number; size: number; example: string }>();
const started = Date.now();
let sent = 0;
for (const spec of fc.sample(requestSpec, { seed, numRuns: runs })) {
  sent++;
  const probe = await target.probe(spec);
  const status = 'error' in probe.response ? 'no answer' : String(probe.response.status);
  for (const problem of probe.problems) {
    // A class: the property, the answer's status, and the oracle's reading with the values taken out.
    const reading = probe.judgement.notes.map((n) => n.replace(/\[\d+\]/g, '[i]').replace(/".*?"|\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?|about \S+/g, '…'));
    const key = `property ${problem.slice(0, 1)}, answered ${status}: ${[...new Set(reading)].join('; ').slice(0, 200)}`;
    const known = classes.get(key) ?? { count: 0, size: Infinity, example: '' };
    known.count++;
    if (probe.wire.body.length < known.size) Object.assign(known, { size: probe.wire.body.length, example: target.explain({ ...probe, problems: [problem] }) });
    classes.set(key, known);
  }
  if (!target.alive()) break;
}
process.stdout.write(`${sent} requests (seed ${seed}) in ${Date.now() - started} ms; ${classes.size} classes of failure\n`);
for (const [key, { count, example }] of [...classes].sort()) process.stdout.write(`\n=== ${key} (${count}x)\n${example.slice(0, 3000)}\n`);
process.stdout.write(`memory: ${JSON.stringify(process.memoryUsage())} fakeRequests=${target.fake.requests.length}\n`);
await target.close();

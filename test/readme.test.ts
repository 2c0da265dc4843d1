import { readFileSync } from 'node:fs';
import t from 'tap';
import { parsePolicy } from '../src/policy.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
// Every ```yaml block in the README that has a top-level `rules:` key is a drop policy.
const examples = [...readme.matchAll(/```yaml\n([^]*?)```/g)].map((m) => m[1] as string).filter((y) => /^rules:|\nrules:/.test(y));

t.test('every policy example in the README loads', async (t) => {
  t.ok(examples.length >= 3, `found ${examples.length} policy examples`);
  for (const [i, yaml] of examples.entries()) {
    const policy = parsePolicy(yaml, `README example ${i + 1}`);
    t.ok(policy.rules.length > 0, `example ${i + 1}: ${policy.rules.map((r) => r.name).join(', ')}`);
  }
});

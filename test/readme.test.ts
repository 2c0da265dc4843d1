import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { parsePolicy } from '../src/policy.ts';

const root = new URL('..', import.meta.url).pathname;
/** The README and every page of docs/: the user's documentation. */
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const read = (page: string) => readFileSync(join(root, page), 'utf8');

t.test('every policy example in the README and docs/ loads', async (t) => {
  let count = 0;
  for (const page of pages) {
    // Every ```yaml block with a top-level `rules:` key is a drop policy.
    const examples = [...read(page).matchAll(/```yaml\n([^]*?)```/g)].map((m) => m[1] as string).filter((y) => /^rules:|\nrules:/.test(y));
    for (const [i, yaml] of examples.entries()) {
      const policy = parsePolicy(yaml, `${page} example ${i + 1}`);
      t.ok(policy.rules.length > 0, `${page} example ${i + 1}: ${policy.rules.map((r) => r.name).join(', ')}`);
      count++;
    }
  }
  t.ok(count >= 3, `found ${count} policy examples`);
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    const heading = fence ? null : /^#{1,6} (.*)$/.exec(line);
    if (!heading) continue;
    const base = heading[1]!.trim().toLowerCase().replace(/[^\w\- ]/g, '').replaceAll(' ', '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** The relative links of a page (outside code blocks): path and anchor. */
function linksOf(markdown: string): { path: string; anchor: string | undefined }[] {
  const text = markdown.replace(/```[^]*?```/g, '');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((target) => !/^[a-z]+:/.test(target))
    .map((target) => {
      const [path = '', anchor] = target.split('#');
      return { path, anchor };
    });
}

t.test('every relative link in the README and docs/ leads to a file, and to a heading of it', async (t) => {
  let count = 0;
  for (const page of pages) {
    for (const link of linksOf(read(page))) {
      const target = link.path === '' ? page : join(dirname(page), link.path);
      t.ok(existsSync(join(root, target)), `${page}: ${link.path || '#'} exists`);
      if (link.anchor !== undefined && target.endsWith('.md') && existsSync(join(root, target))) {
        t.ok(anchorsOf(read(target)).has(link.anchor), `${page}: ${target}#${link.anchor} is a heading`);
      }
      count++;
    }
  }
  t.ok(count > 20, `checked ${count} links`);
});

t.test('anchors and links are read as GitHub makes them', async (t) => {
  t.same([...anchorsOf('# A `b` (c)\n```\n# not a heading\n```\n## A b c\n## A b c\n')], ['a-b-c', 'a-b-c-1', 'a-b-c-2']);
  t.same(linksOf('[x](a.md#h) [y](https://e.org) [z](#top)\n```\n[no](b.md)\n```'), [
    { path: 'a.md', anchor: 'h' },
    { path: '', anchor: 'top' },
  ]);
});

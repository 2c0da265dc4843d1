// config/ to release.yaml, as ko resolve does it: every top-level *.yaml in file-name order,
// image placeholders replaced, the version label stamped, joined into one multi-document file.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { imagePlaceholder } from './options.mjs';

export class ReleaseError extends Error {}

const versionLabel = /^([ \t]*app\.kubernetes\.io\/version:[ \t]*)devel[ \t]*$/gm;
// An image reference in a manifest: `image: ko://...` (comments that mention one are left alone).
const koImage = /^([ \t]*(?:-[ \t]+)?image:[ \t]*)(["']?)(ko:\/\/[^\s"']*)\2[ \t]*$/gm;

/** The top-level *.yaml files of dir (not its subdirectories, e.g. config/demo/), sorted by name. */
export function listConfigFiles(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    throw new ReleaseError(`cannot read the config directory ${dir}: ${error.code}`);
  }
  const files = entries
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => e.name)
    .sort(); // code-unit order, as ko and `kubectl apply -f dir` read them
  if (files.length === 0) throw new ReleaseError(`no *.yaml files in ${dir}`);
  return files;
}

/** Checks before any build that config/ can be released: it parses and names drop's image. */
export function checkConfig(dir) {
  const files = listConfigFiles(dir);
  const texts = files.map((name) => ({ name, text: readFileSync(join(dir, name), 'utf8') }));
  for (const { name, text } of texts) {
    parseOrThrow(text, name);
    for (const [, , , ref] of text.matchAll(koImage)) {
      if (ref !== imagePlaceholder) throw new ReleaseError(`${name}: unknown image placeholder ${ref} (only ${imagePlaceholder} is built)`);
    }
  }
  if (!texts.some(({ text }) => [...text.matchAll(koImage)].some((m) => m[3] === imagePlaceholder))) {
    throw new ReleaseError(`no file in ${dir} uses the image placeholder ${imagePlaceholder}`);
  }
  return texts;
}

/**
 * Renders the release: `image` replaces the placeholder, `version` the `devel` version labels
 * (checkConfig has already refused any other `ko://` image: nothing would build it).
 */
export function renderRelease(texts, { image, version }) {
  const header = `# falco-drop ${version}: generated from config/ by hack/release.mjs. Do not edit; edit config/ and regenerate.\n`;
  const parts = texts.map(({ text }) => {
    const rendered = text
      .replace(koImage, (line, key) => `${key}${image}`)
      .replace(versionLabel, `$1"${version}"`);
    return rendered.trimEnd() + '\n';
  });
  const release = header + parts.join('---\n');
  const documents = parseOrThrow(release, 'the rendered release');
  return { release, documents: documents.length };
}

function parseOrThrow(text, name) {
  const documents = parseAllDocuments(text);
  for (const doc of documents) {
    const error = doc.errors[0];
    if (error) throw new ReleaseError(`${name} is not valid YAML: ${error.message.split('\n')[0]}`);
  }
  return documents.filter((doc) => doc.contents !== null);
}

// config/ to release.yaml, as ko resolve does it: every top-level *.yaml in file-name order,
// image placeholders replaced, the version label stamped, joined into one multi-document file.
// Beyond ko: drop's allowed senders are filled in with its Triggers' OIDC accounts (senders.mjs),
// and a second release, without Knative, is made of config/standalone/ and the files of config/
// that hold no Knative object (checkStandalone).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { imagePlaceholder } from './options.mjs';
import { sendersPlaceholder, triggerSender } from './senders.mjs';

export class ReleaseError extends Error {}

const versionLabel = /^([ \t]*app\.kubernetes\.io\/version:[ \t]*)devel[ \t]*$/gm;
// An image reference in a manifest: `image: ko://...` (comments that mention one are left alone).
const koImage = /^([ \t]*(?:-[ \t]+)?image:[ \t]*)(["']?)(ko:\/\/[^\s"']*)\2[ \t]*$/gm;
// An env value that is the senders placeholder: `value: knative://trigger-oidc-service-accounts`.
const sendersValue = new RegExp(`^([ \\t]*value:[ \\t]*)(["']?)${sendersPlaceholder.replaceAll('.', '\\.')}\\2[ \\t]*$`, 'gm');

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

/** The config directory's subfolder whose files only the release without Knative takes. */
export const standaloneDir = 'standalone';

/** Checks before any build that config/ can be released: it parses and names drop's image. */
export function checkConfig(dir) {
  const texts = readTexts(dir, '');
  checkImages(texts, dir);
  releaseSenders(texts);
  return texts;
}

/**
 * The release without Knative, checked before any build: the files of `dir`/standalone/ and
 * those of `dir` that hold no Knative object (`texts`, from checkConfig), in file-name order as
 * if they were one directory. The shared files are the same files release.yaml takes, never
 * copies. Undefined when `dir` has no standalone/ folder.
 */
export function checkStandalone(dir, texts) {
  const sub = join(dir, standaloneDir);
  if (!isDirectory(sub)) return undefined;
  const own = readTexts(sub, `${standaloneDir}/`);
  const shared = texts.filter(({ name, documents }) => {
    const knative = documents.filter(isKnative).length;
    if (knative > 0 && knative < documents.length) {
      throw new ReleaseError(`${name} mixes Knative objects with plain Kubernetes ones: split it, so that the release without Knative can take the plain ones`);
    }
    return knative === 0;
  });
  for (const { name, documents } of own) {
    const knative = documents.find(isKnative);
    if (knative) throw new ReleaseError(`${name}: ${knative.apiVersion} ${knative.kind} in the release without Knative`);
  }
  const byName = new Map();
  for (const text of [...shared, ...own]) {
    const file = basename(text.name);
    if (byName.has(file)) throw new ReleaseError(`${byName.get(file).name} and ${text.name}: one file name twice in the release without Knative, whose order is by file name`);
    byName.set(file, text);
  }
  const all = [...byName.keys()].sort().map((file) => byName.get(file));
  checkImages(all, sub);
  for (const { name, text } of own) {
    if (text.includes(sendersPlaceholder)) throw new ReleaseError(`${name}: ${sendersPlaceholder} stands for Knative Triggers, which the release without Knative has none of`);
  }
  return all;
}

/** A Knative object (serving.knative.dev, eventing.knative.dev, ...): it needs Knative installed. */
export function isKnative(doc) {
  return /^[^/]*\.knative\.dev\//.test(String(doc?.apiVersion));
}

function isDirectory(path) {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function readTexts(dir, prefix) {
  return listConfigFiles(dir).map((file) => {
    const name = prefix + file;
    const text = readFileSync(join(dir, file), 'utf8');
    return { name, text, documents: parseOrThrow(text, name).map((d) => d.toJS()) };
  });
}

/** Every `ko://` image is drop's placeholder, and some file uses it. */
function checkImages(texts, dir) {
  for (const { name, text } of texts) {
    for (const [, , , ref] of text.matchAll(koImage)) {
      if (ref !== imagePlaceholder) throw new ReleaseError(`${name}: unknown image placeholder ${ref} (only ${imagePlaceholder} is built)`);
    }
  }
  if (!texts.some(({ text }) => [...text.matchAll(koImage)].some((m) => m[3] === imagePlaceholder))) {
    throw new ReleaseError(`no file in ${dir} uses the image placeholder ${imagePlaceholder}`);
  }
}

/**
 * Renders the release: `image` replaces the placeholder, `version` the `devel` version labels
 * (checkConfig has already refused any other `ko://` image: nothing would build it), and the
 * senders placeholder the OIDC accounts of the Triggers (releaseSenders).
 */
export function renderRelease(texts, { image, version, standalone = false }) {
  const header = standalone
    ? `# falco-drop ${version} without Knative: generated by hack/release.mjs from these files of config/ (config/standalone/ and\n` +
      `# the files that hold no Knative object, which release.yaml takes too). Do not edit; edit them and regenerate.\n` +
      texts.map(({ name }) => `#   ${name}\n`).join('')
    : `# falco-drop ${version}: generated from config/ by hack/release.mjs. Do not edit; edit config/ and regenerate.\n`;
  const senders = releaseSenders(texts);
  const parts = texts.map(({ text }) => {
    let rendered = text.replace(koImage, (line, key) => `${key}${image}`).replace(versionLabel, `$1"${version}"`);
    // Quoted: the usernames hold colons.
    if (senders) rendered = rendered.replace(sendersValue, (line, key) => `${key}${JSON.stringify(senders)}`);
    return rendered.trimEnd() + '\n';
  });
  const release = header + parts.join('---\n');
  const documents = parseOrThrow(release, 'the rendered release');
  return { release, documents: documents.length };
}

/**
 * What the senders placeholder stands for: the OIDC accounts of every Trigger of the release
 * whose subscriber is the Knative Service that uses the placeholder, in file order,
 * comma-separated (DROP_ALLOWED_SENDERS). Undefined when no Service uses it.
 */
export function releaseSenders(texts) {
  const documents = texts.flatMap(({ name, documents }) => documents.map((doc) => ({ name, doc })));
  const carriers = documents.filter(({ doc }) => doc.kind === 'Service' && JSON.stringify(doc).includes(JSON.stringify(sendersPlaceholder)));
  if (carriers.length === 0) return undefined;
  if (carriers.length > 1) throw new ReleaseError(`${carriers.map((c) => c.name).join(', ')}: only one Service may use ${sendersPlaceholder}`);
  const [{ name: file, doc: service }] = carriers;
  const { name, namespace } = service.metadata;
  if (!namespace) throw new ReleaseError(`${file}: Service ${name} uses ${sendersPlaceholder} but names no namespace, which its senders' accounts are in`);
  // Knative names the account in the Trigger's namespace; the subscriber defaults to it too.
  const senders = documents
    .map(({ doc }) => doc)
    .filter((doc) => doc.kind === 'Trigger' && isService(doc.spec?.subscriber?.ref, name))
    .filter((doc) => (doc.spec.subscriber.ref.namespace ?? doc.metadata.namespace) === namespace)
    .map((doc) => triggerSender(doc.metadata.namespace, doc.metadata.name));
  if (senders.length === 0) throw new ReleaseError(`${file}: ${sendersPlaceholder} stands for the Triggers that send to Service ${namespace}/${name}, and the release has none`);
  return senders.join(',');
}

function isService(ref, name) {
  return ref !== undefined && ref.kind === 'Service' && ref.name === name;
}

function parseOrThrow(text, name) {
  const documents = parseAllDocuments(text);
  for (const doc of documents) {
    const error = doc.errors[0];
    if (error) throw new ReleaseError(`${name} is not valid YAML: ${error.message.split('\n')[0]}`);
  }
  return documents.filter((doc) => doc.contents !== null);
}

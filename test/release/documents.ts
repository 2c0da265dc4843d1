// Reads the manifests the release tests check: config/*.yaml, config/demo/*.yaml,
// config/standalone/*.yaml, release.yaml and release-standalone.yaml.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const root = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

/** Manifests are untyped YAML: the tests walk them as plain JSON values. */
export type Json = any;

export interface Manifest {
  /** File (relative to the repository) and index of the document in it. */
  readonly where: string;
  readonly doc: Json;
}

/** The YAML files of a directory under the repository, in file-name order. */
export function yamlFiles(dir: string): string[] {
  return readdirSync(join(root, dir))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));
}

/** Parses every document of the files (relative to the repository, or absolute); a parse error or warning throws. */
export function readManifests(files: readonly string[]): Manifest[] {
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(resolve(root, file), 'utf8'))
      .filter((d) => d.contents !== null)
      .map((d, i) => {
        const problem = [...d.errors, ...d.warnings][0];
        if (problem) throw new Error(`${file} document ${i}: ${problem.message}`);
        return { where: `${file}#${i}`, doc: d.toJS() as Json };
      }),
  );
}

export const configFiles = yamlFiles('config');
export const demoFiles = yamlFiles('config/demo');
export const config = readManifests(configFiles);
export const demo = readManifests(demoFiles);
export const release = readManifests(['release.yaml']);
/** The release without Knative: config/standalone/'s own files, and the release made of them and config/'s plain ones. */
export const standaloneFiles = yamlFiles('config/standalone');
export const standalone = readManifests(standaloneFiles);
export const releaseStandalone = readManifests(['release-standalone.yaml']);

/** The one manifest of this kind and name; throws when there is not exactly one. */
export function find(manifests: readonly Manifest[], kind: string, name: string): Json {
  const found = manifests.filter((m) => m.doc.kind === kind && m.doc.metadata.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length}`);
  return (found[0] as Manifest).doc;
}

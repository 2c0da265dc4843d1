import { mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

/**
 * A ConfigMap volume laid out and updated as the kubelet's atomic writer does it
 * (kubernetes/kubernetes pkg/volume/util/atomic_writer.go): the files in a hidden timestamped
 * directory, `..data` a symlink to it, each visible file a symlink through `..data`. An update
 * writes a new timestamped directory, points a new `..data_tmp` symlink at it, renames that
 * over `..data` (the atomic step), then removes what is gone and the old directory.
 */
export class ConfigMapVolume {
  readonly dir: string;
  constructor(files: Readonly<Record<string, string>>, dir = mkdtempSync(join(tmpdir(), 'drop-configmap-'))) {
    this.dir = dir;
    this.update(files);
  }

  /** The path a pod reads a key at (a symlink through ..data). */
  path(key: string): string {
    return join(this.dir, key);
  }

  /** The timestamped directory ..data points at now. */
  get current(): string {
    return readlinkSync(join(this.dir, '..data'));
  }

  /** Replaces the ConfigMap's data with `files`, as the kubelet does on its next sync. */
  update(files: Readonly<Record<string, string>>): void {
    const data = join(this.dir, '..data');
    const old = existsSync(data) ? readlinkSync(data) : undefined;
    const stamp = new Date().toISOString().replace(/[-T:]/g, '_').replace(/\..*$/, '');
    const fresh = basename(mkdtempSync(join(this.dir, `..${stamp}.`)));
    for (const [key, text] of Object.entries(files)) writeFileSync(join(this.dir, fresh, key), text);
    for (const key of Object.keys(files)) if (!existsSync(this.path(key))) symlinkSync(join('..data', key), this.path(key));
    symlinkSync(fresh, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), data);
    if (old) {
      for (const key of readdirSync(join(this.dir, old))) if (!(key in files)) unlinkSync(this.path(key));
      rmSync(join(this.dir, old), { recursive: true });
    }
  }
}

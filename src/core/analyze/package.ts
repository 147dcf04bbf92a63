/**
 * The package model shared by the dpkg and apk readers: what a package manager says is installed
 * and which paths each package owns.
 */

export type PackageManager = 'dpkg' | 'apk';

export interface Conffile {
  /** Absolute path inside the image. */
  path: string;
  /** md5 (hex) recorded when the conffile was installed; absent for "newconffile" or unknown. */
  md5?: string;
  /** The package no longer ships this conffile but it is kept on disk. */
  obsolete?: boolean;
  /** dpkg removes the conffile on the next upgrade. */
  removeOnUpgrade?: boolean;
}

/** One installed package. Fields a manager does not record are absent. */
export interface PackageFact {
  manager: PackageManager;
  /**
   * The key used in ownership maps: the name, or "name:arch" when the same name is installed for
   * several architectures (dpkg Multi-Arch: same), so each stays distinct.
   */
  id: string;
  name: string;
  /** "" when the database does not record it. */
  version: string;
  /** "" when the database does not record it. */
  arch: string;
  /** Source package (dpkg "Source", apk "o:" origin); the binary name when not recorded. */
  source: string;
  /** Source version; the binary version when not recorded. */
  sourceVersion: string;
  /** dpkg: the raw Status ("install ok installed"); apk: "installed". */
  status: string;
  /** dpkg: the third word of Status ("installed", "config-files", "half-configured", …). */
  state?: string;
  /** Installed size in bytes (dpkg records KiB; converted). */
  installedSize?: number;
  multiArch?: string;
  essential?: boolean;
  priority?: string;
  section?: string;
  maintainer?: string;
  homepage?: string;
  /** First line of the description (the synopsis). */
  description?: string;
  /** Raw relationship fields, continuation lines folded. */
  depends?: string;
  preDepends?: string;
  /** apk: the declared license expression ("L:"). */
  license?: string;
  conffiles?: Conffile[];
  /**
   * Content digests the manager recorded, by absolute path, prefixed by algorithm:
   * "md5:<hex>" (dpkg md5sums), "sha1:<hex>" / "sha256:<hex>" (apk Z:).
   */
  digests?: Record<string, string>;
}

/** A dpkg diversion: files packages ship at `from` are installed at `to`. */
export interface Diversion {
  from: string;
  to: string;
  /** The package that holds the diversion; undefined for a local diversion (dpkg-divert --local). */
  by?: string;
}

/** What one package manager database says. */
export interface PackageDatabase {
  manager: PackageManager;
  packages: PackageFact[];
  /** Package id to the absolute paths it owns, as the manager records them, in database order. */
  files: Map<string, string[]>;
  diversions: Diversion[];
  /** Problems found while reading (missing list files, malformed lines), for the reporter. */
  problems: { code: string; message: string; path?: string }[];
}

/** Gives packages whose name occurs more than once (several architectures) "name:arch" ids. */
export function assignPackageIds(packages: PackageFact[]): void {
  const count = new Map<string, number>();
  for (const p of packages) count.set(p.name, (count.get(p.name) ?? 0) + 1);
  for (const p of packages) p.id = (count.get(p.name) ?? 0) > 1 && p.arch !== '' ? `${p.name}:${p.arch}` : p.name;
}

/** "/usr/bin/./x", "/." and "//a" to "/usr/bin/x", "/", "/a"; keeps ".." (resolution handles it). */
export function normaliseListedPath(p: string): string {
  let s = p.startsWith('/') ? p : `/${p}`;
  s = s.replace(/\/{2,}/g, '/').replace(/\/(\.\/)+/g, '/');
  if (s.endsWith('/.')) s = s.slice(0, -2);
  if (s.length > 1 && s.endsWith('/')) s = s.slice(0, -1);
  return s === '' ? '/' : s;
}

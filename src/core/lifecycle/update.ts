import { open, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ConfigError, InputError, NotFoundError, errnoCode } from '../../lib/errors.js';
import { readDeb, type DebFile, type DebPackage } from '../debian/deb-file.js';
import { readPackagesIndex } from '../debian/packages-index.js';
import { compareDebianVersions, parseDebianVersion } from '../debian/version.js';
import { evaluateAdvisory, readOsvFile, type Advisory, type AdvisoryPackage } from './osv.js';

/**
 * An update, whatever it came as: .deb files, an apt Packages index, OSV advisories or
 * `package=version`. Each says something about packages (targets): a binary package that has a
 * newer version (with its files when they are known: a .deb), or a source package whose versions
 * in ranges are affected (an advisory). `aim impact` matches targets against the catalog;
 * `aim update --with` reads the same inputs.
 */

export interface AdvisoryRef {
  id: string;
  summary?: string;
  aliases: string[];
  modified: string;
  published?: string;
  file: string;
}

export interface UpdateTarget {
  /** Match installed packages by binary name, or by source name (advisories). */
  by: 'binary' | 'source';
  name: string;
  /** binary: architecture of the new package ("all" matches any); undefined: any. */
  arch?: string;
  /** source: the Debian release (VERSION_ID) the advisory is limited to. */
  release?: string;
  /** binary: the new version; an installed version below it is affected. */
  version?: string;
  /** source: the advisory's ranges and versions. */
  ranges?: Pick<AdvisoryPackage, 'ranges' | 'versions'>;
  advisory?: AdvisoryRef;
  /** The new package's files when their content is known (.deb): changed files are found by content. */
  files?: DebFile[];
  /** The file or argument this target came from. */
  origin: string;
}

export interface Update {
  kind: 'deb' | 'packages-index' | 'osv' | 'package-version' | 'mixed';
  /** What was given (path or argument). */
  input: string;
  targets: UpdateTarget[];
  advisories: AdvisoryRef[];
  /** What was read but left aside (other ecosystems, files of unknown kinds, withdrawn advisories). */
  notes: string[];
}

/** Whether an installed package is affected by a target, and the version that fixes it. */
export function evaluateTarget(t: UpdateTarget, installed: { version: string; sourceVersion: string; arch: string }): { affected: boolean; fixed?: string } {
  if (t.by === 'binary') {
    if (t.arch !== undefined && t.arch !== 'all' && installed.arch !== 'all' && installed.arch !== t.arch) return { affected: false };
    return compareDebianVersions(installed.version, t.version!) < 0 ? { affected: true, fixed: t.version } : { affected: false };
  }
  return evaluateAdvisory(t.ranges ?? { ranges: [], versions: [] }, installed.sourceVersion);
}

const SPEC = /^(src:)?([a-z0-9][a-z0-9+.-]*)(?::([a-z0-9-]+))?=(\S+)$/;

/** `package=version`, `package:arch=version` or `src:source=version`. */
export function parsePackageSpec(text: string): UpdateTarget {
  const m = SPEC.exec(text);
  if (!m) throw new ConfigError(`"${text}" is neither a file nor PACKAGE=VERSION`, { hint: 'give a .deb, a folder of .debs, a Packages index, an OSV advisory, or e.g. libssl3=3.0.15-1~deb12u1 (src:openssl=… for a source package)' });
  const version = m[4]!;
  parseDebianVersion(version, `${text}: version`);
  if (m[1]) {
    if (m[3]) throw new ConfigError(`"${text}": a source package has no architecture`);
    return { by: 'source', name: m[2]!, ranges: { ranges: [[{ introduced: '0' }, { fixed: version }]], versions: [] }, origin: text };
  }
  return { by: 'binary', name: m[2]!, ...(m[3] ? { arch: m[3] } : {}), version, origin: text };
}

export function debTarget(d: DebPackage): UpdateTarget {
  return { by: 'binary', name: d.package, arch: d.arch, version: d.version, files: d.files, origin: d.file };
}

function advisoryRef(a: Advisory): AdvisoryRef {
  const ref: AdvisoryRef = { id: a.id, aliases: a.aliases, modified: a.modified, file: a.file };
  if (a.summary !== undefined) ref.summary = a.summary;
  if (a.published !== undefined) ref.published = a.published;
  return ref;
}

function advisoryTargets(a: Advisory, ref: AdvisoryRef): UpdateTarget[] {
  return a.packages.map((p) => ({ by: 'source', name: p.name, ...(p.release ? { release: p.release } : {}), ranges: { ranges: p.ranges, versions: p.versions }, advisory: ref, origin: a.file }));
}

/** Adds advisories to an update: their targets and references, and notes for what they leave out. */
export function addAdvisories(update: Update, advisories: Advisory[]): void {
  for (const a of advisories) {
    if (a.withdrawn !== undefined) {
      update.notes.push(`${a.id} (${a.file}) is withdrawn: left out`);
      continue;
    }
    const ref = advisoryRef(a);
    update.targets.push(...advisoryTargets(a, ref));
    update.advisories.push(ref);
    if (a.packages.length === 0) update.notes.push(`${a.id} (${a.file}) names no Debian package${a.otherEcosystems.length ? ` (only ${a.otherEcosystems.join(', ')})` : ''}`);
    else if (a.otherEcosystems.length > 0) update.notes.push(`${a.id}: entries for ${a.otherEcosystems.join(', ')} left out (not Debian)`);
  }
}

export type FileKind = 'deb' | 'osv' | 'packages-index';

/** What a file is, from its first bytes: an ar archive (.deb), JSON (OSV), else a Packages index. */
export async function sniff(path: string): Promise<FileKind> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(64);
    const { bytesRead } = await fh.read(head, 0, 64, 0);
    const text = head.subarray(0, bytesRead).toString('latin1');
    if (text.startsWith('!<arch>\n')) return 'deb';
    if (/^\s*[[{]/.test(text)) return 'osv';
    return 'packages-index';
  } finally {
    await fh.close();
  }
}

/** The newest stanza of each (package, architecture) of an index, as targets. */
async function indexTargets(path: string): Promise<UpdateTarget[]> {
  const newest = new Map<string, UpdateTarget>();
  for await (const p of readPackagesIndex(path)) {
    const key = `${p.package}\0${p.arch}`;
    const known = newest.get(key);
    if (!known || compareDebianVersions(p.version, known.version!) > 0) newest.set(key, { by: 'binary', name: p.package, arch: p.arch, version: p.version, origin: `${path}:${p.line}` });
  }
  return [...newest.values()];
}

async function readFileUpdate(path: string, kind: FileKind, update: Update): Promise<void> {
  if (kind === 'deb') update.targets.push(debTarget(await readDeb(path)));
  else if (kind === 'osv') addAdvisories(update, await readOsvFile(path));
  else update.targets.push(...(await indexTargets(path)));
}

/**
 * Reads an update: a .deb, a folder of .debs (and OSV .json files), an apt Packages index (plain
 * or compressed), an OSV advisory file, or `package=version` when no such file exists.
 */
export async function readUpdate(input: string): Promise<Update> {
  const update: Update = { kind: 'mixed', input, targets: [], advisories: [], notes: [] };
  let st;
  try {
    st = await stat(input);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT' && errnoCode(e) !== 'ENOTDIR') throw e;
  }
  if (!st) {
    if (!input.includes('=')) throw new NotFoundError(`${input} does not exist`, { hint: 'give a .deb, a folder of .debs, a Packages index, an OSV advisory, or PACKAGE=VERSION' });
    update.kind = 'package-version';
    update.targets.push(parsePackageSpec(input));
    return update;
  }
  if (st.isDirectory()) {
    const kinds = new Set<FileKind>();
    const names = (await readdir(input)).sort();
    for (const name of names) {
      const path = join(input, name);
      const s = await stat(path);
      if (!s.isFile()) continue;
      if (name.endsWith('.deb')) kinds.add('deb');
      else if (name.endsWith('.json')) kinds.add('osv');
      else {
        update.notes.push(`${basename(path)}: not a .deb or .json file, left out`);
        continue;
      }
      await readFileUpdate(path, name.endsWith('.deb') ? 'deb' : 'osv', update);
    }
    if (kinds.size === 0) throw new InputError('E_EMPTY_INPUT', `${input} holds no .deb or OSV .json file`, { hint: 'give a folder of .deb files (or OSV advisories)' });
    update.kind = kinds.size === 1 ? [...kinds][0]! : 'mixed';
    return update;
  }
  if (!st.isFile()) throw new InputError('E_NOT_A_FILE', `${input} is not a regular file or a directory`);
  if (st.size === 0) throw new InputError('E_EMPTY_INPUT', `${input} is empty`);
  const kind = await sniff(input);
  update.kind = kind;
  await readFileUpdate(input, kind, update);
  return update;
}

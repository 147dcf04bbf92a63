import { encodePath } from '../../lib/path-codec.js';
import { mapLimit } from './concurrency.js';
import { fieldValue, foldedValue, getField, parseDeb822 } from './deb822.js';
import type { Deb822Paragraph } from './deb822.js';
import { assignPackageIds, normaliseListedPath } from './package.js';
import type { Conffile, Diversion, PackageDatabase, PackageFact } from './package.js';

/**
 * Reader for a dpkg administrative directory (/var/lib/dpkg): the status file, the per-package
 * info files (.list, .md5sums, .conffiles) and the diversions file. Parsers are pure functions
 * over bytes; `loadDpkgDatabase` ties them together through a reader so it works on an image view,
 * a host directory or test strings alike. Malformed lines are skipped, never fatal.
 */

/** Reads a file relative to the dpkg admin directory ("status", "info/bash.list"); undefined if absent. */
export type DpkgAdminReader = (relativePath: string) => Promise<Buffer | undefined>;

/** States in which dpkg keeps a package's file list (everything but "not-installed"). */
const STATES_WITHOUT_FILES = new Set(['not-installed']);

function splitLines(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(0x0a, start);
    const end = nl === -1 ? buf.length : nl;
    let line = buf.subarray(start, end);
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length > 0) out.push(line);
    if (nl === -1) break;
    start = nl + 1;
  }
  return out;
}

function parseSource(value: string | undefined): { name?: string; version?: string } {
  if (!value) return {};
  const m = /^(\S+)(?:\s*\(\s*([^)\s]+)\s*\))?/.exec(value);
  return m ? { name: m[1], version: m[2] } : {};
}

/** Conffiles field of the status file: " /etc/x 0123… [obsolete] [remove-on-upgrade]". */
function parseStatusConffiles(p: Deb822Paragraph): Conffile[] {
  const f = getField(p, 'Conffiles');
  if (!f) return [];
  const out: Conffile[] = [];
  for (const raw of [f.first, ...f.rest]) {
    const tokens = raw.trim().split(/\s+/).filter((t) => t !== '');
    if (tokens.length < 2) continue;
    const c: Partial<Conffile> = {};
    while (tokens.length > 2) {
      const last = tokens[tokens.length - 1];
      if (last === 'obsolete') c.obsolete = true;
      else if (last === 'remove-on-upgrade') c.removeOnUpgrade = true;
      else break;
      tokens.pop();
    }
    const md5 = tokens.pop()!;
    const path = tokens.join(' ');
    if (!path.startsWith('/')) continue;
    const conffile: Conffile = { path: normaliseListedPath(encodePath(Buffer.from(path, 'utf8'))) };
    if (/^[0-9a-f]{32}$/i.test(md5)) conffile.md5 = md5.toLowerCase();
    if (c.obsolete) conffile.obsolete = true;
    if (c.removeOnUpgrade) conffile.removeOnUpgrade = true;
    out.push(conffile);
  }
  return out;
}

/**
 * Parses /var/lib/dpkg/status. Paragraphs without a Package field and packages in state
 * "not-installed" (purged, only a selection left) are left out.
 */
export function parseDpkgStatus(text: string): PackageFact[] {
  const out: PackageFact[] = [];
  for (const p of parseDeb822(text)) {
    const name = fieldValue(p, 'Package');
    if (!name) continue;
    const status = foldedValue(p, 'Status') ?? '';
    const state = status.split(/\s+/)[2];
    if (state !== undefined && STATES_WITHOUT_FILES.has(state)) continue;
    const arch = fieldValue(p, 'Architecture');
    const multiArch = fieldValue(p, 'Multi-Arch');
    const version = fieldValue(p, 'Version');
    const src = parseSource(fieldValue(p, 'Source'));
    const pkg: PackageFact = {
      manager: 'dpkg',
      id: name,
      name,
      version: version ?? '',
      arch: arch ?? '',
      source: src.name ?? name,
      sourceVersion: src.version ?? version ?? '',
      status,
    };
    if (state !== undefined) pkg.state = state;
    const size = fieldValue(p, 'Installed-Size');
    if (size !== undefined && /^\d+$/.test(size)) pkg.installedSize = Number(size) * 1024;
    if (multiArch !== undefined) pkg.multiArch = multiArch;
    const essential = fieldValue(p, 'Essential');
    if (essential !== undefined) pkg.essential = essential.toLowerCase() === 'yes';
    const simple = [
      ['priority', 'Priority'],
      ['section', 'Section'],
      ['maintainer', 'Maintainer'],
      ['homepage', 'Homepage'],
      ['description', 'Description'],
    ] as const;
    for (const [key, field] of simple) {
      const v = fieldValue(p, field);
      if (v !== undefined) pkg[key] = v;
    }
    const depends = foldedValue(p, 'Depends');
    if (depends !== undefined) pkg.depends = depends;
    const preDepends = foldedValue(p, 'Pre-Depends');
    if (preDepends !== undefined) pkg.preDepends = preDepends;
    const conffiles = parseStatusConffiles(p);
    if (conffiles.length > 0) pkg.conffiles = conffiles;
    out.push(pkg);
  }
  assignPackageIds(out);
  return out;
}

/** info/<pkg>.list: one absolute path per line, raw bytes. "/." (the root) becomes "/". */
export function parseDpkgList(content: Buffer): string[] {
  const out: string[] = [];
  for (const line of splitLines(content)) {
    if (line[0] !== 0x2f) continue;
    out.push(normaliseListedPath(encodePath(line)));
  }
  return out;
}

/** info/<pkg>.md5sums: "<md5>  usr/bin/x" → absolute path to lower-case md5. */
export function parseDpkgMd5sums(content: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of splitLines(content)) {
    if (line.length < 34) continue;
    const md5 = line.subarray(0, 32).toString('latin1');
    if (!/^[0-9a-fA-F]{32}$/.test(md5) || line[32] !== 0x20) continue;
    // md5sum writes two spaces, or " *" for binary mode.
    let i = 33;
    if (line[i] === 0x20 || line[i] === 0x2a) i++;
    const rel = line.subarray(i);
    if (rel.length === 0) continue;
    out.set(normaliseListedPath(encodePath(rel)), md5.toLowerCase());
  }
  return out;
}

/** info/<pkg>.conffiles: "/etc/x" or "remove-on-upgrade /etc/x" per line. */
export function parseDpkgConffiles(content: Buffer): Conffile[] {
  const out: Conffile[] = [];
  for (const line of splitLines(content)) {
    const slash = line.indexOf(0x2f);
    if (slash === -1) continue;
    const flags = line.subarray(0, slash).toString('latin1').trim().split(/\s+/);
    const c: Conffile = { path: normaliseListedPath(encodePath(line.subarray(slash))) };
    if (flags.includes('remove-on-upgrade')) c.removeOnUpgrade = true;
    out.push(c);
  }
  return out;
}

/** /var/lib/dpkg/diversions: triples of lines (from, to, package; ":" for a local diversion). */
export function parseDpkgDiversions(content: Buffer): Diversion[] {
  const lines = splitLines(content);
  const out: Diversion[] = [];
  for (let i = 0; i + 2 < lines.length; i += 3) {
    const from = lines[i]!;
    const to = lines[i + 1]!;
    const by = lines[i + 2]!.toString('utf8').trim();
    if (from[0] !== 0x2f || to[0] !== 0x2f) continue;
    const d: Diversion = { from: normaliseListedPath(encodePath(from)), to: normaliseListedPath(encodePath(to)) };
    if (by !== ':' && by !== '') d.by = by;
    out.push(d);
  }
  return out;
}

function mergeConffiles(fromStatus: Conffile[] | undefined, fromInfo: Conffile[]): Conffile[] | undefined {
  if (fromInfo.length === 0) return fromStatus;
  const byPath = new Map<string, Conffile>();
  for (const c of fromStatus ?? []) byPath.set(c.path, { ...c });
  for (const c of fromInfo) {
    const known = byPath.get(c.path);
    if (!known) byPath.set(c.path, { ...c });
    else if (c.removeOnUpgrade) known.removeOnUpgrade = true;
  }
  return [...byPath.values()];
}

/**
 * Loads a dpkg database. Returns undefined when there is no status file. Diversions are applied
 * to the file lists: a path diverted by package D is owned at its diverted location by every other
 * package that lists it (all packages for local diversions), as `dpkg -S` reports it.
 */
export async function loadDpkgDatabase(read: DpkgAdminReader): Promise<PackageDatabase | undefined> {
  const status = await read('status');
  if (!status) return undefined;
  const packages = parseDpkgStatus(status.toString('utf8'));
  const db: PackageDatabase = { manager: 'dpkg', packages, files: new Map(), diversions: [], problems: [] };

  // dpkg names info files "name:arch" for Multi-Arch: same packages, "name" otherwise.
  const infoNames = (pkg: PackageFact): string[] => {
    const qualified = pkg.arch === '' ? [] : [`${pkg.name}:${pkg.arch}`];
    return pkg.multiArch === 'same' ? [...qualified, pkg.name] : [pkg.name, ...qualified];
  };
  const readInfo = async (pkg: PackageFact, ext: string): Promise<Buffer | undefined> => {
    for (const n of infoNames(pkg)) {
      const b = await read(`info/${n}.${ext}`);
      if (b) return b;
    }
    return undefined;
  };

  await mapLimit(packages, 16, async (pkg) => {
    const [list, md5sums, conffiles] = await Promise.all([
      readInfo(pkg, 'list'),
      readInfo(pkg, 'md5sums'),
      readInfo(pkg, 'conffiles'),
    ]);
    if (list) db.files.set(pkg.id, parseDpkgList(list));
    else
      db.problems.push({
        code: 'W_DPKG_NO_LIST',
        message: `dpkg package ${pkg.id} (${pkg.status}) has no file list`,
        path: `/var/lib/dpkg/info/${infoNames(pkg)[0]!}.list`,
      });
    if (md5sums) {
      const digests: Record<string, string> = {};
      for (const [p, md5] of parseDpkgMd5sums(md5sums)) digests[p] = `md5:${md5}`;
      pkg.digests = digests;
    }
    const merged = mergeConffiles(pkg.conffiles, conffiles ? parseDpkgConffiles(conffiles) : []);
    if (merged && merged.length > 0) pkg.conffiles = merged;
  });

  const diversions = await read('diversions');
  if (diversions) {
    db.diversions = parseDpkgDiversions(diversions);
    applyDiversions(db);
  }
  return db;
}

function applyDiversions(db: PackageDatabase): void {
  if (db.diversions.length === 0) return;
  const byFrom = new Map(db.diversions.map((d) => [d.from, d]));
  const nameOf = new Map(db.packages.map((p) => [p.id, p.name]));
  for (const [id, paths] of db.files) {
    const name = nameOf.get(id);
    for (let i = 0; i < paths.length; i++) {
      const d = byFrom.get(paths[i]!);
      if (d && d.by !== name) paths[i] = d.to;
    }
  }
  // The recorded digests describe the diverted files too.
  for (const pkg of db.packages) {
    if (!pkg.digests) continue;
    for (const d of db.diversions) {
      const digest = pkg.digests[d.from];
      if (digest === undefined || d.by === pkg.name) continue;
      delete pkg.digests[d.from];
      pkg.digests[d.to] = digest;
    }
  }
}

import { createHash } from 'node:crypto';
import { InputError } from '../../lib/errors.js';
import { resolveImagePath } from '../analyze/resolve.js';
import { parseDpkgDiversions, parseDpkgList } from '../analyze/dpkg.js';
import type { DebFile, DebPackage } from '../debian/deb-file.js';
import { findParagraph, infoName, installedParagraph, listText, md5sumsText, paragraphField, replaceParagraph, statusConffiles, type StatusConffile } from '../debian/dpkg-db.js';
import { compareDebianVersions } from '../debian/version.js';
import { joinImagePath, parentPath, type Entry } from '../model/entry.js';
import { canonicalizeHardlinks, sortEntries } from '../model/manifest.js';

/**
 * Plans a package update on an image's manifest, as `dpkg --force-confold -i` would leave the
 * tree, without running dpkg: the new package's files replace the old ones (written through the
 * image's symlinked directories, /lib → usr/lib, and dpkg diversions), files the new version no
 * longer ships go, conffiles changed locally are kept (the new one beside them as .dpkg-dist), and
 * dpkg's database says what is installed: the package's status paragraph, its info files (list,
 * md5sums, scripts, triggers, shlibs…). Pure apart from reading blobs; the new dpkg files are
 * returned as content for the caller to store.
 */

/** A .deb whose files were stored as blobs, with the md5 of each regular file (dpkg's md5sums). */
export interface StoredDeb extends DebPackage {
  md5: ReadonlyMap<DebFile, string>;
}

/** A maintainer script that runs during the upgrade, or a trigger the package activates. */
export interface UpdateScript {
  package: string;
  /** preinst, postinst (of the new package), prerm, postrm (of the installed one), triggers. */
  name: string;
  from: 'new' | 'installed';
  /** How dpkg calls it ("postinst configure 3.0.11-1~deb12u2"), or what the trigger activates. */
  runs: string;
  size: number;
  /** The script text (scripts are short), or the trigger lines. */
  text: string;
}

export interface PackageChange {
  name: string;
  arch: string;
  from: string;
  to: string;
  /** Image paths (canonical) of the files written, changed in content or kind. */
  changed: string[];
  added: string[];
  removed: string[];
  /** Conffiles modified in the image: kept, the package's version written beside them. */
  keptConffiles: string[];
}

export interface UpdatePlan {
  entries: Entry[];
  packages: PackageChange[];
  scripts: UpdateScript[];
  /** Contents of new dpkg database files, by blob hash: the caller stores them. */
  contents: Map<string, Buffer>;
  /** Packages given that are not applied (same or older version installed). */
  skipped: { name: string; arch: string; version: string; installed: string; why: string }[];
  notes: string[];
}

export interface PlanInput {
  entries: readonly Entry[];
  debs: readonly StoredDeb[];
  readBlob(hash: string): Promise<Buffer>;
}

const DPKG = '/var/lib/dpkg';
const INFO = `${DPKG}/info`;
/** Info files of a package: "<name>.<member>", the member one word ("list", "md5sums", "postinst"…). */
const INFO_MEMBER = /^[A-Za-z0-9_-]+$/;

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function conflict(pkg: string, path: string, why: string): InputError {
  return new InputError('E_UPDATE_CONFLICT', `${pkg}: cannot install ${path}: ${why}`, {
    hint: 'the image differs from what the installed package left; update the gold image at its source instead',
  });
}

/** Mutable view of the image being updated. */
class Tree {
  readonly map: Map<string, Entry>;
  readonly contents = new Map<string, Buffer>();
  constructor(entries: readonly Entry[]) {
    this.map = new Map(entries.map((e) => [e.path, { ...e }] as const));
  }

  /** The canonical path a listed path is written at: its parent resolved through symlinked directories. */
  canonical(path: string): string | undefined {
    if (path === '/') return '/';
    const dir = resolveImagePath(this.map, parentPath(path));
    if (dir === undefined || this.map.get(dir)?.type !== 'dir') return undefined;
    return joinImagePath(dir, path.slice(path.lastIndexOf('/') + 1));
  }

  /** Removes an entry; hardlinks to it keep its content (the first becomes the file). */
  remove(path: string): void {
    const e = this.map.get(path);
    if (!e) return;
    this.map.delete(path);
    if (e.type !== 'file') return;
    let heir: Entry | undefined;
    for (const x of this.map.values()) {
      if (x.type !== 'hardlink' || x.target !== path) continue;
      if (!heir) {
        heir = { ...e, path: x.path };
        this.map.set(x.path, heir);
      } else x.target = heir.path;
    }
  }

  /** Writes a generated file (dpkg's database), keeping the owner and mode of the one it replaces. */
  writeFile(path: string, content: Buffer, mode: number, mtime: number): void {
    const old = this.map.get(path);
    const hash = sha256(content);
    this.contents.set(hash, content);
    this.remove(path);
    this.map.set(path, { path, type: 'file', mode: old?.type === 'file' ? old.mode : mode, uid: old?.uid ?? 0, gid: old?.gid ?? 0, mtime, size: content.length, ...(content.length > 0 ? { blob: hash } : {}) });
  }

  async read(path: string, readBlob: (hash: string) => Promise<Buffer>): Promise<Buffer | undefined> {
    const real = resolveImagePath(this.map, path);
    const e = real === undefined ? undefined : this.map.get(real);
    if (e?.type !== 'file') return undefined;
    if (e.blob === undefined) return Buffer.alloc(0);
    return this.contents.get(e.blob) ?? readBlob(e.blob);
  }
}

/** The entry a package file becomes at `path`. */
function entryOf(f: DebFile, path: string, hardlinkTo?: string): Entry {
  const base = { path, mode: f.mode, uid: f.uid, gid: f.gid, mtime: f.mtime };
  if (f.type === 'symlink') return { ...base, type: 'symlink', target: f.target ?? '' };
  if (hardlinkTo !== undefined) return { ...base, type: 'hardlink', target: hardlinkTo };
  const c = f.content!;
  return { ...base, type: 'file', size: c.size, ...(c.size > 0 ? { blob: c.hash } : {}), ...(c.sparse ? { sparse: c.sparse } : {}) };
}

/** The newest .deb of each package and architecture, in the order given. */
function newestDebs(debs: readonly StoredDeb[]): StoredDeb[] {
  const best = new Map<string, StoredDeb>();
  for (const d of debs) {
    const key = `${d.package}\0${d.arch}`;
    const known = best.get(key);
    if (!known || compareDebianVersions(d.version, known.version) > 0) best.set(key, d);
  }
  return [...best.values()];
}

/** The scripts dpkg runs to upgrade `old` (its status paragraph, its info files) to `deb`. */
function upgradeScripts(deb: StoredDeb, installed: string, oldInfo: ReadonlyMap<string, Buffer>): UpdateScript[] {
  const out: UpdateScript[] = [];
  const of = (name: string, from: 'new' | 'installed', runs: string, data: Buffer | undefined) => {
    if (data) out.push({ package: deb.package, name, from, runs, size: data.length, text: data.toString('utf8') });
  };
  const member = (name: string) => deb.controlMembers.find((m) => m.name === name)?.data;
  // dpkg's order for an upgrade (deb-maintscripts(5))
  of('prerm', 'installed', `prerm upgrade ${deb.version}`, oldInfo.get('prerm'));
  of('preinst', 'new', `preinst upgrade ${installed}`, member('preinst'));
  of('postrm', 'installed', `postrm upgrade ${deb.version}`, oldInfo.get('postrm'));
  of('postinst', 'new', `postinst configure ${installed}`, member('postinst'));
  // triggers the old version activates on its way out and the new one on its way in (deb-triggers(5))
  for (const [from, data] of [['installed', oldInfo.get('triggers')], ['new', member('triggers')]] as const) {
    const activates = (data?.toString('utf8') ?? '')
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter((l) => /^activate/.test(l));
    if (activates.length > 0) out.push({ package: deb.package, name: 'triggers', from, runs: `activates ${activates.map((l) => l.split(/\s+/)[1]).join(', ')}`, size: data!.length, text: activates.join('\n') });
  }
  return out;
}

/** File triggers (/var/lib/dpkg/triggers/File: "path package") that paths of the update activate. */
function fileTriggers(fileIndex: string | undefined, pkg: string, paths: readonly string[]): UpdateScript[] {
  const out: UpdateScript[] = [];
  for (const line of (fileIndex ?? '').split('\n')) {
    const [trigger, by] = line.trim().split(/\s+/);
    if (!trigger?.startsWith('/') || !by) continue;
    const hits = paths.filter((p) => p === trigger || p.startsWith(`${trigger}/`));
    if (hits.length > 0) out.push({ package: by.replace(/\/noawait$/, ''), name: 'file trigger', from: 'installed', runs: `${trigger} (by ${pkg}: ${hits.length} path(s))`, size: 0, text: hits.slice(0, 20).join('\n') });
  }
  return out;
}

/** Plans the update of an image by .debs; throws when a package is not installed or cannot be installed over the tree. */
export async function planUpdate(input: PlanInput): Promise<UpdatePlan> {
  const tree = new Tree(input.entries);
  const read = (p: string) => tree.read(p, input.readBlob);
  const statusBuf = await read(`${DPKG}/status`);
  if (!statusBuf) {
    throw new InputError('E_UPDATE_NO_DPKG', 'the image has no dpkg database (/var/lib/dpkg/status)', { hint: 'aim update replaces Debian packages installed with dpkg' });
  }
  let status = statusBuf.toString('utf8');
  const oldStatus = status;
  const diversions = parseDpkgDiversions((await read(`${DPKG}/diversions`)) ?? Buffer.alloc(0));
  const fileIndex = (await read(`${DPKG}/triggers/File`))?.toString('utf8');
  const plan: UpdatePlan = { entries: [], packages: [], scripts: [], contents: tree.contents, skipped: [], notes: [] };
  // every listed path of every installed package: what another package still owns stays
  const listedBy = await ownersFromLists(tree, read);
  let stamp = 0;

  for (const deb of newestDebs(input.debs)) {
    const at = findParagraph(status, deb.package, deb.arch);
    const state = at ? paragraphField(at.text, 'Status')?.split(/\s+/)[2] : undefined;
    if (!at || state === 'not-installed' || state === 'config-files') {
      throw new InputError('E_UPDATE_NOT_INSTALLED', `${deb.package}:${deb.arch} ${deb.version} (${deb.file}) is not installed in the image`, {
        hint: 'aim update replaces installed packages; install new ones in the gold image at its source',
      });
    }
    const installed = paragraphField(at.text, 'Version') ?? '';
    const arch = paragraphField(at.text, 'Architecture') ?? deb.arch;
    if (compareDebianVersions(deb.version, installed) <= 0) {
      plan.skipped.push({ name: deb.package, arch: deb.arch, version: deb.version, installed, why: compareDebianVersions(deb.version, installed) === 0 ? 'already installed' : 'older than installed' });
      continue;
    }
    stamp = Math.max(stamp, ...deb.files.map((f) => f.mtime));
    const oldName = infoName(deb.package, arch, paragraphField(at.text, 'Multi-Arch'));
    const newName = infoName(deb.package, deb.arch, deb.multiArch);
    const oldInfo = new Map<string, Buffer>();
    for (const name of [oldName, deb.package, `${deb.package}:${arch}`]) {
      for (const [path] of tree.map) {
        if (!path.startsWith(`${INFO}/${name}.`)) continue;
        const member = path.slice(INFO.length + name.length + 2);
        if (!INFO_MEMBER.test(member) || oldInfo.has(member)) continue;
        const b = await read(path);
        if (b) oldInfo.set(member, b);
        tree.remove(path);
      }
    }
    plan.scripts.push(...upgradeScripts(deb, installed, oldInfo));
    const oldListed = parseDpkgList(oldInfo.get('list') ?? Buffer.alloc(0));
    const oldConffiles = new Map(statusConffiles(at.text).map((c) => [c.path, c] as const));
    const newConffiles = new Set(deb.conffiles);
    const change: PackageChange = { name: deb.package, arch: deb.arch, from: installed, to: deb.version, changed: [], added: [], removed: [], keptConffiles: [] };
    const divertedBy = new Map(diversions.filter((d) => d.by !== deb.package).map((d) => [d.from, d.to] as const));
    const dest = new Map<string, string>();
    const conffileMd5: StatusConffile[] = [];

    for (const f of deb.files) {
      const listed = f.path;
      const path = tree.canonical(divertedBy.get(listed) ?? listed);
      if (path === undefined) throw conflict(deb.package, listed, 'its directory is missing or not a directory in the image');
      dest.set(listed, path);
      const old = tree.map.get(path);
      if (f.type === 'dir') {
        const real = old ? resolveImagePath(tree.map, path) : undefined;
        if (old && (real === undefined || tree.map.get(real)?.type !== 'dir')) throw conflict(deb.package, listed, `the image has a ${old.type} there`);
        if (!old) {
          tree.map.set(path, { path, type: 'dir', mode: f.mode, uid: f.uid, gid: f.gid, mtime: f.mtime });
          change.added.push(path);
        }
        continue;
      }
      if (f.type !== 'file' && f.type !== 'symlink' && f.type !== 'hardlink') throw conflict(deb.package, listed, `aim update does not install ${f.type} files from packages`);
      if (old?.type === 'dir') throw conflict(deb.package, listed, 'the image has a directory there');
      let entry = entryOf(f, path, f.type === 'hardlink' ? dest.get(f.target ?? '') : undefined);
      if (newConffiles.has(listed) && f.type === 'file') {
        const dist = deb.md5.get(f) ?? '';
        conffileMd5.push({ path: listed, md5: dist });
        const current = await read(path);
        const was = oldConffiles.get(listed)?.md5;
        if (current && was !== undefined && md5(current) !== was && md5(current) !== dist) {
          // changed in the image: kept, the package's version beside it (dpkg --force-confold)
          change.keptConffiles.push(path);
          entry = { ...entry, path: `${path}.dpkg-dist` };
          tree.remove(entry.path);
          tree.map.set(entry.path, entry);
          continue;
        }
      }
      if (!old) change.added.push(path);
      else if (!sameEntry(old, entry, tree.map)) change.changed.push(path);
      tree.remove(path);
      tree.map.set(path, entry);
    }

    // What the old version listed and the new one does not: gone, unless another package lists it or it is a conffile.
    const newListed = new Set(deb.files.map((f) => f.path));
    const gone = oldListed.filter((p) => p !== '/' && !newListed.has(p) && !oldConffiles.has(p) && !(listedBy.get(p)?.some((o) => o !== deb.package) ?? false));
    const dirs: string[] = [];
    for (const listed of gone) {
      const path = tree.canonical(divertedBy.get(listed) ?? listed);
      const e = path === undefined ? undefined : tree.map.get(path);
      if (!e || path === undefined) continue;
      if (e.type === 'dir') dirs.push(path);
      else {
        tree.remove(path);
        change.removed.push(path);
      }
    }
    for (const dir of dirs.sort((a, b) => b.length - a.length)) {
      const prefix = `${dir}/`;
      if ([...tree.map.keys()].some((p) => p.startsWith(prefix))) continue;
      tree.remove(dir);
      change.removed.push(dir);
    }
    for (const [path, c] of oldConffiles) if (!newConffiles.has(path) && tree.map.has(tree.canonical(path) ?? '')) conffileMd5.push({ ...c, obsolete: true });

    // dpkg's database: the info files, then the status paragraph
    const infoMode = (name: string) => (['preinst', 'postinst', 'prerm', 'postrm', 'config'].includes(name) ? 0o755 : 0o644);
    const listedPaths = deb.files.map((f) => f.path);
    tree.writeFile(`${INFO}/${newName}.list`, listText(listedPaths), 0o644, stamp);
    if (!deb.controlMembers.some((m) => m.name === 'md5sums')) {
      const sums = deb.files.filter((f) => f.type === 'file' && !newConffiles.has(f.path)).map((f) => ({ path: f.path, md5: deb.md5.get(f) ?? '' }));
      if (sums.length > 0) tree.writeFile(`${INFO}/${newName}.md5sums`, md5sumsText(sums), 0o644, stamp);
    }
    for (const m of deb.controlMembers) tree.writeFile(`${INFO}/${newName}.${m.name}`, m.data, infoMode(m.name), stamp);
    status = replaceParagraph(status, deb.package, arch, installedParagraph(deb.controlText, conffileMd5));
    plan.scripts.push(...fileTriggers(fileIndex, deb.package, listedPaths));
    for (const list of [change.changed, change.added, change.removed]) list.sort();
    plan.packages.push(change);
  }
  if (plan.packages.length > 0) {
    tree.writeFile(`${DPKG}/status`, Buffer.from(status), 0o644, stamp);
    if (tree.map.has(`${DPKG}/status-old`)) tree.writeFile(`${DPKG}/status-old`, Buffer.from(oldStatus), 0o644, stamp);
  }
  plan.entries = sortEntries([...tree.map.values()]);
  canonicalizeHardlinks(plan.entries);
  return plan;
}

/** Whether two entries hold the same thing (content, link, owner, mode): a file written unchanged is no change. */
function sameEntry(a: Entry, b: Entry, map: ReadonlyMap<string, Entry>): boolean {
  const content = (e: Entry) => (e.type === 'hardlink' ? map.get(e.target ?? '') ?? e : e);
  const x = content(a);
  const y = content(b);
  return x.type === y.type && x.blob === y.blob && x.size === y.size && x.target === y.target && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid;
}

/** Listed path → the packages whose info/*.list names it. */
async function ownersFromLists(tree: Tree, read: (p: string) => Promise<Buffer | undefined>): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const path of [...tree.map.keys()]) {
    if (!path.startsWith(`${INFO}/`) || !path.endsWith('.list')) continue;
    const pkg = path.slice(INFO.length + 1, -'.list'.length).split(':')[0]!;
    for (const p of parseDpkgList((await read(path)) ?? Buffer.alloc(0))) {
      const list = out.get(p);
      if (list) list.push(pkg);
      else out.set(p, [pkg]);
    }
  }
  return out;
}

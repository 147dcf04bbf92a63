import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readlink, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { AimError, ExitCode, throwIfCancelled } from '../../lib/errors.js';
import { decodePath, encodePath } from '../../lib/path-codec.js';
import type { Reporter } from '../../lib/reporter.js';
import { hashContent } from '../debian/deb-file.js';
import { readTreeXattrs } from '../import/xattr-dump.js';
import { joinImagePath, type Entry, type EntryType } from '../model/entry.js';
import { canonicalizeHardlinks, sortEntries } from '../model/manifest.js';
import { ProfileError } from '../profile/errors.js';
import { releaseRunRoot, runRoot, type RunRoot } from '../profile/image-tree.js';
import { runSandboxed } from '../profile/sandbox.js';
import type { Repository } from '../repository/repository.js';

/**
 * Maintainer scripts, run for real: the image is materialised in the repository's scratch space,
 * the .debs are installed there by the image's own dpkg inside the profile sandbox (namespaces,
 * chroot, strace), and the tree is compared with the planned manifest. What differs outside dpkg's
 * own database is what the scripts changed. `aim update` refuses such an update unless the caller
 * accepts the scripts; then the differences (dpkg's database included) become part of the image.
 */

export interface TreeChange {
  path: string;
  change: 'modified' | 'added' | 'removed';
  /** What differs for a modified path: content, type, mode, owner, target. */
  what?: string[];
}

export interface ScriptRun {
  /** Paths the scripts (or triggers) changed beyond the packages' files and dpkg's database. */
  changes: TreeChange[];
  /** dpkg's own records that differ from the planned ones (status, info files, logs) and caches. */
  bookkeeping: TreeChange[];
  outputTail: string;
  durationMs: number;
}

/**
 * Differences that are no change a script made to the system: dpkg's own state and logs, and
 * /var/cache, which by the FHS holds only what can be made again (ldconfig's aux-cache, which
 * every ldconfig trigger writes) — but debconf's database, which Debian keeps there and which
 * holds the answers scripts record.
 */
const BOOKKEEPING = ['/var/lib/dpkg', '/var/log/dpkg.log', '/var/log/alternatives.log', '/var/cache'];
const NOT_BOOKKEEPING = ['/var/cache/debconf'];
const isBookkeeping = (path: string) => BOOKKEEPING.some((b) => under(path, b)) && !NOT_BOOKKEEPING.some((b) => under(path, b));
/** Mounted over in the sandbox: what the run did there is gone with it. */
const MOUNTED = new Set(['/proc', '/sys', '/dev', '/tmp', '/run']);
const under = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

const TYPE_BITS: Record<number, EntryType> = { 0o100000: 'file', 0o040000: 'dir', 0o120000: 'symlink', 0o020000: 'char', 0o060000: 'block', 0o010000: 'fifo' };

interface Seen {
  type: EntryType | 'socket';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  mtimeNsec: number;
  ctimeMs: number;
  rdev: number;
  host: Buffer;
  /** Extended attributes, base64 values as manifests keep them. */
  xattrs?: Record<string, string>;
}

/** Every path of a tree with what lstat says, names as bytes. */
async function walkTree(root: Buffer): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const xattrs = await readTreeXattrs(root.toString('latin1'));
  const visit = async (host: Buffer, path: string) => {
    const st = await lstat(host, { bigint: true });
    const type = TYPE_BITS[Number(st.mode) & 0o170000] ?? 'socket';
    out.set(path, {
      type,
      mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: Number(st.size),
      mtime: Number(st.mtimeNs / 1_000_000_000n),
      mtimeNsec: Number(st.mtimeNs % 1_000_000_000n),
      ctimeMs: Number(st.ctimeNs / 1_000_000n),
      rdev: Number(st.rdev),
      host,
      ...xattrsOf(xattrs.get(host.toString('latin1'))),
    });
    if (type !== 'dir' || MOUNTED.has(path)) return;
    for (const name of await readdir(host, { encoding: 'buffer' })) {
      await visit(Buffer.concat([host, Buffer.from('/'), name]), joinImagePath(path, encodePath(name)));
    }
  };
  await visit(root, '/');
  return out;
}

function xattrsOf(x: Record<string, Buffer> | undefined): { xattrs?: Record<string, string> } {
  if (!x || Object.keys(x).length === 0) return {};
  return { xattrs: Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.toString('base64')])) };
}

const sameXattrs = (a: Record<string, string> | undefined, b: Record<string, string> | undefined) =>
  JSON.stringify(Object.entries(a ?? {}).sort()) === JSON.stringify(Object.entries(b ?? {}).sort());

/** How a seen path differs from its planned entry (empty: the same). */
async function differences(seen: Seen, planned: Entry, plan: ReadonlyMap<string, Entry>): Promise<string[]> {
  const content = planned.type === 'hardlink' ? (plan.get(planned.target ?? '') ?? planned) : planned;
  const type = content.type;
  if (seen.type !== type) return ['type'];
  const out: string[] = [];
  if (seen.mode !== planned.mode) out.push('mode');
  if (seen.uid !== planned.uid || seen.gid !== planned.gid) out.push('owner');
  if (type === 'symlink' && encodePath(await readlink(seen.host, { encoding: 'buffer' })) !== planned.target) out.push('target');
  if (type === 'file') {
    if (seen.size !== (content.size ?? 0)) out.push('content');
    else {
      const hashed = await hashContent(createReadStream(seen.host));
      if (hashed.hash !== (content.blob ?? hashed.hash) || (content.blob === undefined && seen.size > 0)) out.push('content');
    }
  }
  if ((type === 'char' || type === 'block') && (Math.floor(seen.rdev / 256) !== content.devMajor || seen.rdev % 256 !== content.devMinor)) out.push('device');
  if (type !== 'symlink' && !sameXattrs(seen.xattrs, content.xattrs)) out.push('xattrs');
  return out;
}

/** Compares a tree with the planned manifest: paths touched since `since` (ctime), and what is missing or new. */
async function compareTree(tree: Map<string, Seen>, planned: readonly Entry[], gold: readonly Entry[], since: number, ignore: string): Promise<TreeChange[]> {
  const plan = new Map(planned.map((e) => [e.path, e] as const));
  // paths the plan changes are compared whether the run touched them or not
  const before = new Map(gold.map((e) => [e.path, e] as const));
  const planChanged = (e: Entry) => {
    const g = before.get(e.path);
    return !g || g.type !== e.type || g.blob !== e.blob || g.size !== e.size || g.target !== e.target || g.mode !== e.mode || g.uid !== e.uid || g.gid !== e.gid;
  };
  const out: TreeChange[] = [];
  const skip = (p: string) => under(p, ignore) || [...MOUNTED].some((m) => p !== m && under(p, m));
  for (const [path, seen] of tree) {
    if (skip(path)) continue;
    const e = plan.get(path);
    if (!e) {
      if (!MOUNTED.has(path)) out.push({ path, change: 'added' });
      continue;
    }
    if (seen.ctimeMs < since && !planChanged(e)) continue;
    const what = await differences(seen, e, plan);
    if (what.length > 0) out.push({ path, change: 'modified', what });
  }
  for (const e of planned) if (!tree.has(e.path) && !skip(e.path)) out.push({ path: e.path, change: 'removed' });
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Entries with the tree's version of each changed path: its metadata, its content stored as a blob. */
async function applyChanges(repo: Repository, planned: readonly Entry[], tree: Map<string, Seen>, changes: readonly TreeChange[]): Promise<Entry[]> {
  const plan = new Map(planned.map((e) => [e.path, e] as const));
  for (const c of changes) {
    if (c.change === 'removed') {
      plan.delete(c.path);
      continue;
    }
    const s = tree.get(c.path)!;
    if (s.type === 'socket') {
      plan.delete(c.path);
      continue;
    }
    const e: Entry = { path: c.path, type: s.type, mode: s.mode, uid: s.uid, gid: s.gid, mtime: s.mtime, ...(s.mtimeNsec ? { mtimeNsec: s.mtimeNsec } : {}), ...(s.xattrs ? { xattrs: s.xattrs } : {}) };
    if (s.type === 'file') {
      const stored = await repo.blobs.putLocal({ path: s.host });
      e.size = stored.size;
      if (stored.size > 0) e.blob = stored.hash;
      if (stored.sparse) e.sparse = stored.sparse;
    } else if (s.type === 'symlink') e.target = encodePath(await readlink(s.host, { encoding: 'buffer' }));
    else if (s.type === 'char' || s.type === 'block') {
      e.devMajor = Math.floor(s.rdev / 256);
      e.devMinor = s.rdev % 256;
    }
    // a path that was a hardlink's file is copied to the links that stay
    for (const x of plan.values()) if (x.type === 'hardlink' && x.target === c.path) plan.set(x.path, { ...plan.get(c.path)!, path: x.path });
    plan.set(c.path, e);
  }
  const entries = sortEntries([...plan.values()]);
  canonicalizeHardlinks(entries);
  return entries;
}

/**
 * Compares a materialised tree with the manifest planned for it: paths whose ctime is at or after
 * `since` or that the plan changes from `gold` are compared (type, mode, owner, content, link,
 * device, xattrs), and paths missing on either side are listed. `ignore` (a path) and what lies
 * below the sandbox's mount points are left out.
 */
export async function diffTree(root: string, planned: readonly Entry[], gold: readonly Entry[], since: number, ignore: string): Promise<TreeChange[]> {
  return compareTree(await walkTree(decodePath(root)), planned, gold, since, ignore);
}

export interface RunScriptsRequest {
  goldId: string;
  /** The gold image's entries, as the export materialises them. */
  gold: readonly Entry[];
  debs: readonly string[];
  planned: readonly Entry[];
  /** Also return the entries with every difference taken from the tree (the scripts accepted). */
  accept: boolean;
  signal?: AbortSignal;
}

/**
 * Installs the .debs with the image's dpkg in the sandbox, on the gold image (an overlay of its
 * cached tree, or a copy: profile/image-tree.ts), and compares the result with the planned
 * manifest. What the run wrote is always removed.
 */
export async function runMaintainerScripts(repo: Repository, req: RunScriptsRequest, reporter: Reporter): Promise<{ run: ScriptRun; entries?: Entry[] }> {
  const work = join(await repo.blobs.scratchDir(), `update-${randomBytes(6).toString('hex')}`);
  const drop = `/.aim-update-${randomBytes(6).toString('hex')}`;
  let held: RunRoot | undefined;
  try {
    held = await runRoot(repo, req.goldId, work, reporter, req.signal);
    const root = held.root;
    throwIfCancelled(req.signal);
    await mkdir(join(root, drop), { mode: 0o700 });
    const inside: string[] = [];
    for (const [i, deb] of req.debs.entries()) {
      const name = `${i}-${basename(deb)}`;
      await copyFile(deb, join(root, drop, name));
      inside.push(`${drop}/${name}`);
    }
    // what the run touches has a newer ctime than anything the export wrote
    await new Promise((r) => setTimeout(r, 50));
    const since = Date.now();
    reporter.emit({ type: 'stage', stage: 'update:dpkg', status: 'start', detail: `dpkg -i ${req.debs.map((d) => basename(d)).join(' ')} in the sandbox` });
    let result;
    try {
      result = await runSandboxed({
        root,
        workDir: join(work, 'trace'),
        run: ['/usr/bin/dpkg', '--force-confold', '--force-confdef', '-i', ...inside],
        env: { DEBIAN_FRONTEND: 'noninteractive', DEBCONF_NONINTERACTIVE_SEEN: 'true' },
        hostname: 'aim-update',
        durationMs: 30 * 60_000,
        reporter,
        signal: req.signal,
      });
    } catch (e) {
      if (e instanceof ProfileError && (e.code === 'E_PROFILE_EXITED' || e.code === 'E_PROFILE_NOT_FOUND')) {
        throw new AimError('E_UPDATE_DPKG_FAILED', `dpkg could not install the update in the image: ${e.message}`, ExitCode.toolFailed, {
          hint: 'the packages do not install on this image as they are (dependencies, conflicts, a failing script): see dpkg\'s output above',
          cause: e,
        });
      }
      throw e;
    }
    if (result.stopped) throw new AimError('E_UPDATE_DPKG_FAILED', 'dpkg did not finish within 30 minutes in the sandbox', ExitCode.toolFailed);
    await rm(join(root, drop), { recursive: true, force: true });
    const tree = await walkTree(decodePath(root));
    const all = await compareTree(tree, req.planned, req.gold, since, drop);
    const run: ScriptRun = {
      changes: all.filter((c) => !isBookkeeping(c.path)),
      bookkeeping: all.filter((c) => isBookkeeping(c.path)),
      outputTail: result.outputTail,
      durationMs: result.durationMs,
    };
    reporter.emit({ type: 'stage', stage: 'update:dpkg', status: 'done', detail: `${run.changes.length} path(s) changed by scripts` });
    return req.accept ? { run, entries: await applyChanges(repo, req.planned, tree, all) } : { run };
  } finally {
    await releaseRunRoot(held, work, reporter);
  }
}

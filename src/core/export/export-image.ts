import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { BeneathRoot } from '../../lib/beneath.js';
import { ConfigError, PermissionError, cancellationError, errnoCode } from '../../lib/errors.js';
import { partialFile } from '../../lib/fs.js';
import { spawnTool } from '../../lib/exec.js';
import { CAP, hasCapability } from '../../lib/privileges.js';
import { decodePath } from '../../lib/path-codec.js';
import type { Reporter } from '../../lib/reporter.js';
import type { Entry } from '../model/entry.js';
import { dataLength } from '../model/sparse.js';
import type { BlobStore } from '../repository/types.js';
import type { Repository } from '../repository/repository.js';
import { writeTar, type TarWriteEntry } from './tar-writer.js';
import { safeTreeEntries } from './tree-order.js';

export const EXPORT_FORMATS = ['tar', 'dir'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportResult {
  id: string;
  format: ExportFormat;
  out: string;
  entries: number;
  bytes: number;
}

const DOT_SLASH = Buffer.from('./');

/** Archive member name: "./" + the path without its leading slash ("./" for the root). */
function memberName(path: string): Buffer {
  return Buffer.concat([DOT_SLASH, decodePath(path.slice(1))]);
}

/**
 * The image as tar entries, contents streamed from the blob store. The order is checked before
 * anything is yielded (safeTreeEntries: directories before their children, nothing below a
 * non-directory, hard links only to earlier regular files), so the archive is safe to extract
 * and a contradictory manifest fails before the first byte is written. `withRoot: false` leaves
 * out "./" (for extracting into a directory whose own metadata is set apart).
 */
export function tarEntries(entries: Entry[], blobs: BlobStore, options: { withRoot?: boolean } = {}): AsyncGenerator<TarWriteEntry> {
  const safe = safeTreeEntries(entries);
  return toTarEntries(options.withRoot === false ? safe.filter((e) => e.path !== '/') : safe, blobs);
}

async function* toTarEntries(entries: Entry[], blobs: BlobStore): AsyncGenerator<TarWriteEntry> {
  for (const e of entries) {
    const t: TarWriteEntry = { name: memberName(e.path), type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
    if (e.mtimeNsec) t.mtimeNsec = e.mtimeNsec;
    if (e.xattrs) t.xattrs = Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
    if (e.type === 'file') {
      t.size = e.size ?? 0;
      if (e.sparse) t.sparse = e.sparse;
      t.content = blobs.createReadStream(e.blob!, e.sparse ? dataLength(e.sparse) : t.size);
    } else if (e.type === 'symlink') t.linkName = decodePath(e.target!);
    else if (e.type === 'hardlink') t.linkName = memberName(e.target!);
    else if (e.type === 'char' || e.type === 'block') {
      t.devMajor = e.devMajor;
      t.devMinor = e.devMinor;
    }
    yield t;
  }
}

/** Whether `out` is absent or an empty directory; anything else is a ConfigError (we never overwrite). */
export async function emptyOrAbsent(out: string): Promise<'absent' | 'empty'> {
  try {
    const st = await stat(out);
    if (!st.isDirectory()) throw new ConfigError(`${out} exists and is not a directory`);
    if ((await readdir(out)).length > 0) throw new ConfigError(`${out} is not empty`, { hint: 'export into a new or empty directory' });
    return 'empty';
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return 'absent';
    throw e;
  }
}

/**
 * Undoes a failed write into an output directory `emptyOrAbsent` checked: the directory goes when
 * we created it, otherwise only what was written into it, so the user's directory stays as it was.
 */
export async function removePartialOutput(out: string, state: 'absent' | 'empty'): Promise<void> {
  if (state === 'absent') await rm(out, { recursive: true, force: true });
  else for (const name of await readdir(out).catch(() => [] as string[])) await rm(join(out, name), { recursive: true, force: true });
}

/**
 * Writes an image back out, exactly: as a pax tar, or as a directory tree (through GNU tar, which
 * restores owners, modes, nanosecond times, devices and xattrs). On failure everything written is
 * removed.
 */
export async function exportImage(
  repo: Repository,
  id: string,
  request: { format: ExportFormat; out: string; signal?: AbortSignal },
  reporter: Reporter,
): Promise<ExportResult> {
  const out = resolve(request.out);
  const entries = await repo.catalog.entries(id);
  const bytes = entries.reduce((n, e) => n + (e.type === 'file' ? (e.size ?? 0) : 0), 0);
  reporter.emit({ type: 'stage', stage: 'export', status: 'start', detail: `${request.format} → ${out}` });
  if (request.format === 'tar') await exportTar(entries, repo.blobs, out, request.signal);
  else await exportTree(entries, repo.blobs, out, reporter, request.signal);
  reporter.emit({ type: 'stage', stage: 'export', status: 'done' });
  return { id, format: request.format, out, entries: entries.length, bytes };
}

async function exportTar(entries: Entry[], blobs: BlobStore, out: string, signal?: AbortSignal): Promise<void> {
  const members = tarEntries(entries, blobs); // checks the manifest before the file exists
  try {
    await stat(out);
    throw new ConfigError(`${out} already exists`, { hint: 'choose a new file name or remove it first' });
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
  const tmp = join(dirname(out), `.${basename(out)}.${randomBytes(4).toString('hex')}.partial`);
  const file = partialFile(tmp);
  try {
    await writeTar(members, file.stream, signal);
    file.stream.end();
    await finished(file.stream);
    await rename(tmp, out);
  } catch (e) {
    await file.discard();
    throw e;
  }
}

/**
 * Writes entries as a directory tree at `out` (new, or an empty directory), exactly. Nothing is
 * written through a link:
 * - the entries are checked first (safeTreeEntries): no entry lies below a symlink or another
 *   non-directory, so GNU tar never has a reason to follow one; -k makes it refuse to replace
 *   anything it did not create;
 * - tar runs in a private directory (mode 0700) that aim makes inside `out` and hands to tar by
 *   descriptor (its working directory is /proc/self/fd/N), so neither a rename of `out` nor another
 *   user writing into it while tar runs can redirect what tar writes;
 * - the tree's top-level entries are then moved into `out` by rename, beneath the same descriptor.
 * The root entry's times are applied to `out`, and its mode, owner and xattrs too when aim created
 * `out` (an existing directory keeps them, as GNU tar's --no-overwrite-dir does).
 * On failure everything written is removed.
 */
export async function exportTree(entries: Entry[], blobs: BlobStore, out: string, reporter: Reporter, signal?: AbortSignal): Promise<void> {
  const members = tarEntries(entries, blobs, { withRoot: false });
  const dev = entries.find((e) => e.type === 'char' || e.type === 'block');
  if (dev && !hasCapability(CAP.MKNOD)) {
    throw new PermissionError(`${dev.path} is a device node: creating it needs root (CAP_MKNOD)`, {
      hint: 'run as root, or export --format tar, which needs no privileges',
    });
  }
  const canChown = hasCapability(CAP.CHOWN);
  if (!canChown && entries.some((e) => e.uid !== process.getuid?.() || e.gid !== process.getgid?.())) {
    reporter.emit({ type: 'warn', code: 'W_OWNERS_NOT_KEPT', message: 'not root: files are owned by you, not by the owners recorded in the image' });
  }
  const state = await emptyOrAbsent(out);
  if (state === 'absent') {
    await mkdir(dirname(out), { recursive: true });
    await mkdir(out, { mode: 0o700 });
  }
  const owners = canChown ? ['--same-owner'] : [];
  let root: BeneathRoot | undefined;
  try {
    root = await BeneathRoot.open(out);
    // the directory opened must be the empty one checked, not something put there since
    if ((await root.readdir('')).length > 0) throw new ConfigError(`${out} is not empty`, { hint: 'export into a new or empty directory' });
    const staging = `.aim-export-${randomBytes(6).toString('hex')}`;
    await root.mkdir(staging, 0o700);
    await root.withDir(staging, (dir) => extractTar(members, dir, ['-k', ...owners], signal));
    for (const name of await root.readdir(staging)) await root.rename(Buffer.concat([Buffer.from(`${staging}/`), name]), name);
    await root.rmdir(staging);
    // the root entry last, alone: its times (and, in a directory aim made, its mode, owner and xattrs)
    const top = entries.filter((e) => e.path === '/');
    const keepDir = state === 'empty' ? ['--no-overwrite-dir'] : [];
    if (top.length > 0) await root.withDir('', (dir) => extractTar(tarEntries(top, blobs), dir, [...keepDir, ...owners], signal));
  } catch (e) {
    await members.return(undefined);
    await removePartialOutput(out, state);
    throw signal?.aborted ? cancellationError(signal) : e;
  } finally {
    await root?.close();
  }
}

/** GNU tar extracting `members` with its working directory at `dir` (a /proc/self/fd path); the signal kills it. */
async function extractTar(members: AsyncGenerator<TarWriteEntry>, dir: string, options: string[], signal?: AbortSignal): Promise<void> {
  const args = ['-x', '-f', '-', '-p', '--xattrs', '--xattrs-include=*', '--numeric-owner', ...options];
  const { child } = await spawnTool('tar', args, { stdin: 'pipe', stdout: 'ignore', stderr: 'pipe', cwd: dir, ...(signal ? { cancelSignal: signal } : {}) });
  const stderr: Buffer[] = [];
  child.stderr?.on('data', (d: Buffer) => stderr.push(d));
  const writing = writeTar(members, child.stdin!).then(() => child.stdin!.end());
  // tar must have exited before the partial output is removed, or it could go on writing into it.
  const [written, ran] = await Promise.allSettled([writing.catch((e: unknown) => { child.kill(); throw e; }), child]);
  if (written.status === 'rejected') throw written.reason;
  if (ran.status === 'rejected') throw ran.reason;
  if (ran.value.exitCode !== 0) {
    throw new ConfigError(`extracting the image failed: ${Buffer.concat(stderr).toString().trim().split('\n').slice(-3).join('; ')}`);
  }
}

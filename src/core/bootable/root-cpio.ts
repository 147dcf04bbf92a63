import { InternalError } from '../../lib/errors.js';
import { decodePath } from '../../lib/path-codec.js';
import type { Reporter } from '../../lib/reporter.js';
import { safeTreeEntries } from '../export/tree-order.js';
import type { Entry } from '../model/entry.js';
import type { BlobStore } from '../repository/types.js';
import { bufferContent, entryContent } from './content.js';
import { CPIO_MAX_FIELD, cpioChunks, cpioKey, cpioLength, type CpioMember, type CpioRecord } from './cpio.js';
import { RAM_ROOT_MARKER } from './init-scripts.js';
import type { RootAddition } from './root-tree.js';

/** A root filesystem as one newc archive, laid out: its exact length is known before any content is read. */
export interface RootCpio {
  /** Bytes of the archive (a Content-Length), trailer included. */
  length: number;
  /** Records, the completeness marker included. */
  records: number;
  /** Equal for equal archives (cpioKey): every header and content id, no content read. */
  key: string;
  /** The archive: content streamed from the blob store one file at a time, holes as zeros. */
  chunks(signal?: AbortSignal): AsyncGenerator<Buffer>;
}

export interface RootCpioInput {
  /** The image's entries that go into the root (bootRootEntries). */
  entries: readonly Entry[];
  /** What aim adds (aimRootAdditions): root-owned, with the archive's time. */
  additions: readonly RootAddition[];
  blobs: BlobStore;
  /** Directory the root is unpacked into ("newroot"): every name starts with it. */
  prefix: string;
  /** The archive's time: aim's additions and the marker carry it. */
  mtime: number;
}

/** newc holds times from 1970 to 2106: earlier ones become 0, later ones the last second it can hold. */
const cpioTime = (t: number) => Math.min(Math.max(0, Math.floor(t)), CPIO_MAX_FIELD);

interface Laid {
  name: Buffer;
  member: CpioMember;
  /** The path of the file whose inode this name shares (hard links and their file). */
  inode?: string;
}

/**
 * The root of a PXE boot as a newc archive under `prefix/`, straight from the image's entries and
 * the blob store: no tree is exported, nothing needs root, since owners, modes, device numbers and
 * times are written as the manifest records them. Names are the paths' exact bytes, sorted as
 * bytes (so every directory comes before what it holds); hard links stay links (one inode number,
 * the content once, on the last name); a sparse file's holes are written as zeros (newc has no
 * holes) from one shared buffer; extended attributes are not carried (newc has no place for
 * them: see warnXattrs). The record /init checks, RAM_ROOT_MARKER, comes last. The manifest is
 * checked first (safeTreeEntries), so a contradictory one fails before any byte. Deterministic:
 * the same input gives the same bytes.
 */
export function layOutRootCpio(input: RootCpioInput): RootCpio {
  const prefix = Buffer.from(input.prefix, 'utf8');
  const name = (path: string) => (path === '/' ? prefix : Buffer.concat([prefix, decodePath(path)]));
  const safe = safeTreeEntries(input.entries);
  const files = new Map(safe.filter((e) => e.type === 'file').map((e) => [e.path, e]));
  const linked = new Set(safe.filter((e) => e.type === 'hardlink').map((e) => e.target!));
  const laid: Laid[] = safe.map((e): Laid => {
    const inode = e.type === 'hardlink' ? files.get(e.target!) : undefined;
    // the names of one file share its inode: its owner, mode and time
    const meta = inode ?? e;
    const member: CpioMember = { name: name(e.path), type: e.type === 'hardlink' ? 'file' : e.type, mode: meta.mode, uid: meta.uid, gid: meta.gid, mtime: cpioTime(meta.mtime) };
    if (e.type === 'symlink') member.target = decodePath(e.target!);
    if (e.type === 'char' || e.type === 'block') Object.assign(member, { rdevMajor: e.devMajor ?? 0, rdevMinor: e.devMinor ?? 0 });
    if (e.type === 'file') member.content = entryContent(e, input.blobs);
    if (inode) member.content = entryContent(inode, input.blobs);
    return { name: member.name as Buffer, member, ...(inode ? { inode: inode.path } : linked.has(e.path) ? { inode: e.path } : {}) };
  });
  const paths = new Set(safe.map((e) => e.path));
  for (const a of input.additions) {
    if (paths.has(a.path)) throw new InternalError(`${a.path} is both in the image and added by aim`);
    laid.push({ name: name(a.path), member: { name: name(a.path), type: a.type, mode: a.mode, uid: 0, gid: 0, mtime: input.mtime, ...(a.content ? { content: a.content } : {}) } });
  }
  laid.sort((a, b) => Buffer.compare(a.name, b.name));
  const records = linkRecords(laid);
  records.push({ member: { name: RAM_ROOT_MARKER, type: 'file', mode: 0o644, content: bufferContent(Buffer.from(`${input.prefix}\n`)) }, ino: records.length + 1 });
  return {
    length: cpioLength(records),
    records: records.length,
    key: cpioKey(records, input.mtime),
    chunks: (signal) => cpioChunks(records, input.mtime, signal),
  };
}

/**
 * Inode numbers follow the order (1-based); the names of one file share the first name's number,
 * carry their count, and only the last carries the content.
 */
function linkRecords(laid: readonly Laid[]): CpioRecord[] {
  const groups = new Map<string, { ino: number; nlink: number; last: number }>();
  laid.forEach((l, i) => {
    if (l.inode === undefined) return;
    const g = groups.get(l.inode);
    if (g) {
      g.nlink++;
      g.last = i;
    } else groups.set(l.inode, { ino: i + 1, nlink: 1, last: i });
  });
  return laid.map((l, i) => {
    const g = l.inode === undefined ? undefined : groups.get(l.inode)!;
    if (!g || g.nlink < 2) return { member: l.member, ino: i + 1 };
    const { content, ...member } = l.member;
    return { member: { ...member, nlink: g.nlink, ...(g.last === i ? { content } : {}) }, ino: g.ino };
  });
}

/** Warns that newc cannot carry extended attributes (file capabilities are lost in the PXE root). */
export function warnXattrs(context: { entries: readonly Entry[]; reporter: Reporter }): void {
  const withXattrs = context.entries.filter((e) => e.xattrs && Object.keys(e.xattrs).length > 0);
  if (withXattrs.length === 0) return;
  const first = withXattrs[0]!;
  context.reporter.emit({
    type: 'warn',
    code: 'W_PXE_XATTRS',
    path: first.path,
    message: `${withXattrs.length} file(s) have extended attributes (${first.path}: ${Object.keys(first.xattrs!).join(', ')}); the PXE initrd (newc cpio) cannot carry them, so they are dropped (file capabilities are lost)`,
  });
}

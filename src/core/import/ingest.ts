import type { Readable } from 'node:stream';
import { InputError, PermissionError, errnoCode } from '../../lib/errors.js';
import { faultPoint } from '../../lib/fault.js';
import { encodePath } from '../../lib/path-codec.js';
import type { Reporter } from '../../lib/reporter.js';
import { ELF_INSPECTOR, parseElfBuffer, type ElfFacts } from '../analyze/elf.js';
import { MODE_BITS, parentPath, type Entry } from '../model/entry.js';
import { canonicalizeHardlinks, sortEntries } from '../model/manifest.js';
import type { BlobStore, LocalBlob, PutLocalOptions } from '../repository/types.js';
import { isHole, type ContentChunk } from '../model/sparse.js';
import type { LocalContent, Source, SourceEntry, StoredContent } from './source.js';
import { packBuffer, storeContent } from './store-content.js';

export interface IngestResult {
  entries: Entry[];
  /** Blobs whose first bytes are the ELF magic (saves re-reading heads during analysis). */
  elfBlobs: Set<string>;
  /** ELF facts of the ELF blobs ingest held in memory whole (most of them). */
  elfFacts: Map<string, ElfFacts>;
  fileCount: number;
  totalSize: number;
  skipped: { path: string; reason: string }[];
}

export interface IngestOptions {
  blobs: BlobStore;
  reporter: Reporter;
  /** Label for messages (the source path). */
  label: string;
  /** Files stored at once (small contents of streaming sources are buffered meanwhile: at most this many MiB). */
  concurrency?: number;
}

const DOT = 0x2e;
const SLASH = 0x2f;

/**
 * Turns a raw source name into an image path. Rejects what could escape the image or is
 * ambiguous: absolute names, "..", NUL bytes. "./" prefixes and "." components are dropped.
 */
export function normalizeName(raw: Buffer, label: string, what = 'entry'): string {
  const plain = plainName(raw);
  if (plain !== undefined) return plain;
  if (raw.includes(0)) throw new InputError('E_BAD_NAME', `${label}: ${what} name contains a NUL byte`);
  if (raw.length > 0 && raw[0] === SLASH) {
    throw new InputError('E_ABSOLUTE_PATH', `${label}: ${what} "${encodePath(raw)}" has an absolute path`, {
      hint: 'archives must use relative names (tar strips "/" when created with -C)',
    });
  }
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i <= raw.length; i++) {
    if (i === raw.length || raw[i] === SLASH) {
      const len = i - start;
      if (len === 0 || (len === 1 && raw[start] === DOT)) {
        // empty or "." component
      } else if (len === 2 && raw[start] === DOT && raw[start + 1] === DOT) {
        throw new InputError('E_PATH_TRAVERSAL', `${label}: ${what} "${encodePath(raw)}" contains "..", which would escape the image`);
      } else parts.push(encodePath(raw.subarray(start, i)));
      start = i + 1;
    }
  }
  return '/' + parts.join('/');
}

/**
 * The common case in one pass and one string: a relative name of ASCII bytes without "%" or
 * NUL, and without empty, "." or ".." components, is its own image path. Anything else is
 * left to normalizeName's component-wise handling (undefined).
 */
function plainName(raw: Buffer): string | undefined {
  const n = raw.length;
  if (n === 0) return undefined;
  let start = 0;
  for (let i = 0; i <= n; i++) {
    const b = i < n ? raw[i]! : SLASH;
    if (b === SLASH) {
      const len = i - start;
      if (len === 0 || (raw[start] === DOT && (len === 1 || (len === 2 && raw[start + 1] === DOT)))) return undefined;
      start = i + 1;
    } else if (b >= 0x80 || b === 0x25 || b === 0) return undefined;
  }
  return '/' + raw.toString('latin1');
}

/** A local file that cannot be read: what the user can do about it. */
function readFailed(e: unknown, label: string, path: string): unknown {
  const code = errnoCode(e);
  if (code === 'EACCES' || code === 'EPERM') {
    return new PermissionError(`${label}: cannot read "${path}": permission denied`, {
      hint: 'import system trees as root so every file, owner and capability can be read',
      cause: e,
    });
  }
  if (code === 'ENOENT') {
    return new InputError('E_SOURCE_CHANGED', `${label}: "${path}" disappeared while it was imported`, {
      hint: 'import a tree that nothing changes meanwhile (a snapshot or a stopped system)',
      cause: e,
    });
  }
  return e;
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/**
 * putLocal's options for ingest: ELF facts of a small file while its content is still in the
 * store's read buffer, on the writer thread that read it when the store has threads.
 */
export const INSPECT_ELF: PutLocalOptions<ElfFacts | undefined> = { inspect: parseElfBuffer, inspectMagic: ELF_MAGIC, inspectModule: ELF_INSPECTOR };

function isElfHead(b: Buffer): boolean {
  return b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

/** Contents up to this size from streaming sources are buffered and stored in the background. */
const SMALL_FILE = 1 << 20;

/** A small content in memory (holes a reader reported are zeros here); more than `max` bytes is a lie of the source. */
async function collect(content: Readable | AsyncIterable<ContentChunk>, max: number, what: () => InputError): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of content as AsyncIterable<ContentChunk>) {
    const b = isHole(c) ? Buffer.alloc(Math.min(c.hole, max + 1)) : c;
    n += b.length;
    if (n > max) throw what();
    chunks.push(b);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

async function drain(content: SourceEntry['content']): Promise<void> {
  if (!content) return;
  for await (const _ of content as AsyncIterable<ContentChunk>) {
    // discard
  }
}

const encodeXattrs = (x: Record<string, Buffer>): Record<string, string> => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.toString('base64')]));

const implicitDir = (path: string): Entry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });

/**
 * The tree being built, well formed by construction: every entry's parent is a directory (one
 * the source listed, or an implicit one until it does). Sources are applied with tar's rule: a
 * later entry for a path replaces the earlier one (a directory's metadata is updated and its
 * children stay). What cannot be applied is refused naming both entries: anything below a
 * non-directory, and a non-directory replacing a directory that has children.
 */
class Tree {
  readonly byPath = new Map<string, Entry>();
  /** Directories only implied by the paths below them. */
  private readonly implicit = new Set<string>();
  /** One path below each directory that has children, for messages. */
  private readonly childOf = new Map<string, string>();
  /** File path → the hardlinks naming it. */
  private readonly links = new Map<string, string[]>();

  constructor(private readonly label: string) {}

  /** Checks and records where `path` goes; its ancestors become (implicit) directories. */
  place(path: string, type: string): Entry | undefined {
    const { label } = this;
    if (path === '/') {
      if (type !== 'dir') throw new InputError('E_BAD_ROOT', `${label}: the image root "/" is a ${type}, not a directory`);
    } else {
      for (let p = parentPath(path); ; p = parentPath(p)) {
        const a = this.byPath.get(p);
        if (a) {
          if (a.type === 'symlink') {
            throw new InputError('E_PATH_THROUGH_SYMLINK', `${label}: "${path}" would be written through the symlink "${p}" -> "${a.target}"`);
          }
          if (a.type !== 'dir') throw new InputError('E_NOT_A_DIRECTORY', `${label}: "${path}" is below "${p}", which is a ${a.type}, not a directory`);
          if (!this.childOf.has(p)) this.childOf.set(p, path);
          break; // the ancestor's own ancestors were checked when it was added
        }
        this.byPath.set(p, implicitDir(p));
        this.implicit.add(p);
        this.childOf.set(p, path);
        if (p === '/') break;
      }
    }
    const existing = this.byPath.get(path);
    if (existing?.type === 'dir' && type !== 'dir' && this.childOf.has(path)) {
      throw new InputError(
        'E_CONFLICTING_ENTRIES',
        `${label}: "${path}" is listed as a ${type} after "${this.childOf.get(path)}" was listed below it as a directory`,
        { hint: 'the archive contradicts itself (a path is both a directory with content and something else); recreate it' },
      );
    }
    return existing;
  }

  /** Adds `entry` at a path `place` accepted, replacing what was there (tar: the last entry wins). */
  set(entry: Entry, existing: Entry | undefined): void {
    const path = entry.path;
    this.implicit.delete(path);
    if (existing?.type === 'hardlink') {
      const list = this.links.get(existing.target!);
      if (list) list.splice(list.indexOf(path), 1);
    }
    if (existing?.type === 'file') this.promoteLinks(existing);
    if (entry.type === 'hardlink') {
      const list = this.links.get(entry.target!) ?? [];
      list.push(path);
      this.links.set(entry.target!, list);
    }
    this.byPath.set(path, entry);
  }

  /**
   * A file replaced while hardlinks name it: as in tar, the links keep the old content. The first
   * link becomes the file (the same Entry object, so a content still being stored lands in it).
   */
  private promoteLinks(old: Entry): void {
    const list = this.links.get(old.path);
    this.links.delete(old.path);
    if (!list || list.length === 0) return;
    const [first, ...rest] = list;
    old.path = first!;
    this.byPath.set(first!, old);
    for (const p of rest) this.byPath.get(p)!.target = first;
    if (rest.length > 0) this.links.set(first!, rest);
  }
}

/**
 * Consumes a source: validates every name, stores file contents as blobs (long zero runs and
 * holes as holes), and returns the canonical, sorted entry list. Throws InputError at the first
 * unsafe or malformed entry; blobs already stored then stay unreferenced until gc (they never
 * become visible as an image).
 */
export async function ingestSource(source: Source, options: IngestOptions): Promise<IngestResult> {
  const { blobs, reporter, label } = options;
  const tree = new Tree(label);
  const byPath = tree.byPath;
  const elfBlobs = new Set<string>();
  const elfFacts = new Map<string, ElfFacts>();
  const skipped: IngestResult['skipped'] = [];
  const pending = new Set<Promise<void>>();
  const limit = options.concurrency ?? 64;
  let count = 0;
  let failure: unknown;

  const mismatch = (entry: Entry, declared: number | undefined, actual: string | number) =>
    new InputError('E_SIZE_MISMATCH', `${label}: "${entry.path}" declared ${declared} bytes but has ${actual}`);

  const record = (entry: Entry, stored: StoredContent, head: Buffer | undefined, declared: number | undefined) => {
    if (declared !== undefined && stored.size !== declared) throw mismatch(entry, declared, stored.size);
    // A sparse file's blob holds only its data: its first bytes are not the file's, so it is never taken for ELF.
    if (head && !stored.sparse && isElfHead(head)) elfBlobs.add(stored.hash);
    entry.blob = stored.hash;
    entry.size = stored.size;
    if (stored.sparse) entry.sparse = stored.sparse;
    faultPoint('blob-stored');
  };

  const storeStream = async (entry: Entry, content: Readable | AsyncIterable<ContentChunk>, declared: number | undefined) => {
    const stored = await storeContent(blobs, content);
    record(entry, stored, stored.head, declared);
  };

  const storeBuffer = async (entry: Entry, content: Buffer, declared: number | undefined) => {
    const { data, sparse } = packBuffer(content);
    const stored = await blobs.putBuffer(data);
    record(entry, sparse ? { hash: stored.hash, size: content.length, sparse } : stored, content, declared);
    if (!sparse && isElfHead(content) && !elfFacts.has(stored.hash)) {
      const facts = parseElfBuffer(content);
      if (facts) elfFacts.set(stored.hash, facts);
    }
  };


  const storeLocal = async (entry: Entry, local: LocalContent, declared: number | undefined) => {
    let stored: LocalBlob<ElfFacts | undefined>;
    try {
      stored = await blobs.putLocal(local, INSPECT_ELF);
    } catch (e) {
      throw readFailed(e, label, entry.path);
    }
    if (local.fd !== undefined && declared !== undefined && stored.size !== declared) {
      // The open file matched its listing, then shrank or grew while it was read.
      throw new InputError('E_SOURCE_CHANGED', `${label}: "${entry.path}" changed during import (${stored.size} bytes read, ${declared} listed)`, {
        hint: 'import a tree that nothing changes meanwhile (a snapshot or a stopped system)',
      });
    }
    record(entry, stored, stored.head, declared);
    if (stored.inspected && !elfFacts.has(stored.hash)) elfFacts.set(stored.hash, stored.inspected);
  };

  let wake: (() => void) | undefined;
  const track = (job: Promise<void>) => {
    const p: Promise<void> = job.then(
      () => settle(p),
      (e: unknown) => {
        failure ??= e;
        settle(p);
      },
    );
    pending.add(p);
    return p;
  };
  const settle = (p: Promise<void>) => {
    pending.delete(p);
    const w = wake;
    wake = undefined;
    w?.();
  };
  /** Waits until fewer than `limit` stores are in flight. */
  const room = async () => {
    while (pending.size >= limit) await new Promise<void>((r) => (wake = r));
  };

  try {
    for await (const se of source) {
      // A descriptor handed over (release) is closed once its store settles, or here if it never starts.
      let handedOver = false;
      try {
        if (failure) break;
        const path = normalizeName(se.name, label);
        if (se.type === 'socket') {
          skipped.push({ path, reason: 'socket' });
          reporter.emit({ type: 'warn', code: 'W_SOCKET_SKIPPED', message: `skipped socket ${path} (sockets are created by programs at run time)`, path });
          continue;
        }
        const existing = tree.place(path, se.type);
        const entry: Entry = { path, type: se.type, mode: se.mode & MODE_BITS, uid: se.uid, gid: se.gid, mtime: se.mtime };
        if (se.mtimeNsec) entry.mtimeNsec = se.mtimeNsec;
        if (se.xattrs && Object.keys(se.xattrs).length > 0) entry.xattrs = encodeXattrs(se.xattrs);
        switch (se.type) {
          case 'file':
            if (se.blob) {
              const { hash, head, inspected } = se.blob;
              entry.blob = hash;
              entry.size = se.blob.size;
              if (se.blob.sparse) entry.sparse = se.blob.sparse;
              else if (head && isElfHead(head)) elfBlobs.add(hash);
              if (inspected && !elfFacts.has(hash)) elfFacts.set(hash, inspected);
              faultPoint('blob-stored');
            } else if (se.local) {
              const local = se.local;
              if (local.fd !== undefined && !local.release) {
                // The reader closes the descriptor when asked for the next entry: store it first.
                await storeLocal(entry, local, se.size);
              } else {
                handedOver = true;
                track(storeLocal(entry, local, se.size).finally(() => local.release?.()));
                await room();
              }
            } else if (se.content) {
              if (se.size !== undefined && se.size <= SMALL_FILE) {
                // A streaming source must be read in order, but small contents can be held in memory
                // and written in the background while the stream moves on.
                const declared = se.size;
                const buf = await collect(se.content, declared, () => mismatch(entry, declared, 'more'));
                track(storeBuffer(entry, buf, se.size));
              } else {
                await track(storeStream(entry, se.content, se.size));
              }
              await room();
            } else {
              entry.blob = (await blobs.putBuffer(Buffer.alloc(0))).hash;
              entry.size = 0;
              if ((se.size ?? 0) !== 0) throw new InputError('E_SIZE_MISMATCH', `${label}: "${path}" declared ${se.size} bytes but has no content`);
            }
            break;
          case 'symlink':
            await drain(se.content);
            if (!se.linkName || se.linkName.length === 0) throw new InputError('E_BAD_SYMLINK', `${label}: symlink "${path}" has an empty target`);
            entry.target = encodePath(se.linkName);
            break;
          case 'hardlink': {
            await drain(se.content);
            if (!se.linkName) throw new InputError('E_BAD_HARDLINK', `${label}: hardlink "${path}" has no target`);
            const target = normalizeName(se.linkName, label, `hardlink target of "${path}"`);
            const t = target === path ? undefined : byPath.get(target);
            if (!t) {
              throw new InputError('E_HARDLINK_OUTSIDE', `${label}: hardlink "${path}" points at "${target}", which is not an earlier file of the image`);
            }
            if (t.type !== 'file' && t.type !== 'hardlink') {
              throw new InputError('E_BAD_HARDLINK', `${label}: hardlink "${path}" points at "${target}", a ${t.type}`);
            }
            // Links name the file itself, so replacing the file later keeps them on the old content.
            entry.target = t.type === 'hardlink' ? t.target : target;
            break;
          }
          case 'char':
          case 'block':
            entry.devMajor = se.devMajor ?? 0;
            entry.devMinor = se.devMinor ?? 0;
            break;
          default:
            await drain(se.content);
        }
        tree.set(entry, existing);
        if (++count % 2000 === 0) reporter.emit({ type: 'progress', stage: 'import', done: count, unit: 'entries' });
      } finally {
        if (!handedOver) se.local?.release?.();
      }
    }
  } catch (e) {
    // Blobs being written in the background must land before the caller rolls back.
    await Promise.allSettled(pending);
    throw e;
  }
  await Promise.all(pending);
  if (failure) throw failure;
  if (source.lateXattrs) {
    for (const [name, xattrs] of await source.lateXattrs()) {
      const entry = byPath.get(normalizeName(name, label));
      if (entry) entry.xattrs = encodeXattrs(xattrs);
    }
  }

  if (!byPath.has('/')) byPath.set('/', implicitDir('/'));
  const entries = sortEntries([...byPath.values()]);
  canonicalizeHardlinks(entries);
  // Counted from the final tree: an entry a later one replaced is not in the image.
  let fileCount = 0;
  let totalSize = 0;
  for (const e of entries) {
    if (e.type !== 'file') continue;
    fileCount++;
    totalSize += e.size ?? 0;
  }
  reporter.emit({ type: 'progress', stage: 'import', done: count, total: count, unit: 'entries' });
  return { entries, elfBlobs, elfFacts, fileCount, totalSize, skipped };
}

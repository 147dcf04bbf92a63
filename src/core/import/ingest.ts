import type { Readable } from 'node:stream';
import { InputError, PermissionError, errnoCode } from '../../lib/errors.js';
import { faultPoint } from '../../lib/fault.js';
import { encodePath } from '../../lib/path-codec.js';
import type { Reporter } from '../../lib/reporter.js';
import { parseElf, type ElfFacts } from '../analyze/elf.js';
import { MODE_BITS, parentPath, type Entry } from '../model/entry.js';
import { canonicalizeHardlinks, sortEntries } from '../model/manifest.js';
import type { BlobStore, LocalBlob } from '../repository/types.js';
import type { LocalContent, Source, SourceEntry } from './source.js';

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

function isElfHead(b: Buffer): boolean {
  return b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

/** Contents up to this size from streaming sources are buffered and stored in the background. */
const SMALL_FILE = 1 << 20;

async function collect(content: Readable | AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of content as AsyncIterable<Buffer>) chunks.push(c);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

async function drain(content: SourceEntry['content']): Promise<void> {
  if (!content) return;
  for await (const _ of content as AsyncIterable<Buffer>) {
    // discard
  }
}

/**
 * Consumes a source: validates every name, stores file contents as blobs, and returns the
 * canonical, sorted entry list. Throws InputError at the first unsafe or malformed entry; blobs
 * already stored then stay unreferenced until gc (they never become visible as an image).
 */
export async function ingestSource(source: Source, options: IngestOptions): Promise<IngestResult> {
  const { blobs, reporter, label } = options;
  const byPath = new Map<string, Entry>();
  const elfBlobs = new Set<string>();
  const elfFacts = new Map<string, ElfFacts>();
  const skipped: IngestResult['skipped'] = [];
  const pending = new Set<Promise<void>>();
  const limit = options.concurrency ?? 64;
  let fileCount = 0;
  let totalSize = 0;
  let count = 0;
  let failure: unknown;

  const checkParents = (path: string) => {
    for (let p = parentPath(path); p !== '/'; p = parentPath(p)) {
      const parent = byPath.get(p);
      if (!parent) continue;
      if (parent.type === 'symlink') {
        throw new InputError('E_PATH_THROUGH_SYMLINK', `${label}: "${path}" would be written through the symlink "${p}" -> "${parent.target}"`);
      }
      if (parent.type !== 'dir') throw new InputError('E_NOT_A_DIRECTORY', `${label}: "${path}" is below "${p}", which is not a directory`);
      break; // the parent's own ancestors were checked when it was added
    }
  };

  const record = (entry: Entry, stored: { hash: string; size: number }, head: Buffer | undefined, declared: number | undefined) => {
    if (declared !== undefined && stored.size !== declared) {
      throw new InputError('E_SIZE_MISMATCH', `${label}: "${entry.path}" declared ${declared} bytes but has ${stored.size}`);
    }
    if (head && isElfHead(head)) elfBlobs.add(stored.hash);
    entry.blob = stored.hash;
    entry.size = stored.size;
    totalSize += stored.size;
    faultPoint('blob-stored');
  };

  const storeStream = async (entry: Entry, content: Readable | AsyncIterable<Buffer>, declared: number | undefined) => {
    let head: Buffer | undefined;
    const tap = async function* () {
      for await (const chunk of content as AsyncIterable<Buffer>) {
        if (!head && chunk.length > 0) head = chunk;
        yield chunk;
      }
    };
    record(entry, await blobs.put(tap()), head, declared);
  };

  const storeBuffer = async (entry: Entry, content: Buffer, declared: number | undefined) => {
    const stored = await blobs.putBuffer(content);
    record(entry, stored, content, declared);
    if (isElfHead(content) && !elfFacts.has(stored.hash)) {
      const facts = await parseElf(async (offset, length) => content.subarray(offset, offset + length), content.length, { head: content });
      if (facts) elfFacts.set(stored.hash, facts);
    }
  };

  // Small ELF files are parsed while their content is still in the store's read buffer.
  const inspectElf = (content: Buffer) =>
    isElfHead(content) ? parseElf(async (offset, length) => content.subarray(offset, offset + length), content.length, { head: content }) : undefined;

  const storeLocal = async (entry: Entry, local: LocalContent, declared: number | undefined) => {
    let stored: LocalBlob<ElfFacts | undefined>;
    try {
      stored = await blobs.putLocal(local, { inspect: inspectElf });
    } catch (e) {
      throw readFailed(e, label, entry.path);
    }
    record(entry, stored, stored.head, declared);
    if (stored.inspected && !elfFacts.has(stored.hash)) elfFacts.set(stored.hash, stored.inspected);
  };

  const track = (job: Promise<void>) => {
    const p = job.catch((e: unknown) => {
      failure ??= e;
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
    return p;
  };

  try {
    for await (const se of source) {
      if (failure) break;
      const path = normalizeName(se.name, label);
      if (se.type === 'socket') {
        skipped.push({ path, reason: 'socket' });
        reporter.emit({ type: 'warn', code: 'W_SOCKET_SKIPPED', message: `skipped socket ${path} (sockets are created by programs at run time)`, path });
        continue;
      }
      const existing = byPath.get(path);
      if (existing) {
        if (path === '/' && existing.type === 'dir' && se.type === 'dir') byPath.delete(path);
        else throw new InputError('E_DUPLICATE_ENTRY', `${label}: "${path}" appears twice`, { hint: 'an archive must list each path once' });
      }
      checkParents(path);
      const entry: Entry = { path, type: se.type, mode: se.mode & MODE_BITS, uid: se.uid, gid: se.gid, mtime: se.mtime };
      if (se.mtimeNsec) entry.mtimeNsec = se.mtimeNsec;
      if (se.xattrs && Object.keys(se.xattrs).length > 0) {
        entry.xattrs = Object.fromEntries(Object.entries(se.xattrs).map(([k, v]) => [k, v.toString('base64')]));
      }
      switch (se.type) {
        case 'file':
          fileCount++;
          if (se.blob) {
            entry.blob = se.blob.hash;
            entry.size = se.blob.size;
            totalSize += se.blob.size;
          } else if (se.local) {
            await storeLocal(entry, se.local, se.size);
          } else if (se.content) {
            if (se.size !== undefined && se.size <= SMALL_FILE) {
              // A streaming source must be read in order, but small contents can be held in memory
              // and written in the background while the stream moves on.
              const buf = await collect(se.content);
              track(storeBuffer(entry, buf, se.size));
            } else {
              await track(storeStream(entry, se.content, se.size));
            }
            if (pending.size >= limit) await Promise.race(pending);
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
          const t = byPath.get(target);
          if (!t) {
            throw new InputError('E_HARDLINK_OUTSIDE', `${label}: hardlink "${path}" points at "${target}", which is not an earlier file of the image`);
          }
          if (t.type !== 'file' && t.type !== 'hardlink') {
            throw new InputError('E_BAD_HARDLINK', `${label}: hardlink "${path}" points at "${target}", a ${t.type}`);
          }
          entry.target = target;
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
      byPath.set(path, entry);
      if (++count % 2000 === 0) reporter.emit({ type: 'progress', stage: 'import', done: count, unit: 'entries' });
    }
  } catch (e) {
    // Blobs being written in the background must land before the caller rolls back.
    await Promise.allSettled(pending);
    throw e;
  }
  await Promise.all(pending);
  if (failure) throw failure;

  // Archives may omit directories (and the root); the image needs them to be exportable.
  for (const path of [...byPath.keys()]) {
    for (let p = parentPath(path); ; p = parentPath(p)) {
      if (byPath.has(p)) break;
      byPath.set(p, { path: p, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
      if (p === '/') break;
    }
  }
  if (!byPath.has('/')) byPath.set('/', { path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
  const entries = sortEntries([...byPath.values()]);
  canonicalizeHardlinks(entries);
  reporter.emit({ type: 'progress', stage: 'import', done: count, total: count, unit: 'entries' });
  return { entries, elfBlobs, elfFacts, fileCount, totalSize, skipped };
}

import { createReadStream, lstatSync, readFileSync, type BigIntStats, type Dirent } from 'node:fs';
import { lstat, opendir, readlink } from 'node:fs/promises';
import { InputError, NotFoundError, PermissionError, errnoCode } from '../../lib/errors.js';
import type { EntryType } from '../model/entry.js';
import type { Source, SourceEntry, SourceReader } from './source.js';
import { readTreeXattrs } from './xattr-dump.js';

function typeOf(st: BigIntStats): EntryType | 'socket' | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return undefined;
}

function denied(e: unknown, path: Buffer): never {
  const code = errnoCode(e);
  if (code === 'EACCES' || code === 'EPERM') {
    throw new PermissionError(`cannot read ${path.toString()}: permission denied`, {
      hint: 'import system trees as root so every file, owner and capability can be read',
      cause: e,
    });
  }
  throw e;
}

const SLASH = Buffer.from('/');

/**
 * A directory tree as a source: names are read as bytes (non-UTF-8 names survive), metadata with
 * nanosecond times, hardlinks found by inode, xattrs from one getfattr run. Files are opened
 * lazily so ingest can store several at once. Mount points below the root are walked like any
 * directory: the tree is imported as the user sees it.
 */
export const dirSource: SourceReader = {
  kind: 'dir',
  read(root: string): Source {
    return walk(root);
  },
};

async function* walk(rootPath: string): AsyncGenerator<SourceEntry> {
  const root = Buffer.from(rootPath.replace(/\/+$/, '') || '/');
  const rootStat = await lstat(root, { bigint: true }).catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${rootPath} does not exist`);
    return denied(e, root);
  });
  if (!rootStat.isDirectory()) throw new InputError('E_NOT_A_DIRECTORY', `${rootPath} is not a directory`);
  const xattrs = await readTreeXattrs(rootPath);
  const inodes = new Map<string, Buffer>();

  const entryFor = (host: Buffer, rel: Buffer, st: BigIntStats): SourceEntry | undefined => {
    const type = typeOf(st);
    if (!type) return undefined;
    const se: SourceEntry = {
      name: rel,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: Number(st.mtimeNs / 1_000_000_000n) - (st.mtimeNs < 0n && st.mtimeNs % 1_000_000_000n !== 0n ? 1 : 0),
    };
    const nsec = Number(((st.mtimeNs % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n);
    if (nsec) se.mtimeNsec = nsec;
    const x = xattrs.get(host.toString('latin1'));
    if (x) se.xattrs = x;
    if (type === 'file' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = inodes.get(key);
      if (first) return { ...se, type: 'hardlink', linkName: first };
      inodes.set(key, rel);
    }
    if (type === 'file') {
      se.size = Number(st.size);
      se.randomAccess = true;
      se.content = lazyContent(host, se.size);
    }
    if (type === 'char' || type === 'block') {
      se.devMajor = Number((st.rdev >> 8n) & 0xfffn) | Number((st.rdev >> 32n) & ~0xfffn);
      se.devMinor = Number(st.rdev & 0xffn) | Number((st.rdev >> 12n) & ~0xffn);
    }
    return se;
  };

  const top = entryFor(root, Buffer.alloc(0), rootStat);
  if (top) yield top;
  const stack: { host: Buffer; rel: Buffer }[] = [{ host: root, rel: Buffer.alloc(0) }];
  while (stack.length > 0) {
    const { host, rel } = stack.pop()!;
    const names: Buffer[] = [];
    try {
      const dir = await opendir(host, { encoding: 'buffer' as BufferEncoding });
      for await (const d of dir as AsyncIterable<Dirent>) names.push(d.name as unknown as Buffer);
    } catch (e) {
      denied(e, host);
    }
    names.sort(Buffer.compare);
    const subdirs: { host: Buffer; rel: Buffer }[] = [];
    for (const name of names) {
      const childHost = Buffer.concat([host, host.length === 1 && host[0] === 0x2f ? Buffer.alloc(0) : SLASH, name]);
      const childRel = rel.length === 0 ? name : Buffer.concat([rel, SLASH, name]);
      let st: BigIntStats;
      try {
        st = lstatSync(childHost, { bigint: true });
      } catch (e) {
        denied(e, childHost);
      }
      const se = entryFor(childHost, childRel, st);
      if (!se) continue;
      if (se.type === 'symlink') se.linkName = (await readlink(childHost, { encoding: 'buffer' })) as Buffer;
      yield se;
      if (se.type === 'dir') subdirs.push({ host: childHost, rel: childRel });
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
}

/**
 * Opens the file only when ingest starts reading, so the walk never holds many descriptors.
 * Small files are read whole into a buffer of their size (a stream would allocate its full
 * high-water mark for each of thousands of files).
 */
function lazyContent(host: Buffer, size: number): AsyncIterable<Buffer> {
  return {
    async *[Symbol.asyncIterator]() {
      try {
        if (size <= SMALL_READ) {
          // synchronous on purpose: see FsBlobStore.commitSync
          yield readFileSync(host);
          return;
        }
        for await (const chunk of createReadStream(host, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
      } catch (e) {
        denied(e, host);
      }
    },
  };
}

const SMALL_READ = 1 << 20;

import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { lstat } from 'node:fs/promises';
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
 * nanosecond times, hardlinks found by inode, xattrs from one getfattr run. Files are handed to
 * ingest as local paths (BlobStore.putLocal reads each once). Mount points below the root are
 * walked like any directory: the tree is imported as the user sees it.
 *
 * The walk uses synchronous readdir, lstat and readlink: for trees of many small entries each
 * call costs microseconds, several times less than the thread-pool round trip of the async API.
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
      se.local = { path: host };
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
    let names: Buffer[];
    try {
      names = readdirSync(host, { encoding: 'buffer' });
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
      if (se.type === 'symlink') {
        try {
          se.linkName = readlinkSync(childHost, { encoding: 'buffer' });
        } catch (e) {
          denied(e, childHost);
        }
      }
      yield se;
      if (se.type === 'dir') subdirs.push({ host: childHost, rel: childRel });
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
}

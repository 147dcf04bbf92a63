import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, realpathSync, type BigIntStats } from 'node:fs';
import { InputError, NotFoundError, PermissionError, errnoCode } from '../../lib/errors.js';
import { faultPause } from '../../lib/fault.js';
import type { EntryType } from '../model/entry.js';
import { MIN_HOLE } from '../model/sparse.js';
import { readFileWithHoles } from './hole-reader.js';
import type { LocalContent, Source, SourceEntry, SourceReader } from './source.js';
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

const changedHint = 'import a tree that nothing changes meanwhile (a snapshot or a stopped system)';

function changed(path: Buffer, what: string, cause?: unknown): InputError {
  return new InputError('E_SOURCE_CHANGED', `${path.toString()} changed during import (${what})`, { hint: changedHint, cause });
}

/** An error of a call on `path`: permission problems and changes under our feet say so. */
function failed(e: unknown, path: Buffer): never {
  const code = errnoCode(e);
  if (code === 'EACCES' || code === 'EPERM') {
    throw new PermissionError(`cannot read ${path.toString()}: permission denied`, {
      hint: 'import system trees as root so every file, owner and capability can be read',
      cause: e,
    });
  }
  // Gone, replaced by a symlink (ELOOP with O_NOFOLLOW) or by something else (ENOTDIR, EINVAL).
  if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR' || code === 'EINVAL') throw changed(path, code, e);
  throw e;
}

/** The object behind `fd` is the one listed: same device, inode, type (and size for files). */
function sameObject(listed: BigIntStats, opened: BigIntStats, checkSize: boolean): boolean {
  return (
    listed.dev === opened.dev &&
    listed.ino === opened.ino &&
    (listed.mode & BigInt(fsc.S_IFMT)) === (opened.mode & BigInt(fsc.S_IFMT)) &&
    (!checkSize || listed.size === opened.size)
  );
}

/** `name` inside the directory open as `dirFd`, resolved by the kernel from that directory (an openat). */
function at(dirFd: number, name: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`/proc/self/fd/${dirFd}/`), name]);
}

const O_DIR = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
// O_NONBLOCK: a FIFO put where a file was listed must not block the open (fstat then tells).
const O_FILE = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;
const SLASH = Buffer.from('/');

/**
 * A directory tree as a source: names are read as bytes (non-UTF-8 names survive), metadata with
 * nanosecond times, hardlinks found by inode, xattrs from one getfattr run. Mount points below the
 * root are walked like any directory: the tree is imported as the user sees it.
 *
 * Nothing the tree contains is ever followed, even if it changes during the import: every name is
 * resolved by the kernel inside a directory this reader holds open (through /proc/self/fd, since
 * Node has no openat), directories and files are opened with O_NOFOLLOW, and what was opened must
 * be the object that was listed (device, inode, type, and size for files), else the import fails
 * with E_SOURCE_CHANGED. Files are handed to ingest as open descriptors; files with holes are
 * read without reading the holes (readFileWithHoles).
 *
 * The walk uses synchronous readdir, lstat and open: for trees of many small entries each call
 * costs microseconds, several times less than the thread-pool round trip of the async API.
 */
export const dirSource: SourceReader = {
  kind: 'dir',
  read(root: string): Source {
    // getfattr reads every attribute of the tree in a process of its own while the walk runs.
    let xattrs: Promise<{ root: Buffer; byPath: Map<string, Record<string, Buffer>> }> | undefined;
    const entries = walk(root, (rootPath) => {
      xattrs = readTreeXattrs(rootPath).then((byPath) => ({ root: Buffer.from(rootPath), byPath }));
      xattrs.catch(() => {}); // observed by lateXattrs; a walk that fails first does not ask
    });
    return Object.assign(entries, {
      async lateXattrs(): Promise<[Buffer, Record<string, Buffer>][]> {
        if (!xattrs) return [];
        const { root, byPath } = await xattrs;
        const out: [Buffer, Record<string, Buffer>][] = [];
        for (const [host, x] of byPath) {
          if (Object.keys(x).length === 0) continue;
          const h = Buffer.from(host, 'latin1');
          // Names below the root, relative to it ('' is the root itself).
          if (h.equals(root)) out.push([Buffer.alloc(0), x]);
          else if (h.length > root.length && h.subarray(0, root.length).equals(root) && (h[root.length] === 0x2f || root.at(-1) === 0x2f)) {
            out.push([h.subarray(root.at(-1) === 0x2f ? root.length : root.length + 1), x]);
          }
        }
        return out;
      },
    });
  },
};

async function* walk(givenPath: string, started: (rootPath: string) => void): AsyncGenerator<SourceEntry> {
  let rootPath: string;
  let rootFd: number;
  try {
    // The root is the user's choice: a symlink naming it is followed (and resolved, so the
    // attribute dump and the walk see the same paths); nothing below it is.
    rootPath = realpathSync(givenPath);
    rootFd = openSync(rootPath, fsc.O_RDONLY | fsc.O_DIRECTORY);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${givenPath} does not exist`);
    if (errnoCode(e) === 'ENOTDIR') throw new InputError('E_NOT_A_DIRECTORY', `${givenPath} is not a directory`);
    failed(e, Buffer.from(givenPath));
  }
  const root = Buffer.from(rootPath);
  const open: number[] = [rootFd];
  try {
    try {
      lstatSync(at(rootFd, Buffer.from('.')));
    } catch (e) {
      throw new InputError('E_NO_PROC', `cannot read ${rootPath} safely: /proc is not mounted`, {
        hint: 'aim resolves names inside the directories it holds open through /proc/self/fd; mount /proc',
        cause: e,
      });
    }
    started(rootPath);
    const inodes = new Map<string, Buffer>();

    const entryFor = (rel: Buffer, st: BigIntStats): SourceEntry | undefined => {
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
      if (type === 'file' && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = inodes.get(key);
        if (first) return { ...se, type: 'hardlink', linkName: first };
        inodes.set(key, rel);
      }
      if (type === 'file') se.size = Number(st.size);
      if (type === 'char' || type === 'block') {
        se.devMajor = Number((st.rdev >> 8n) & 0xfffn) | Number((st.rdev >> 32n) & ~0xfffn);
        se.devMinor = Number(st.rdev & 0xffn) | Number((st.rdev >> 12n) & ~0xffn);
      }
      return se;
    };

    /** Opens a listed file: O_NOFOLLOW from its directory, and it must be what was listed. */
    const openFile = (dirFd: number, name: Buffer, host: Buffer, st: BigIntStats): number => {
      let fd: number;
      try {
        fd = openSync(at(dirFd, name), O_FILE);
      } catch (e) {
        failed(e, host);
      }
      open.push(fd);
      if (!sameObject(st, fstatSync(fd, { bigint: true }), true)) throw changed(host, 'it is not the file that was listed');
      return fd;
    };

    const openDir = (dirFd: number, name: Buffer, host: Buffer, st: BigIntStats): number => {
      let fd: number;
      try {
        fd = openSync(at(dirFd, name), O_DIR);
      } catch (e) {
        failed(e, host);
      }
      open.push(fd);
      if (!sameObject(st, fstatSync(fd, { bigint: true }), false)) throw changed(host, 'it is not the directory that was listed');
      return fd;
    };

    const close = (fd: number) => {
      open.splice(open.lastIndexOf(fd), 1);
      closeSync(fd);
    };

    /**
     * A file's descriptor given to the consumer, who may still read it after asking for the next
     * entries (stores run in parallel) and closes it with release(). It leaves `open`, so the end
     * of the walk never closes a descriptor a store still reads.
     */
    const handOver = (fd: number, length: number): LocalContent => {
      open.splice(open.lastIndexOf(fd), 1);
      let closed = false;
      return {
        fd,
        length,
        release: () => {
          if (closed) return;
          closed = true;
          closeSync(fd);
        },
      };
    };

    /** Yields the children of the directory open as `dirFd` (host path `host`), then walks its subdirectories. */
    async function* walkDir(dirFd: number, host: Buffer, rel: Buffer): AsyncGenerator<SourceEntry> {
      let names: Buffer[];
      try {
        names = readdirSync(at(dirFd, Buffer.alloc(0)), { encoding: 'buffer' });
      } catch (e) {
        failed(e, host);
      }
      names.sort(Buffer.compare);
      const subdirs: { name: Buffer; host: Buffer; rel: Buffer; st: BigIntStats }[] = [];
      for (const name of names) {
        const childHost = Buffer.concat([host, host.length === 1 && host[0] === 0x2f ? Buffer.alloc(0) : SLASH, name]);
        const childRel = rel.length === 0 ? name : Buffer.concat([rel, SLASH, name]);
        let st: BigIntStats;
        try {
          st = lstatSync(at(dirFd, name), { bigint: true });
        } catch (e) {
          failed(e, childHost);
        }
        const se = entryFor(childRel, st);
        if (!se) continue;
        if (se.type === 'symlink') {
          try {
            se.linkName = readlinkSync(at(dirFd, name), { encoding: 'buffer' });
          } catch (e) {
            failed(e, childHost);
          }
        }
        faultPause('dir-listed', childHost.toString());
        let fd: number | undefined;
        if (se.type === 'file') {
          fd = openFile(dirFd, name, childHost, st);
          // Fewer blocks allocated than a hole's worth of the size: read around the holes.
          const holes = st.size >= BigInt(MIN_HOLE) && st.size - st.blocks * 512n >= BigInt(MIN_HOLE);
          if (holes) se.content = readFileWithHoles(fd, se.size!, childHost.toString());
          else {
            se.local = handOver(fd, se.size!);
            fd = undefined;
          }
        }
        try {
          yield se;
        } finally {
          if (fd !== undefined) close(fd);
        }
        if (se.type === 'dir') subdirs.push({ name, host: childHost, rel: childRel, st });
      }
      for (const d of subdirs) {
        faultPause('dir-descend', d.host.toString());
        const fd = openDir(dirFd, d.name, d.host, d.st);
        try {
          yield* walkDir(fd, d.host, d.rel);
        } finally {
          close(fd);
        }
      }
    }

    const top = entryFor(Buffer.alloc(0), fstatSync(rootFd, { bigint: true }));
    if (top) yield top;
    yield* walkDir(rootFd, root, Buffer.alloc(0));
  } finally {
    for (const fd of open.reverse()) closeSync(fd);
  }
}

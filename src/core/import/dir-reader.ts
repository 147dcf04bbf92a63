import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, realpathSync, type Dirent } from 'node:fs';
import { InputError, NotFoundError, errnoCode } from '../../lib/errors.js';
import { faultPoint } from '../../lib/fault.js';
import { listAt, listingFailed, openListedFile, procAt, sameObject, sourceChanged, statusOf, type ListedStatus } from '../../lib/listed-file.js';
import { MIN_HOLE } from '../model/sparse.js';
import { readFileWithHoles } from './hole-reader.js';
import type { ListedFile, ListedFileStore, LocalContent, Source, SourceEntry, SourceReader, SourceReadOptions } from './source.js';
import { readTreeXattrs } from './xattr-dump.js';

const O_DIR = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
const SLASH = Buffer.from('/');
/**
 * Entries the walk runs ahead of the consumer: the files among them are being read and stored
 * (on the blob store's writer threads) while earlier entries are handed on. Deep, so writer
 * threads still have work when a busy machine leaves this thread waiting for a core; the
 * directories held open for it are capped by MAX_OPEN.
 */
const LOOKAHEAD = 2048;
/** Descriptors the look-ahead may hold (directories, files with holes, files handed over); the walk's own path is always open. */
const MAX_OPEN = 256;

/**
 * A directory tree as a source: names are read as bytes (non-UTF-8 names survive), metadata with
 * nanosecond times, hardlinks found by inode, xattrs from one getfattr run beside the walk. Mount
 * points below the root are walked like any directory: the tree is imported as the user sees it.
 *
 * Nothing the tree contains is ever followed, even if it changes during the import
 * (lib/listed-file.ts): every name is resolved by the kernel inside a directory this reader holds
 * open, directories and files are opened with O_NOFOLLOW, and what was opened must be the object
 * that was listed (device, inode, type, and size for files), else the import fails with
 * E_SOURCE_CHANGED. Files with holes are read without reading the holes (readFileWithHoles).
 *
 * Regular files (as readdir types them) are listed, opened, checked and stored by the blob store
 * itself (`storeListed`, on its writer threads) while this walk runs up to LOOKAHEAD entries
 * ahead; the entries come out in walk order with their content stored. Without `storeListed`
 * (a remote blob store) files are handed to ingest as open descriptors instead.
 *
 * The walk uses synchronous readdir, lstat and open: for trees of many small entries each call
 * costs microseconds, several times less than the thread-pool round trip of the async API.
 */
export const dirSource: SourceReader = {
  kind: 'dir',
  read(root: string, options?: SourceReadOptions): Source {
    // getfattr reads every attribute of the tree in a process of its own while the walk runs.
    let xattrs: Promise<{ root: Buffer; byPath: Map<string, Record<string, Buffer>> }> | undefined;
    const entries = walk(root, options?.storeListed, (rootPath) => {
      xattrs = readTreeXattrs(rootPath).then((byPath) => ({ root: Buffer.from(rootPath), byPath }));
      xattrs.catch(() => {}); // observed by lateXattrs; a walk that fails first does not ask
    });
    return Object.assign(entries, {
      async lateXattrs(): Promise<[Buffer, Record<string, Buffer>][]> {
        if (!xattrs) return [];
        const { root, byPath } = await xattrs;
        const out: [Buffer, Record<string, Buffer>][] = [];
        const inside = root.at(-1) === 0x2f ? root.length : root.length + 1;
        for (const [host, x] of byPath) {
          if (Object.keys(x).length === 0) continue;
          const h = Buffer.from(host, 'latin1');
          // Names below the root, relative to it ('' is the root itself).
          if (h.equals(root)) out.push([Buffer.alloc(0), x]);
          else if (h.length > inside && h.subarray(0, root.length).equals(root) && h[inside - 1] === 0x2f) out.push([h.subarray(inside), x]);
        }
        return out;
      },
    });
  },
};

/** A directory being listed: its descriptor stays open while stores of its files are in flight. */
interface Frame {
  fd: number;
  host: Buffer;
  rel: Buffer;
  names: Dirent[];
  next: number;
  subdirs: { name: Buffer; host: Buffer; rel: Buffer; listed: ListedStatus }[];
  nextSubdir: number;
  /** Stores of its files not settled yet. */
  inFlight: number;
  listed: boolean;
}

/** The next entry in walk order: ready (with a descriptor to close after it), or a file whose store is in flight. */
type Item = { entry: SourceEntry; fd?: number } | { stored: Promise<ListedFile>; frame: Frame; name: Buffer; host: Buffer; rel: Buffer };

async function* walk(givenPath: string, storeListed: ListedFileStore | undefined, started: (rootPath: string) => void): AsyncGenerator<SourceEntry> {
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
    listingFailed(e, givenPath);
  }
  /** Descriptors this reader must close (directories, and files not handed over). */
  const open = new Set<number>([rootFd]);
  const close = (fd: number) => {
    if (open.delete(fd)) closeSync(fd);
  };
  /** Descriptors handed over to the consumer and not released yet. */
  let handed = 0;
  const stack: Frame[] = [];
  const queue: Item[] = [];
  /** Every store started, so none is left running when the walk ends early. */
  const stores = new Set<Promise<unknown>>();
  try {
    try {
      lstatSync(procAt(rootFd, Buffer.from('.')));
    } catch (e) {
      throw new InputError('E_NO_PROC', `cannot read ${rootPath} safely: /proc is not mounted`, {
        hint: 'aim resolves names inside the directories it holds open through /proc/self/fd; mount /proc',
        cause: e,
      });
    }
    started(rootPath);
    const inodes = new Map<string, Buffer>();

    /** The entry a listing makes (the first name of an inode with several links is the file, later ones link to it). */
    const entryFor = (rel: Buffer, st: ListedStatus): SourceEntry | undefined => {
      const type = st.type;
      if (!type) return undefined;
      const se: SourceEntry = { name: rel, type, mode: st.mode, uid: st.uid, gid: st.gid, mtime: st.mtime };
      if (st.mtimeNsec) se.mtimeNsec = st.mtimeNsec;
      if (type === 'file' && st.nlink > 1) {
        const first = inodes.get(st.key);
        if (first) return { ...se, type: 'hardlink', linkName: first };
        inodes.set(st.key, rel);
      }
      if (type === 'file') se.size = st.size;
      if (type === 'char' || type === 'block') {
        se.devMajor = st.devMajor;
        se.devMinor = st.devMinor;
      }
      return se;
    };

    /** Holes: fewer bytes allocated than a hole's worth of the size. */
    const hasHoles = (st: ListedStatus) => st.size >= MIN_HOLE && st.size - st.allocated >= MIN_HOLE;

    /** Opens the directory `d` of `parent` (O_NOFOLLOW) and starts listing it. */
    const descend = (parent: Frame, d: Frame['subdirs'][number]) => {
      faultPoint('dir-descend', d.host.toString());
      let fd: number;
      try {
        fd = openSync(procAt(parent.fd, d.name), O_DIR);
      } catch (e) {
        listingFailed(e, d.host.toString());
      }
      open.add(fd);
      if (!sameObject(d.listed, statusOf(fstatSync(fd, { bigint: true })), false)) throw sourceChanged(d.host.toString(), 'it is not the directory that was listed');
      stack.push(listDir(fd, d.host, d.rel));
    };

    const listDir = (fd: number, host: Buffer, rel: Buffer): Frame => {
      let names: Dirent[];
      try {
        names = readdirSync(procAt(fd, Buffer.alloc(0)), { encoding: 'buffer', withFileTypes: true }) as unknown as Dirent[];
      } catch (e) {
        listingFailed(e, host.toString());
      }
      names.sort((a, b) => Buffer.compare(a.name as unknown as Buffer, b.name as unknown as Buffer));
      return { fd, host, rel, names, next: 0, subdirs: [], nextSubdir: 0, inFlight: 0, listed: false };
    };

    /** A frame is done with once it is listed and no store reads from its directory. */
    const release = (f: Frame) => {
      if (f.listed && f.inFlight === 0 && f.fd !== rootFd) close(f.fd);
    };

    /** What the listing of `name` in frame `f` makes (main thread: lstat, readlink, open). */
    const listHere = (f: Frame, name: Buffer, host: Buffer, rel: Buffer): Item | undefined => {
      const label = host.toString();
      const st = listAt(f.fd, name, label);
      const se = entryFor(rel, st);
      if (!se) return undefined;
      if (se.type === 'symlink') {
        try {
          se.linkName = readlinkSync(procAt(f.fd, name), { encoding: 'buffer' });
        } catch (e) {
          listingFailed(e, label);
        }
      }
      if (se.type === 'dir') f.subdirs.push({ name, host, rel, listed: st });
      if (se.type !== 'file') {
        faultPoint('dir-listed', label);
        return { entry: se };
      }
      const fd = openListedFile(f.fd, name, label, st);
      open.add(fd);
      if (hasHoles(st)) {
        se.content = readFileWithHoles(fd, st.size, label);
        return { entry: se, fd };
      }
      se.local = handOver(fd, st.size);
      return { entry: se };
    };

    /**
     * A file's descriptor given to the consumer, who may still read it after asking for the next
     * entries (stores run in parallel) and closes it with release(). It leaves `open`, so the end
     * of the walk never closes a descriptor a store still reads.
     */
    const handOver = (fd: number, length: number): LocalContent => {
      open.delete(fd);
      handed++;
      let closed = false;
      return {
        fd,
        length,
        release: () => {
          if (closed) return;
          closed = true;
          handed--;
          closeSync(fd);
        },
      };
    };

    /** A regular file (as readdir says) listed, opened, checked and stored by the blob store. */
    const storeThere = (f: Frame, store: ListedFileStore, name: Buffer, host: Buffer, rel: Buffer): Item => {
      f.inFlight++;
      const settle = () => {
        f.inFlight--;
        release(f);
        stores.delete(job);
      };
      const job: Promise<ListedFile> = store(f.fd, name, host.toString()).then(
        (r) => {
          if (r.holesFd !== undefined) open.add(r.holesFd);
          settle();
          return r;
        },
        (e: unknown) => {
          settle();
          throw e;
        },
      );
      stores.add(job);
      job.catch(() => {}); // observed when its turn comes
      return { stored: job, frame: f, name, host, rel };
    };

    /** The entry of a stored file, in walk order (hardlinks are decided by that order). */
    const storedEntry = (item: Extract<Item, { stored: unknown }>, r: ListedFile): { entry?: SourceEntry; fd?: number } => {
      const label = item.host.toString();
      const se = entryFor(item.rel, r.status);
      if (!se) return {};
      if (se.type === 'symlink') {
        // Not a file any more when the store listed it: what it is now, read here.
        try {
          se.linkName = readlinkSync(procAt(item.frame.fd, item.name), { encoding: 'buffer' });
        } catch (e) {
          listingFailed(e, label);
        }
      }
      if (se.type === 'dir') throw sourceChanged(label, 'a file became a directory');
      if (se.type === 'file') {
        if (r.holesFd !== undefined) {
          se.content = readFileWithHoles(r.holesFd, r.status.size, label);
          return { entry: se, fd: r.holesFd };
        }
        se.blob = r.stored!;
      }
      return { entry: se };
    };

    /** The next item in walk order, or undefined at the end. */
    const step = (): Item | undefined => {
      for (;;) {
        const f = stack.at(-1);
        if (!f) return undefined;
        if (f.next < f.names.length) {
          const d = f.names[f.next++]!;
          const name = d.name as unknown as Buffer;
          const host = Buffer.concat([f.host, f.host.length === 1 && f.host[0] === 0x2f ? Buffer.alloc(0) : SLASH, name]);
          const rel = f.rel.length === 0 ? name : Buffer.concat([f.rel, SLASH, name]);
          const item = storeListed && d.isFile() ? storeThere(f, storeListed, name, host, rel) : listHere(f, name, host, rel);
          if (item) return item;
          continue;
        }
        if (f.nextSubdir < f.subdirs.length) {
          descend(f, f.subdirs[f.nextSubdir++]!);
          continue;
        }
        stack.pop();
        f.listed = true;
        f.subdirs = [];
        release(f);
      }
    };

    const top = entryFor(Buffer.alloc(0), statusOf(fstatSync(rootFd, { bigint: true })));
    if (top) yield top;
    stack.push(listDir(rootFd, Buffer.from(rootPath), Buffer.alloc(0)));
    let ended = false;
    for (;;) {
      // Always one step when nothing is queued: a path deeper than MAX_OPEN still holds a descriptor per level.
      while (!ended && (queue.length === 0 || (queue.length < LOOKAHEAD && open.size + handed < MAX_OPEN))) {
        const item = step();
        if (item) queue.push(item);
        else ended = true;
      }
      const item = queue.shift();
      if (!item) break;
      const { entry, fd } = 'stored' in item ? storedEntry(item, await item.stored) : item;
      if (!entry) continue;
      try {
        yield entry;
      } finally {
        if (fd !== undefined) close(fd);
      }
    }
  } finally {
    // Stores still running read from directories held open here: they settle first.
    await Promise.allSettled([...stores]);
    for (const item of queue) if ('entry' in item) item.entry.local?.release?.();
    for (const fd of open) closeSync(fd);
  }
}

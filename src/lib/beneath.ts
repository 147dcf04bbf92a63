/**
 * Paths beneath a root directory, resolved one component at a time without ever following a
 * symlink: what openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) gives C programs, built from what
 * Node has.
 *
 * How: Node has no openat, but on Linux "/proc/self/fd/N" is a magic link to the very file fd N
 * has open (the kernel jumps to that inode; it does not resolve a path again). Each step opens
 * one name inside the directory the previous step opened, as "/proc/self/fd/<dir>/<name>" with
 * O_PATH | O_DIRECTORY | O_NOFOLLOW: a symlink or a non-directory fails the open (ENOTDIR), so a
 * component is never followed, and what is renamed or swapped after a step was opened cannot
 * redirect the steps after it. Creating (mkdir, open O_CREAT|O_EXCL, symlink, link, rename) and
 * changing (lutimes, lchown, chmod through an O_PATH descriptor) work the same way on the last
 * name, and none of those calls follows a last component that is a symlink.
 *
 * Why not lstat each component, then open with O_NOFOLLOW and compare fstat with the lstat:
 * O_NOFOLLOW covers only the last component, so every parent is resolved by name again after it
 * was checked. Detecting the swap afterwards is too late for a write that already landed outside;
 * here there is no window to detect.
 *
 * Needs /proc (aim runs on Linux only). Works without root: O_PATH needs no read permission.
 */
import { constants, existsSync, type Stats } from 'node:fs';
import { chmod, chown, lchown, lstat, lutimes, mkdir, open, readdir, readlink, rename, rmdir, utimes, type FileHandle } from 'node:fs/promises';
import { AimError, ExitCode, InternalError, errnoCode } from './errors.js';
import { encodePath } from './path-codec.js';

/** Linux's O_PATH (the same value on x86-64 and arm64); Node does not export it. */
const O_PATH = 0o10000000;
const DIR_FLAGS = O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const NAME_FLAGS = O_PATH | constants.O_NOFOLLOW;
const NEW_FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW;
/** Directory handles a cacheDirs root keeps open at most (far below any descriptor limit). */
const MAX_CACHED_DIRS = 1024;

/** "/proc/self/fd/N", or the name `name` (raw bytes) inside the directory fd N has open. */
const fdPath = (fd: number, name?: Buffer): Buffer =>
  name === undefined ? Buffer.from(`/proc/self/fd/${fd}`) : Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), name]);

/** A path in a tree aim writes or reads was a symlink or a non-directory where aim needs a directory, or something else replaced it. */
export class UnsafePathError extends AimError {
  constructor(message: string) {
    super('E_UNSAFE_PATH', message, ExitCode.badInput, {
      hint: 'aim never writes or reads through a link in a tree it makes: another process changed the directory while aim worked in it, or it holds what aim did not create; run again into a new directory that nothing else writes to',
    });
  }
}

/** A relative path: a string (UTF-8) or raw bytes, so any name a tree holds can be given. */
export type RelPath = string | Buffer;

const SLASH = 0x2f;
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

function components(rel: RelPath): Buffer[] {
  const bytes = typeof rel === 'string' ? Buffer.from(rel, 'utf8') : rel;
  const parts: Buffer[] = [];
  if (bytes.length === 0) return parts;
  for (let start = 0; ; ) {
    const end = bytes.indexOf(SLASH, start);
    const p = bytes.subarray(start, end < 0 ? bytes.length : end);
    if (p.length === 0 || p.equals(DOT) || p.equals(DOTDOT) || p.includes(0)) throw new InternalError(`not a plain relative path: "${encodePath(bytes)}"`);
    parts.push(p);
    if (end < 0) return parts;
    start = end + 1;
  }
}
const key = (parts: readonly Buffer[]) => Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('/'), p]))).toString('latin1');

/**
 * A directory handle and every operation aim needs beneath it. Relative paths ("a/b/c", "" for
 * the root itself) name components only: no "", "." or "..". With `cacheDirs`, directories
 * opened once stay open (pinned, so later operations in them need no walk) until `close`.
 */
export class BeneathRoot {
  private readonly cache = new Map<string, FileHandle>();
  private constructor(readonly path: string, private readonly root: FileHandle, private readonly cacheDirs: boolean) {}

  /** Opens `path` (the caller's own path, followed as given) as the root of every later operation. */
  static async open(path: string, options: { cacheDirs?: boolean } = {}): Promise<BeneathRoot> {
    if (!existsSync('/proc/self/fd')) {
      throw new AimError('E_NO_PROC', '/proc is not mounted: aim needs /proc/self/fd to write trees without following links', ExitCode.internal, { hint: 'mount proc on /proc' });
    }
    const root = await open(path, O_PATH | constants.O_DIRECTORY);
    return new BeneathRoot(path, root, options.cacheDirs ?? false);
  }

  async close(): Promise<void> {
    for (const h of this.cache.values()) await h.close();
    this.cache.clear();
    await this.root.close();
  }

  private shown(parts: readonly Buffer[]): string {
    return parts.length === 0 ? this.path : `${this.path}/${parts.map((p) => encodePath(p)).join('/')}`;
  }

  /** Why a component could not be opened as a directory: a symlink, a non-directory, or missing. */
  private async refuse(e: unknown, parentFd: number, parts: readonly Buffer[]): Promise<never> {
    const code = errnoCode(e);
    if (code === 'ENOENT') throw new UnsafePathError(`${this.shown(parts)} does not exist: aim needs a directory there`);
    if (code !== 'ENOTDIR' && code !== 'ELOOP') throw e;
    // What is there now (it may have changed again since the open failed).
    const st = await lstat(fdPath(parentFd, parts[parts.length - 1])).catch(() => undefined);
    if (st?.isSymbolicLink()) throw new UnsafePathError(`${this.shown(parts)} is a symlink: aim needs a directory there`);
    if (st && !st.isDirectory()) throw new UnsafePathError(`${this.shown(parts)} is not a directory: aim needs a directory there`);
    throw new UnsafePathError(`${this.shown(parts)} was replaced while aim worked in it: aim needs a directory there`);
  }

  /**
   * The directory at `parts`, never following a component; with `create`, missing directories
   * are made with that mode (exactly, whatever the umask). The handle is released with `done`.
   */
  private async dir(parts: readonly Buffer[], create?: number): Promise<{ fd: number; done: () => Promise<void> }> {
    let cur = this.root;
    let owned = false;
    let i = 0;
    if (this.cacheDirs) {
      for (let j = parts.length; j > 0; j--) {
        const hit = this.cache.get(key(parts.slice(0, j)));
        if (hit) {
          cur = hit;
          i = j;
          break;
        }
      }
    }
    try {
      for (; i < parts.length; i++) {
        const at = fdPath(cur.fd, parts[i]);
        let next: FileHandle;
        try {
          next = await open(at, DIR_FLAGS);
        } catch (e) {
          if (errnoCode(e) !== 'ENOENT' || create === undefined) await this.refuse(e, cur.fd, parts.slice(0, i + 1));
          let made = true;
          await mkdir(at, { mode: create }).catch((m: unknown) => {
            if (errnoCode(m) !== 'EEXIST') throw m;
            made = false;
          });
          next = await open(at, DIR_FLAGS).catch((o: unknown) => this.refuse(o, cur.fd, parts.slice(0, i + 1)));
          if (made) await chmod(fdPath(next.fd), create!);
        }
        if (owned) await cur.close();
        cur = next;
        owned = true;
        // Cached handles stay open until close(), never evicted: an fd closed under an operation
        // could be reused by another file and "/proc/self/fd/N" would then name that file.
        if (this.cacheDirs && this.cache.size < MAX_CACHED_DIRS) {
          this.cache.set(key(parts.slice(0, i + 1)), cur);
          owned = false;
        }
      }
    } catch (e) {
      if (owned) await cur.close();
      throw e;
    }
    const handle = cur;
    return { fd: handle.fd, done: async () => (owned ? handle.close() : undefined) };
  }

  /** Runs `fn` with the directory's parent descriptor and the last name (`rel` must not be ""). */
  private async inParent<T>(rel: RelPath, fn: (parentFd: number, name: Buffer) => Promise<T>, create?: number): Promise<T> {
    const parts = components(rel);
    if (parts.length === 0) throw new InternalError('the root has no parent here');
    const d = await this.dir(parts.slice(0, -1), create);
    try {
      return await fn(d.fd, parts[parts.length - 1]!);
    } finally {
      await d.done();
    }
  }

  /** Runs `fn` with a "/proc/self/fd/N" path naming the directory `rel` (for tools given a working directory). */
  async withDir<T>(rel: RelPath, fn: (dirPath: string) => Promise<T>): Promise<T> {
    const d = await this.dir(components(rel));
    try {
      return await fn(fdPath(d.fd).toString());
    } finally {
      await d.done();
    }
  }

  /** Makes the directories of `rel` that are missing, each with `mode`; existing directories are kept as they are. */
  async ensureDir(rel: RelPath, mode: number): Promise<void> {
    const d = await this.dir(components(rel), mode);
    await d.done();
  }

  /** Makes a new directory (never an existing one) with exactly `mode`. */
  async mkdir(rel: RelPath, mode: number): Promise<void> {
    await this.inParent(rel, async (fd, name) => {
      await mkdir(fdPath(fd, name), { mode }).catch((e: unknown) => this.exists(e, rel));
      const h = await open(fdPath(fd, name), DIR_FLAGS).catch((e: unknown) => this.refuse(e, fd, components(rel)));
      try {
        await chmod(fdPath(h.fd), mode);
      } finally {
        await h.close();
      }
    });
  }

  private exists(e: unknown, rel: RelPath): never {
    if (errnoCode(e) === 'EEXIST') throw new UnsafePathError(`${this.shown(components(rel))} exists already: aim only creates new entries there`);
    throw e;
  }

  /** Writes a new file (never an existing one, never through a link) with exactly `mode`. */
  async writeFile(rel: RelPath, data: string | Uint8Array, mode: number): Promise<void> {
    await this.inParent(rel, async (fd, name) => {
      const h = await open(fdPath(fd, name), NEW_FILE_FLAGS, mode).catch((e: unknown) => this.exists(e, rel));
      try {
        await h.writeFile(data);
        await h.chmod(mode);
      } finally {
        await h.close();
      }
    });
  }

  /** Opens a regular file for reading; with `expect`, it must be the same file (device and inode) a listing saw. */
  async openFile(rel: RelPath, expect?: { dev: number; ino: number }): Promise<FileHandle> {
    return this.inParent(rel, async (fd, name) => {
      const h = await open(fdPath(fd, name), READ_FLAGS).catch((e: unknown) => {
        if (errnoCode(e) === 'ELOOP') throw new UnsafePathError(`${this.shown(components(rel))} is a symlink: aim reads files only`);
        throw e;
      });
      const st = await h.stat();
      if (!st.isFile() || (expect && (st.dev !== expect.dev || st.ino !== expect.ino))) {
        await h.close();
        throw new UnsafePathError(`${this.shown(components(rel))} changed while aim was reading the tree`);
      }
      return h;
    });
  }

  /** The entry itself (a symlink is not followed); undefined when it does not exist. */
  async lstat(rel: RelPath): Promise<Stats | undefined> {
    if (rel.length === 0) return this.root.stat();
    return this.inParent(rel, (fd, name) =>
      lstat(fdPath(fd, name)).catch((e: unknown) => {
        if (errnoCode(e) === 'ENOENT') return undefined;
        throw e;
      }),
    );
  }

  /** The names in a directory, as raw bytes. */
  async readdir(rel: RelPath): Promise<Buffer[]> {
    const d = await this.dir(components(rel));
    try {
      return await readdir(fdPath(d.fd), { encoding: 'buffer' });
    } finally {
      await d.done();
    }
  }

  /** A symlink's target, as raw bytes. */
  async readlink(rel: RelPath): Promise<Buffer> {
    return this.inParent(rel, (fd, name) => readlink(fdPath(fd, name), { encoding: 'buffer' }));
  }

  /** Sets the times of the entry itself (a symlink's own times, never its target's). */
  async setTimes(rel: RelPath, atime: number | Date, mtime: number | Date): Promise<void> {
    // (the root through its magic link, followed: lutimes would set the times of the /proc link itself)
    if (rel.length === 0) return utimes(fdPath(this.root.fd), atime, mtime);
    return this.inParent(rel, (fd, name) => lutimes(fdPath(fd, name), atime, mtime));
  }

  /** Sets owner and group of the entry itself. */
  async chown(rel: RelPath, uid: number, gid: number): Promise<void> {
    if (rel.length === 0) return chown(fdPath(this.root.fd), uid, gid);
    return this.inParent(rel, (fd, name) => lchown(fdPath(fd, name), uid, gid));
  }

  /** Sets the mode of a file or directory; a symlink there is refused (Linux has no lchmod, and chmod would follow it). */
  async chmod(rel: RelPath, mode: number): Promise<void> {
    if (rel.length === 0) return chmod(fdPath(this.root.fd), mode);
    return this.inParent(rel, async (fd, name) => {
      const h = await open(fdPath(fd, name), NAME_FLAGS);
      try {
        if ((await h.stat()).isSymbolicLink()) throw new UnsafePathError(`${this.shown(components(rel))} is a symlink: aim does not change modes through links`);
        await chmod(fdPath(h.fd), mode);
      } finally {
        await h.close();
      }
    });
  }

  /** Moves an entry to a new name beneath the same root (the last component of either is never followed). */
  async rename(from: RelPath, to: RelPath): Promise<void> {
    await this.inParent(from, (fromFd, fromName) => this.inParent(to, (toFd, toName) => rename(fdPath(fromFd, fromName), fdPath(toFd, toName))));
  }

  async rmdir(rel: RelPath): Promise<void> {
    await this.inParent(rel, (fd, name) => rmdir(fdPath(fd, name)));
  }
}

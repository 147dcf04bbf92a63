import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, type BigIntStats } from 'node:fs';
import { InputError, PermissionError, errnoCode } from './errors.js';
import { faultPoint } from './fault.js';

/**
 * Reading a tree that may change under our feet without ever following what it contains: every
 * name is resolved by the kernel inside a directory held open (as /proc/self/fd/<dir>/<name>,
 * since Node has no openat), files are opened O_NOFOLLOW, and what was opened must be the object
 * that was listed (device, inode, type, and size for files), else E_SOURCE_CHANGED. The directory
 * reader uses this on the main thread and the blob writer threads for the files they store.
 */

export type ListedType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

/** What a listing says of an object, as plain numbers (it crosses threads). */
export interface ListedStatus {
  type: ListedType | undefined;
  /** Permission bits incl. setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  /** "dev:ino", for hardlinks and identity checks. */
  key: string;
  /** Whole seconds (floor) and nanoseconds of the modification time. */
  mtime: number;
  mtimeNsec: number;
  /** Bytes allocated on disk (blocks × 512). */
  allocated: number;
  devMajor: number;
  devMinor: number;
}

function typeOf(mode: number): ListedType | undefined {
  switch (mode & fsc.S_IFMT) {
    case fsc.S_IFREG:
      return 'file';
    case fsc.S_IFDIR:
      return 'dir';
    case fsc.S_IFLNK:
      return 'symlink';
    case fsc.S_IFCHR:
      return 'char';
    case fsc.S_IFBLK:
      return 'block';
    case fsc.S_IFIFO:
      return 'fifo';
    case fsc.S_IFSOCK:
      return 'socket';
    default:
      return undefined;
  }
}

export function statusOf(st: BigIntStats): ListedStatus {
  const mode = Number(st.mode);
  const ns = st.mtimeNs;
  const sec = ns / 1_000_000_000n - (ns < 0n && ns % 1_000_000_000n !== 0n ? 1n : 0n);
  return {
    type: typeOf(mode),
    mode: mode & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    nlink: Number(st.nlink),
    key: `${st.dev}:${st.ino}`,
    mtime: Number(sec),
    mtimeNsec: Number(ns - sec * 1_000_000_000n),
    allocated: Number(st.blocks) * 512,
    devMajor: Number((st.rdev >> 8n) & 0xfffn) | Number((st.rdev >> 32n) & ~0xfffn),
    devMinor: Number(st.rdev & 0xffn) | Number((st.rdev >> 12n) & ~0xffn),
  };
}

/** `name` inside the directory open as `dirFd`, resolved by the kernel from that directory (an openat). */
export function procAt(dirFd: number, name: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`/proc/self/fd/${dirFd}/`), name]);
}

const changedHint = 'import a tree that nothing changes meanwhile (a snapshot or a stopped system)';

export function sourceChanged(label: string, what: string, cause?: unknown): InputError {
  return new InputError('E_SOURCE_CHANGED', `${label} changed during import (${what})`, { hint: changedHint, cause });
}

/** An error of a call on `label`: permission problems and changes under our feet say so. */
export function listingFailed(e: unknown, label: string): never {
  const code = errnoCode(e);
  if (code === 'EACCES' || code === 'EPERM') {
    throw new PermissionError(`cannot read ${label}: permission denied`, {
      hint: 'import system trees as root so every file, owner and capability can be read',
      cause: e,
    });
  }
  // Gone, replaced by a symlink (ELOOP with O_NOFOLLOW) or by something else (ENOTDIR, EINVAL).
  if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR' || code === 'EINVAL') throw sourceChanged(label, code, e);
  throw e;
}

/** The object behind a descriptor is the one listed: same device, inode, type (and size for files). */
export function sameObject(listed: ListedStatus, opened: ListedStatus, checkSize: boolean): boolean {
  return listed.key === opened.key && listed.type === opened.type && (!checkSize || listed.size === opened.size);
}

/** Lists `name` in the directory open as `dirFd` without following it (lstat). */
export function listAt(dirFd: number, name: Buffer, label: string): ListedStatus {
  try {
    return statusOf(lstatSync(procAt(dirFd, name), { bigint: true }));
  } catch (e) {
    listingFailed(e, label);
  }
}

// O_NONBLOCK: a FIFO put where a file was listed must not block the open (fstat then tells).
const O_FILE = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;

/**
 * Opens the regular file `listed` says `name` is: O_NOFOLLOW from its directory, and it must be
 * what was listed (E_SOURCE_CHANGED otherwise). The pause point "dir-listed" lies between the
 * listing and the open, for race tests. The caller closes the descriptor.
 */
export function openListedFile(dirFd: number, name: Buffer, label: string, listed: ListedStatus): number {
  faultPoint('dir-listed', label);
  let fd: number;
  try {
    fd = openSync(procAt(dirFd, name), O_FILE);
  } catch (e) {
    listingFailed(e, label);
  }
  try {
    if (!sameObject(listed, statusOf(fstatSync(fd, { bigint: true })), true)) throw sourceChanged(label, 'it is not the file that was listed');
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

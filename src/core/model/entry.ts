import type { DataExtent } from './sparse.js';

/**
 * One filesystem object of an image. Paths are absolute inside the image ("/", "/etc/passwd"),
 * in aim's byte-exact string form (see lib/path-codec.ts).
 */
export const ENTRY_TYPES = ['file', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo'] as const;
export type EntryType = (typeof ENTRY_TYPES)[number];

export interface Entry {
  path: string;
  type: EntryType;
  /** Permission bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000); no type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time, whole seconds since the epoch (may be negative). */
  mtime: number;
  /** Nanoseconds part of the modification time, 0..999999999. */
  mtimeNsec?: number;
  /** Regular files: content length in bytes. */
  size?: number;
  /** Regular files: sha256 (hex) of the content, the blob id. */
  blob?: string;
  /**
   * Regular files with holes: the data extents [offset, length] (see model/sparse.ts). The blob
   * then holds only these bytes, in order; `size` stays the apparent size.
   */
  sparse?: DataExtent[];
  /** Symlinks: the link text. Hardlinks: the path of the file entry they share an inode with. */
  target?: string;
  /** Character and block devices. */
  devMajor?: number;
  devMinor?: number;
  /** Extended attributes, name to base64 value (security.capability, user.*, trusted.*). */
  xattrs?: Record<string, string>;
}

export const MODE_BITS = 0o7777;

/** Splits "/a/b/c" into ["a","b","c"]; "/" into []. */
export function pathComponents(path: string): string[] {
  return path.split('/').filter((c) => c.length > 0);
}

export function parentPath(path: string): string {
  if (path === '/') return '/';
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function joinImagePath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

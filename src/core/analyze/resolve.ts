import type { Entry } from '../model/entry.js';

/**
 * Path resolution inside an image, the way the kernel would do it with the image as the root
 * directory: symlinks are followed through the image's own entries (an absolute target starts
 * again at the image root, never the host's), ".." stops at the root, and a symlinked directory
 * anywhere in the path (/lib → usr/lib) is followed.
 */

export const MAX_SYMLINK_HOPS = 40;

export interface ResolveOptions {
  /** Follow a symlink in the last component too (stat), or stop at it (lstat). Default true. */
  followFinal?: boolean;
  /** Symlinks followed before giving up (ELOOP). Default 40, as Linux. */
  maxHops?: number;
}

/**
 * The canonical path of `path` inside the image, or undefined when a component is missing, a
 * non-directory is used as a directory, or the symlink chain is too long or loops.
 */
export function resolveImagePath(entries: ReadonlyMap<string, Entry>, path: string, options: ResolveOptions = {}): string | undefined {
  const followFinal = options.followFinal ?? true;
  const maxHops = options.maxHops ?? MAX_SYMLINK_HOPS;
  let hops = 0;
  const resolved: string[] = [];
  // Components still to walk, last one at the end of the array (consumed with pop()).
  const pending = splitReversed(path);
  while (pending.length > 0) {
    const c = pending.pop()!;
    if (c === '.') continue;
    if (c === '..') {
      resolved.pop();
      continue;
    }
    const current = resolved.length === 0 ? `/${c}` : `/${resolved.join('/')}/${c}`;
    const e = entries.get(current);
    if (!e) return undefined;
    const last = pending.length === 0;
    if (e.type === 'symlink' && (!last || followFinal)) {
      if (++hops > maxHops) return undefined;
      const target = e.target ?? '';
      if (target === '') return undefined;
      if (target.startsWith('/')) resolved.length = 0;
      pending.push(...splitReversed(target));
      continue;
    }
    if (!last && e.type !== 'dir') return undefined;
    resolved.push(c);
  }
  return resolved.length === 0 ? '/' : `/${resolved.join('/')}`;
}

function splitReversed(p: string): string[] {
  const parts = p.split('/').filter((c) => c !== '');
  parts.reverse();
  return parts;
}

/** The entry at `path` after following symlinks (and a hardlink to the entry holding the content). */
export function lookupImagePath(entries: ReadonlyMap<string, Entry>, path: string): Entry | undefined {
  const p = resolveImagePath(entries, path);
  if (p === undefined) return undefined;
  const e = entries.get(p);
  if (e?.type === 'hardlink' && e.target !== undefined) return entries.get(e.target) ?? e;
  return e;
}

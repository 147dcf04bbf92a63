import { MAX_SYMLINK_HOPS } from '../analyze/resolve.js';
import { parentPath } from '../model/entry.js';
import type { Glob } from './glob.js';
import { matchesGlob } from './glob.js';
import type { ImageIndex } from './image-index.js';
import { MAX_REASONS_PER_KIND, MOUNT_POINTS } from './types.js';
import type { DroppedPath, Reason } from './types.js';

type Role = 'dir' | 'symlink' | 'final';

interface Walk {
  visited: { path: string; role: Role }[];
  /** Canonical path of the final entry, when every component exists. */
  final?: string;
}

export interface KeepOptions {
  /** Drop globs to honour (soft reasons only); their canonical variants included. */
  drop?: Glob[];
}

/**
 * The growing set of kept paths with their reasons. Keeping a path keeps, component by
 * component, every directory and symlink the kernel walks to reach it (through symlink targets
 * too), the final target of a symlink chain, and the file a hardlink shares its inode with.
 */
export class KeepSet {
  readonly kept = new Map<string, Reason[]>();
  readonly moreReasons = new Map<string, number>();
  readonly dropped = new Map<string, DroppedPath>();
  readonly missing = new Map<string, Reason[]>();
  /** Requested paths already walked: the directories and links on their way are recorded once. */
  private readonly walked = new Set<string>();

  constructor(
    private readonly image: ImageIndex,
    /** Called once for each regular file newly kept (to inspect it for ELF facts and "#!"). */
    private readonly onNewFile: (path: string) => void,
  ) {}

  has(path: string): boolean {
    return this.kept.has(path);
  }

  /**
   * Keeps `path` for `reason`; returns the canonical path of what it leads to, or undefined when it
   * is missing, dropped, or content of a run-time mount point.
   */
  keep(path: string, reason: Reason, options: KeepOptions = {}): string | undefined {
    const image = this.image;
    const named = image.resolveNoFollow(path);
    const final = image.resolve(path);
    const key = named ?? path;

    if (options.drop && options.drop.length > 0) {
      const glob = this.dropGlobFor(options.drop, named, final);
      if (glob !== undefined) {
        this.recordDropped(key, glob.pattern, reason);
        return undefined;
      }
    }

    const mount = mountPointAbove(final ?? named ?? this.canonicalGuess(path));
    if (!this.walked.has(path)) {
      this.walked.add(path);
      for (const v of this.walk(path, 0, true).visited) {
        // `of` is the path as asked for ("/lib/x86_64-linux-gnu/libc.so.6"): the way ld.so or the
        // workload reaches the entry, which is what makes these directories and links necessary.
        if (v.role === 'dir') this.add(v.path, { kind: 'parent', of: path });
        else if (v.role === 'symlink' && v.path !== named) this.add(v.path, { kind: 'symlink', of: path });
      }
    }
    if (mount !== undefined) {
      this.recordDropped(key, `mount point ${mount}`, reason);
      return undefined;
    }
    if (named === undefined || final === undefined) {
      const list = this.missing.get(path);
      if (!list) this.missing.set(path, [reason]);
      else if (!list.some((r) => sameReason(r, reason))) list.push(reason);
      // A dangling symlink is still an entry the workload looked at: keep it.
      if (named !== undefined) this.add(named, reason);
      return undefined;
    }
    if (named !== final) this.add(named, reason);
    const isNew = this.add(final, reason);
    const e = image.get(final);
    if (e?.type === 'hardlink' && e.target !== undefined) this.keep(e.target, { kind: 'hardlink', of: final });
    else if (isNew && e?.type === 'file') this.onNewFile(final);
    return final;
  }

  /** Adds a reason; true when the path was not kept before. */
  add(path: string, reason: Reason): boolean {
    const list = this.kept.get(path);
    if (!list) {
      this.kept.set(path, [reason]);
      return true;
    }
    let sameKind = 0;
    for (const r of list) {
      if (r.kind !== reason.kind) continue;
      if (sameReason(r, reason)) return false;
      sameKind++;
    }
    if (sameKind >= MAX_REASONS_PER_KIND) this.moreReasons.set(path, (this.moreReasons.get(path) ?? 0) + 1);
    else list.push(reason);
    return false;
  }

  private recordDropped(path: string, by: string, reason: Reason): void {
    const d = this.dropped.get(path);
    if (!d) this.dropped.set(path, { by, reasons: [reason] });
    else if (!d.reasons.some((r) => sameReason(r, reason)) && d.reasons.length < MAX_REASONS_PER_KIND) d.reasons.push(reason);
  }

  private dropGlobFor(drop: Glob[], named: string | undefined, final: string | undefined): Glob | undefined {
    for (const g of drop) {
      for (const p of [named, final]) {
        // What is already kept stays kept: a drop glob cannot take back what the seeds needed.
        if (p === undefined || this.kept.has(p) || !matchesGlob(g, p)) continue;
        if (g.dirOnly && this.image.get(p)?.type !== 'dir') continue;
        return g;
      }
    }
    return undefined;
  }

  /** Where a missing path would be: its directory resolved, the last name appended. */
  private canonicalGuess(path: string): string {
    const dir = this.image.resolve(parentPath(path));
    const name = path.slice(path.lastIndexOf('/') + 1);
    if (dir === undefined) return path;
    return dir === '/' ? `/${name}` : `${dir}/${name}`;
  }

  /**
   * The entries the kernel visits to reach `path`: each directory, each symlink (and, through
   * recursion, each component of its target), and the final entry. Stops at the first missing
   * component. `outer` is false inside a symlink target whose last component is still a directory
   * of the outer path.
   */
  private walk(path: string, depth: number, outer: boolean): Walk {
    const image = this.image;
    const visited: Walk['visited'] = [];
    if (depth === 0 && image.get('/')?.type === 'dir') visited.push({ path: '/', role: 'dir' });
    const comps = path.split('/').filter((c) => c !== '');
    let prefix = '';
    for (let i = 0; i < comps.length; i++) {
      const c = comps[i]!;
      prefix += `/${c}`;
      // "." and ".." only lead back to directories already on the way.
      if (c === '.' || c === '..') continue;
      const at = image.resolveNoFollow(prefix);
      const e = at === undefined ? undefined : image.get(at);
      if (at === undefined || !e) return { visited };
      const last = i === comps.length - 1;
      if (e.type === 'symlink') {
        visited.push({ path: at, role: 'symlink' });
        if (depth >= MAX_SYMLINK_HOPS || !e.target) return { visited };
        const abs = e.target.startsWith('/') ? e.target : `${parentPath(at)}/${e.target}`;
        const inner = this.walk(abs, depth + 1, outer && last);
        visited.push(...inner.visited);
        if (inner.final === undefined) return { visited };
      } else if (!last) {
        if (e.type !== 'dir') return { visited };
        visited.push({ path: at, role: 'dir' });
      } else if (!outer) {
        // The end of a symlink target that the outer path continues through: a directory on the way.
        visited.push({ path: at, role: 'dir' });
      }
    }
    const final = image.resolve(path);
    return final === undefined ? { visited } : { visited, final };
  }
}

/** The run-time mount point strictly above `path`, if any. */
export function mountPointAbove(path: string): string | undefined {
  for (const m of MOUNT_POINTS) if (path.startsWith(`${m}/`)) return m;
  return undefined;
}

/** Same kind and same fields. */
export function sameReason(a: Reason, b: Reason): boolean {
  if (a.kind !== b.kind) return false;
  const ka = Object.keys(a) as (keyof Reason)[];
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

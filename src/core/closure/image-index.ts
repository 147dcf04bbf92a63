import { lookupImagePath, resolveImagePath } from '../analyze/resolve.js';
import type { Entry } from '../model/entry.js';
import { compileGlob, matchesGlob, rebaseGlob } from './glob.js';
import type { Glob } from './glob.js';

/**
 * Read access to the gold image for the closure: memoised path resolution, paths under a
 * directory (a sorted path list, so a subtree is one binary search), and file contents.
 */
export class ImageIndex {
  private readonly sorted: string[];
  private readonly resolved = new Map<string, string | undefined>();
  private readonly resolvedNoFollow = new Map<string, string | undefined>();
  private readonly texts = new Map<string, Promise<Buffer | undefined>>();

  constructor(
    readonly entries: ReadonlyMap<string, Entry>,
    private readonly readBlob: (blob: string) => Promise<Buffer>,
    private readonly onReadError: (path: string, err: unknown) => void,
  ) {
    this.sorted = [...entries.keys()].sort();
  }

  get(path: string): Entry | undefined {
    return this.entries.get(path);
  }

  /** Canonical path following every symlink (stat), memoised. */
  resolve(path: string): string | undefined {
    if (this.resolved.has(path)) return this.resolved.get(path);
    const r = resolveImagePath(this.entries, path);
    this.resolved.set(path, r);
    return r;
  }

  /** Path of the entry `path` names, its directories resolved but not a final symlink (lstat). */
  resolveNoFollow(path: string): string | undefined {
    if (this.resolvedNoFollow.has(path)) return this.resolvedNoFollow.get(path);
    const r = resolveImagePath(this.entries, path, { followFinal: false });
    this.resolvedNoFollow.set(path, r);
    return r;
  }

  /** The entry holding `path`'s content (symlinks and hardlinks followed). */
  lookup(path: string): Entry | undefined {
    const canonical = this.resolve(path);
    if (canonical === undefined) return undefined;
    const e = this.entries.get(canonical);
    return e?.type === 'hardlink' ? lookupImagePath(this.entries, canonical) : e;
  }

  /** Paths strictly below the directory `dir` (which must be canonical), in sorted order. */
  below(dir: string): string[] {
    const prefix = dir === '/' ? '/' : `${dir}/`;
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sorted[mid]! < prefix) lo = mid + 1;
      else hi = mid;
    }
    const out: string[] = [];
    for (let i = lo; i < this.sorted.length && this.sorted[i]!.startsWith(prefix); i++) {
      if (this.sorted[i] !== '/') out.push(this.sorted[i]!);
    }
    return out;
  }

  /** Direct children of the canonical directory `dir`. */
  children(dir: string): string[] {
    const depth = dir === '/' ? 1 : dir.split('/').length;
    return this.below(dir).filter((p) => p.split('/').length === depth + 1);
  }

  /**
   * The glob with its literal directory canonicalised when that goes through a symlinked
   * directory, so "/lib/python3*\/" finds entries stored under /usr/lib.
   */
  canonicalGlobs(glob: Glob): Glob[] {
    const dir = this.resolve(glob.literalDir);
    if (dir === undefined || dir === glob.literalDir) return [glob];
    return [glob, rebaseGlob(glob, dir)];
  }

  /** Entry paths matching the glob (directories only when the glob ends in "/"), sorted. */
  expandGlob(pattern: string | Glob): string[] {
    const glob = typeof pattern === 'string' ? compileGlob(pattern) : pattern;
    const out = new Set<string>();
    for (const g of this.canonicalGlobs(glob)) {
      const dir = this.resolve(g.literalDir);
      if (dir === undefined || dir !== g.literalDir) continue;
      const candidates = g.rest.length === 0 ? [dir] : [dir, ...this.below(dir)];
      for (const p of candidates) {
        if (!matchesGlob(g, p)) continue;
        if (g.dirOnly && this.entries.get(p)?.type !== 'dir' && this.lookup(p)?.type !== 'dir') continue;
        out.add(p);
      }
    }
    return [...out].sort();
  }

  /** Content of the regular file at `path` (following links), or undefined when absent or unreadable. */
  readFile(path: string): Promise<Buffer | undefined> {
    const e = this.lookup(path);
    // Files with holes (model/sparse.ts) are never scripts or configuration: not read whole.
    if (!e || e.type !== 'file' || e.sparse) return Promise.resolve(undefined);
    if (e.blob === undefined) return Promise.resolve((e.size ?? 0) === 0 ? Buffer.alloc(0) : undefined);
    const blob = e.blob;
    let pending = this.texts.get(blob);
    if (!pending) {
      pending = this.readBlob(blob).then(
        (b) => b,
        (err: unknown) => {
          this.onReadError(path, err);
          return undefined;
        },
      );
      this.texts.set(blob, pending);
    }
    return pending;
  }

  /** The first `length` bytes of the file at `path`, not memoised (script heads of big trees). */
  async readHead(path: string, length: number): Promise<Buffer | undefined> {
    const e = this.lookup(path);
    if (!e || e.type !== 'file' || e.sparse) return undefined;
    if (e.blob === undefined) return (e.size ?? 0) === 0 ? Buffer.alloc(0) : undefined;
    const cached = this.texts.get(e.blob);
    try {
      const b = cached ? await cached : await this.readBlob(e.blob);
      return b?.subarray(0, length);
    } catch (err) {
      this.onReadError(path, err);
      return undefined;
    }
  }

  async readText(path: string): Promise<string | undefined> {
    return (await this.readFile(path))?.toString('utf8');
  }
}

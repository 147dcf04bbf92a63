import type { Glob } from './glob.js';
import type { ImageIndex } from './image-index.js';
import type { KeepSet } from './keep-set.js';
import type { LibrarySearch } from './library-search.js';
import type { ClosureInput, Reason } from './types.js';

/** State shared by the closure passes. */
export interface ClosureContext {
  input: ClosureInput;
  image: ImageIndex;
  keep: KeepSet;
  search: LibrarySearch;
  /** Regular files kept but not yet inspected for ELF facts and "#!" lines. */
  queue: string[];
  /** Canonical ELF path → DT_RPATH directories inherited from the objects that loaded it. */
  inherited: Map<string, string[]>;
  /**
   * Drop globs in force: undefined while following the seeds (what they need is never dropped),
   * set for rules and essentials.
   */
  drop?: Glob[];
  warn(message: string, path?: string): void;
}

/** Keeps a path under the current phase's drop rules. */
export function keepPath(ctx: ClosureContext, path: string, reason: Reason): string | undefined {
  return ctx.keep.keep(path, reason, ctx.drop ? { drop: ctx.drop } : {});
}

/** True when the path (or where it leads) was removed by a drop rule rather than being absent. */
export function wasDropped(ctx: ClosureContext, path: string): boolean {
  const named = ctx.image.resolveNoFollow(path);
  return ctx.keep.dropped.has(named ?? path);
}

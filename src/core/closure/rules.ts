import { keepPath } from './context.js';
import type { ClosureContext } from './context.js';
import { compileGlob } from './glob.js';

/**
 * Package-aware rules: whole packages, keep globs and interpreter module trees. They run after
 * the seeds, with the drop globs in force.
 */
export function applyRules(ctx: ClosureContext): void {
  const rules = ctx.input.rules ?? {};
  if (rules.keepPackages && rules.keepPackages.length > 0) keepPackages(ctx, rules.keepPackages);
  for (const pattern of rules.keepGlobs ?? []) {
    const paths = ctx.image.expandGlob(pattern);
    if (paths.length === 0) ctx.warn(`keep glob ${pattern} matches nothing in the image`);
    for (const p of paths) keepPath(ctx, p, { kind: 'glob', pattern });
  }
  for (const pattern of rules.keepModuleTrees ?? []) keepModuleTree(ctx, pattern);
}

function keepPackages(ctx: ClosureContext, names: string[]): void {
  const files = ctx.input.packageFiles ?? invertOwners(ctx.input.owners);
  if (!files) {
    ctx.warn(`keepPackages (${names.join(', ')}) ignored: the image has no package database`);
    return;
  }
  for (const name of names) {
    // "libc6" names every architecture's package ("libc6:amd64", "libc6:i386"); an id names one.
    const ids = [...files.keys()].filter((id) => id === name || id.split(':')[0] === name);
    if (ids.length === 0) {
      ctx.warn(`keepPackages: package ${name} is not installed in the image`);
      continue;
    }
    for (const id of ids) {
      for (const p of files.get(id) ?? []) {
        // Package lists include paths the image no longer has (path-exclude, hygiene): skip them.
        if (ctx.image.resolveNoFollow(p) === undefined) continue;
        keepPath(ctx, p, { kind: 'package', name: id });
      }
    }
  }
}

function invertOwners(owners: ReadonlyMap<string, string[]> | undefined): Map<string, string[]> | undefined {
  if (!owners) return undefined;
  const out = new Map<string, string[]>();
  for (const [path, ids] of owners) {
    for (const id of ids) {
      const list = out.get(id);
      if (list) list.push(path);
      else out.set(id, [path]);
    }
  }
  return out;
}

/** Every entry under each directory the pattern matches ("/usr/lib/python3*\/"). */
function keepModuleTree(ctx: ClosureContext, pattern: string): void {
  const glob = compileGlob(pattern.endsWith('/') ? pattern : `${pattern}/`);
  const roots = ctx.image.expandGlob(glob);
  if (roots.length === 0) ctx.warn(`module tree ${pattern} matches no directory in the image`);
  const done: string[] = [];
  for (const root of roots) {
    const canonical = ctx.image.resolve(root);
    if (canonical === undefined || done.some((d) => canonical === d || canonical.startsWith(`${d}/`))) continue;
    done.push(canonical);
    const reason = { kind: 'module-tree', pattern, root } as const;
    keepPath(ctx, root, reason);
    for (const p of ctx.image.below(canonical)) keepPath(ctx, p, reason);
  }
}

import { silentReporter } from '../../lib/reporter.js';
import { normaliseListedPath } from '../analyze/package.js';
import type { ClosureContext } from './context.js';
import { applyEssentials } from './essentials.js';
import { compileGlob, matchesGlob } from './glob.js';
import { ImageIndex } from './image-index.js';
import { drain } from './inspect.js';
import { KeepSet } from './keep-set.js';
import { hasMuslLoader, readLdSoConf, readMuslPaths } from './ld-config.js';
import { LibrarySearch } from './library-search.js';
import { applyRules } from './rules.js';
import { keepRuntimeState } from './runtime-state.js';
import { MOUNT_POINTS } from './types.js';
import type { Closure, ClosureInput } from './types.js';

const STAGE = 'closure';
/** Essentials can keep libraries that bring more essentials (an NSS module needing libssl); bounded. */
const MAX_ESSENTIAL_ROUNDS = 4;

/**
 * The static closure of an image: everything the seeds (traced paths and entrypoints) need to
 * run, by the rules the kernel, ld.so and libc follow, plus what the package rules ask for.
 *
 * Passes, each run to a fixpoint:
 *  1. seeds, the run-time mount points, the runtime state the workload needs (tmpfiles.d files,
 *     planned directories, the accounts it switches to) and what their execution needs
 *     (PT_INTERP, DT_NEEDED searched as ld.so does, "#!" interpreters, every directory and
 *     symlink on the way); no drop glob applies here;
 *  2. rules: whole packages, keep globs, interpreter module trees;
 *  3. essentials: ld.so.cache, NSS configuration and modules, gconv, CA certificates, time zone
 *     data, passwd/group of the workload's users.
 * Passes 2 and 3 honour the drop globs.
 *
 * Pure planning: reads the image through `input`, writes nothing.
 */
export async function computeClosure(input: ClosureInput): Promise<Closure> {
  const reporter = input.reporter ?? silentReporter;
  reporter.emit({ type: 'stage', stage: STAGE, status: 'start', detail: `${input.seeds.length} seeds` });
  const warnings: string[] = [];
  const seen = new Set<string>();
  const warn = (message: string, path?: string) => {
    if (seen.has(message)) return;
    seen.add(message);
    warnings.push(message);
    reporter.emit({ type: 'warn', code: 'W_CLOSURE', message, ...(path === undefined ? {} : { path }) });
  };
  const image = new ImageIndex(input.entries, input.readBlob, (path, err) => warn(`cannot read ${path}: ${(err as Error).message}`, path));
  const queue: string[] = [];
  const confDirs = [...(await readLdSoConf(image, warn)), ...(await readMuslPaths(image))];
  const ctx: ClosureContext = {
    input,
    image,
    keep: new KeepSet(image, (p) => queue.push(p)),
    search: new LibrarySearch(image, input.elf, confDirs, hasMuslLoader(image)),
    queue,
    inherited: new Map(),
    warn,
  };
  const create: string[] = [];

  for (const seed of input.seeds) {
    const path = normaliseListedPath(seed.path);
    const kept = ctx.keep.keep(path, seed.reason);
    if (kept === undefined && seed.reason.kind === 'entrypoint') warn(`entrypoint ${path} is not in the image`, path);
  }
  for (const m of MOUNT_POINTS) {
    if (image.resolveNoFollow(m) === undefined) create.push(m);
    else ctx.keep.keep(m, { kind: 'mountpoint' });
  }
  await keepPreload(ctx);
  const runtime = await keepRuntimeState(ctx);
  await drain(ctx);
  const required = new Set(ctx.keep.kept.keys());

  const dropGlobs = input.rules?.dropGlobs ?? [];
  const compiled = dropGlobs.map((p) => image.canonicalGlobs(compileGlob(p)));
  ctx.drop = compiled.flat();
  for (const variants of compiled) {
    const hits = [...required].filter((p) => variants.some((g) => matchesGlob(g, p)));
    if (hits.length === 0) continue;
    const shown = `${hits.slice(0, 3).join(', ')}${hits.length > 3 ? ', …' : ''}`;
    warn(`drop glob ${variants[0]!.pattern} matches ${hits.length} path(s) the seeds need (${shown}); they are kept`);
  }

  applyRules(ctx);
  await drain(ctx);

  for (let round = 0; round < MAX_ESSENTIAL_ROUNDS; round++) {
    const before = ctx.keep.kept.size;
    await applyEssentials(ctx);
    await drain(ctx);
    if (ctx.keep.kept.size === before) break;
  }

  reporter.emit({ type: 'stage', stage: STAGE, status: 'done', detail: `${ctx.keep.kept.size} kept, ${ctx.keep.dropped.size} dropped` });
  return {
    kept: ctx.keep.kept,
    moreReasons: ctx.keep.moreReasons,
    dropped: ctx.keep.dropped,
    missing: ctx.keep.missing,
    create,
    dropGlobs: [...dropGlobs],
    ...(runtime ? { runtime } : {}),
    warnings,
  };
}

/**
 * /etc/ld.so.preload: ld.so loads the libraries it lists into every dynamically linked program.
 * Rare, but when present it matters as much as DT_NEEDED.
 */
async function keepPreload(ctx: ClosureContext): Promise<void> {
  const file = '/etc/ld.so.preload';
  if (ctx.image.resolve(file) === undefined) return;
  await drain(ctx);
  const dynamic = [...ctx.keep.kept.keys()].find((p) => {
    const e = ctx.image.get(p);
    return e?.type === 'file' && e.blob !== undefined && ctx.input.elf(e.blob)?.interp !== undefined;
  });
  if (dynamic === undefined) return;
  ctx.keep.keep(file, { kind: 'config', file, of: dynamic });
  const text = (await ctx.image.readText(file)) ?? '';
  for (const lib of text.split(/[\s:]+/).filter((s) => s.startsWith('/'))) {
    if (ctx.keep.keep(lib, { kind: 'preload', of: file }) === undefined) ctx.warn(`${file} lists ${lib}, which is not in the image`, file);
  }
}

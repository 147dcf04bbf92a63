import { keepPath, wasDropped } from './context.js';
import type { ClosureContext } from './context.js';
import { envCommand, isEnv, parseShebang, SHEBANG_BYTES } from './shebang.js';
import { DEFAULT_PATH } from './types.js';

/**
 * Inspects kept files until none is left: ELF files add their PT_INTERP and DT_NEEDED
 * libraries, executable scripts their "#!" interpreter; every path added is itself inspected.
 */
export async function drain(ctx: ClosureContext): Promise<void> {
  let i = 0;
  while (i < ctx.queue.length) {
    const path = ctx.queue[i++]!;
    const e = ctx.image.get(path);
    if (!e || e.type !== 'file') continue;
    const facts = e.blob === undefined ? undefined : ctx.input.elf(e.blob);
    if (facts) inspectElf(ctx, path);
    else if ((e.mode & 0o111) !== 0 && (e.size ?? 1) >= 3) await inspectScript(ctx, path);
  }
  ctx.queue.length = 0;
}

function inspectElf(ctx: ClosureContext, path: string): void {
  const e = ctx.image.get(path)!;
  const facts = ctx.input.elf(e.blob!)!;
  if (facts.interp !== undefined) {
    // The kernel maps the interpreter during execve; a trace never shows it being opened.
    const interp = keepPath(ctx, facts.interp, { kind: 'interp', of: path });
    if (interp === undefined && !wasDropped(ctx, facts.interp)) ctx.warn(`${path}: PT_INTERP ${facts.interp} is not in the image`, path);
  }
  if (facts.needed.length === 0) return;
  const obj = { path, facts, inheritedRpath: ctx.inherited.get(path) ?? [] };
  const inheritedByDeps = [...ctx.search.ownRpath(obj), ...obj.inheritedRpath];
  for (const soname of facts.needed) {
    const found = ctx.search.find(soname, obj);
    if (!found) {
      const other = ctx.search.mismatches(soname, obj);
      const hint = other.length > 0 ? ` (only ${other.join(', ')}, not ELF ${facts.class}-bit ${facts.machine})` : '';
      ctx.warn(`${path}: DT_NEEDED ${soname} not found in the image's library path${hint}`, path);
      continue;
    }
    for (const p of found.paths) {
      const lib = keepPath(ctx, p, { kind: 'needed', of: path, soname });
      if (lib !== undefined && !ctx.inherited.has(lib)) ctx.inherited.set(lib, inheritedByDeps);
    }
  }
}

async function inspectScript(ctx: ClosureContext, path: string): Promise<void> {
  const head = await ctx.image.readHead(path, SHEBANG_BYTES);
  const sb = head && parseShebang(head);
  if (!sb) return;
  const reason = { kind: 'shebang', of: path } as const;
  if (!sb.interpreter.startsWith('/')) {
    // The kernel resolves a relative interpreter against the working directory, unknown here.
    ctx.warn(`${path}: "#!" interpreter ${sb.interpreter} is relative; not followed`, path);
    return;
  }
  const interp = sb.interpreter;
  if (keepPath(ctx, interp, reason) === undefined) {
    if (!wasDropped(ctx, interp)) ctx.warn(`${path}: "#!" interpreter ${sb.interpreter} is not in the image`, path);
    return;
  }
  if (!isEnv(sb.interpreter)) return;
  const cmd = envCommand(sb.arg);
  if (cmd === undefined) return;
  if (cmd.includes('/')) {
    if (keepPath(ctx, cmd, reason) === undefined && !wasDropped(ctx, cmd)) ctx.warn(`${path}: "#!" command ${cmd} is not in the image`, path);
    return;
  }
  for (const dir of ctx.input.path ?? DEFAULT_PATH) {
    const candidate = `${dir}/${cmd}`;
    const target = ctx.image.lookup(candidate);
    if (target?.type !== 'file' || (target.mode & 0o111) === 0) continue;
    keepPath(ctx, candidate, reason);
    return;
  }
  ctx.warn(`${path}: "#!" command ${cmd} is not on PATH (${(ctx.input.path ?? DEFAULT_PATH).join(':')}) in the image`, path);
}

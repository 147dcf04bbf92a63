import { ConfigError } from '../../lib/errors.js';
import { platformModules, type Platform } from './platforms.js';

/**
 * Kernel modules every aim initramfs loads, whatever the platform: the root filesystem, and the
 * power button (with its input events) so the machine powers off cleanly when asked.
 */
export const BASE_MODULES = ['ext4', 'evdev', 'button'] as const;

/** depmod's index of one kernel's modules, keyed by module name ("-" written as "_"). */
export interface ModuleIndex {
  /** Module name → its file (relative to /lib/modules/<version>) and the modules it needs. */
  modules: Map<string, { path: string; deps: string[] }>;
  /** Module name → modules to load before / after it (modules.softdep). */
  softdeps: Map<string, { pre: string[]; post: string[] }>;
  /** Plain aliases (no wildcards) → module names providing them (modules.alias). */
  aliases: Map<string, string[]>;
  /** Modules built into the kernel (modules.builtin): nothing to load. */
  builtin: Set<string>;
}

/** "kernel/fs/ext4/ext4.ko" → "ext4"; "snd-hda.ko.xz" → "snd_hda". */
export function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

const norm = (name: string) => name.replace(/-/g, '_');

/** Parses depmod's text files (modules.dep is required; softdep, alias and builtin are optional). */
export function parseModuleIndex(files: { dep: string; softdep?: string; alias?: string; builtin?: string }): ModuleIndex {
  const modules = new Map<string, { path: string; deps: string[] }>();
  for (const line of files.dep.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(moduleName);
    modules.set(moduleName(path), { path, deps });
  }
  const softdeps = new Map<string, { pre: string[]; post: string[] }>();
  for (const line of (files.softdep ?? '').split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== 'softdep' || !words[1]) continue;
    const entry = softdeps.get(norm(words[1])) ?? { pre: [], post: [] };
    let into: string[] | undefined;
    for (const w of words.slice(2)) {
      if (w === 'pre:') into = entry.pre;
      else if (w === 'post:') into = entry.post;
      else into?.push(norm(w));
    }
    softdeps.set(norm(words[1]), entry);
  }
  const aliases = new Map<string, string[]>();
  for (const line of (files.alias ?? '').split('\n')) {
    const [kw, alias, mod] = line.trim().split(/\s+/);
    if (kw !== 'alias' || !alias || !mod || /[*?[]/.test(alias)) continue;
    const key = norm(alias);
    aliases.set(key, [...(aliases.get(key) ?? []), norm(mod)]);
  }
  const builtin = new Set((files.builtin ?? '').split('\n').filter(Boolean).map(moduleName));
  return { modules, softdeps, aliases, builtin };
}

/**
 * A name as a module: itself when it is one, else the module providing the alias (the generic
 * implementation preferred, since CPU-specific ones such as crc32c_intel fail on other CPUs).
 */
function lookup(index: ModuleIndex, name: string): string | undefined {
  const n = norm(name);
  if (index.modules.has(n) || index.builtin.has(n)) return n;
  const providers = (index.aliases.get(n) ?? []).filter((m) => index.modules.has(m) || index.builtin.has(m)).sort();
  return providers.find((m) => m.endsWith('_generic')) ?? providers[0];
}

export interface ModuleClosure {
  /** Module files to load, in load order (dependencies first), relative to the modules directory. */
  load: { name: string; path: string }[];
  /** Requested modules that are built into the kernel. */
  builtin: string[];
}

/**
 * Everything the wanted modules need, in an order that loads each module after its dependencies
 * (modules.dep) and its softdep "pre" modules, and before its "post" ones. Pure.
 * An unknown wanted module is a ConfigError; an unknown softdep is skipped (softdeps are hints).
 */
export function moduleClosure(index: ModuleIndex, wanted: readonly string[]): ModuleClosure {
  const load: { name: string; path: string }[] = [];
  const builtin: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (name: string) => {
    if (done.has(name) || visiting.has(name)) return;
    visiting.add(name);
    const soft = index.softdeps.get(name);
    for (const pre of soft?.pre ?? []) {
      const m = lookup(index, pre);
      if (m) visit(m);
    }
    const mod = index.modules.get(name);
    if (mod) {
      for (const dep of mod.deps) visit(dep);
      load.push({ name, path: mod.path });
    } else builtin.push(name);
    done.add(name);
    visiting.delete(name);
    for (const post of soft?.post ?? []) {
      const m = lookup(index, post);
      if (m) visit(m);
    }
  };
  for (const w of wanted) {
    const m = lookup(index, w);
    if (!m) throw new ConfigError(`kernel module ${w} is neither a module of this kernel nor built into it`, { hint: 'check the name with modinfo, or drop --module ' + w });
    visit(m);
  }
  return { load, builtin: builtin.sort() };
}

/** The modules an initramfs for `platform` carries: the base set, the platform's drivers, the extras. */
export function wantedModules(platform: Platform, extra: readonly string[]): string[] {
  return [...new Set([...BASE_MODULES, ...platformModules(platform), ...extra])];
}

import type { ElfFacts } from '../analyze/elf.js';
import { lookupImagePath } from '../analyze/resolve.js';
import { parseShebang, SHEBANG_BYTES } from '../closure/shebang.js';
import type { Entry } from '../model/entry.js';
import type { ProfileRecord } from '../repository/types.js';

/**
 * What a profile's trace used in its image, as files: what the slim report calls the physical
 * limit, and what impact analysis calls "used by the profile".
 */

/** Owning packages of the given image paths (canonical), counted once each. */
export function packagesOf(paths: Iterable<string>, owners: ReadonlyMap<string, string[]>): Set<string> {
  const out = new Set<string>();
  for (const p of paths) for (const pkg of owners.get(p) ?? []) out.add(pkg);
  return out;
}

/** Reads the first bytes of an image file (for "#!" lines). */
export type ReadHead = (entry: Entry, bytes: number) => Promise<Buffer | undefined>;

/**
 * What the kernel itself loads to execve `exec` (an image file): its PT_INTERP if it is a
 * dynamic ELF, its "#!" interpreter if it is a script, and so on for that interpreter. A trace
 * shows the execve of the file only, never these.
 */
async function execveLoads(
  exec: Entry,
  byPath: ReadonlyMap<string, Entry>,
  elf: (blob: string) => ElfFacts | undefined,
  readHead: ReadHead,
): Promise<Entry[]> {
  const out: Entry[] = [];
  let current: Entry | undefined = exec;
  // A script's interpreter may be a script itself (the kernel allows a few levels); bounded.
  for (let depth = 0; current !== undefined && depth < 5; depth++) {
    const facts = current.blob === undefined ? undefined : elf(current.blob);
    let next: string | undefined;
    if (facts) next = facts.interp;
    else {
      const head = await readHead(current, SHEBANG_BYTES);
      next = head === undefined ? undefined : parseShebang(head)?.interpreter;
    }
    if (next === undefined || !next.startsWith('/')) break;
    current = lookupImagePath(byPath, next);
    if (current?.type !== 'file' || out.includes(current)) break;
    out.push(current);
  }
  return out;
}

/**
 * The regular files (path → size) a profile's traced paths name (through symlinks and
 * hardlinks), each once, with what the kernel loaded to execve the traced programs.
 */
export async function tracedFileMap(
  profile: Pick<ProfileRecord, 'paths'>,
  byPath: ReadonlyMap<string, Entry>,
  elf: (blob: string) => ElfFacts | undefined = () => undefined,
  readHead: ReadHead = async () => undefined,
): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  for (const p of profile.paths) {
    if (!p.ok) continue;
    const e = lookupImagePath(byPath, p.path);
    if (e?.type !== 'file') continue;
    files.set(e.path, e.size ?? 0);
    if (p.exec) for (const loaded of await execveLoads(e, byPath, elf, readHead)) files.set(loaded.path, loaded.size ?? 0);
  }
  return files;
}

/**
 * The physical limit of a profile on its gold image: the regular files its traced paths name
 * (through symlinks and hardlinks), each once, with what the kernel loaded to execve the traced
 * programs (ELF and "#!" interpreters), and their owning packages.
 */
export async function tracedFiles(
  profile: ProfileRecord,
  byPath: ReadonlyMap<string, Entry>,
  owners: ReadonlyMap<string, string[]>,
  elf: (blob: string) => ElfFacts | undefined = () => undefined,
  readHead: ReadHead = async () => undefined,
): Promise<{ files: number; bytes: number; packages: string[] }> {
  const files = await tracedFileMap(profile, byPath, elf, readHead);
  let bytes = 0;
  for (const size of files.values()) bytes += size;
  return { files: files.size, bytes, packages: [...packagesOf(files.keys(), owners)].sort() };
}


import type { ElfFacts } from '../analyze/elf.js';
import { parentPath } from '../model/entry.js';
import type { ImageIndex } from './image-index.js';

/**
 * Where the image's dynamic loader looks for libraries, from the image's own files: ld.so.conf
 * (with its `include` globs), musl's /etc/ld-musl-<arch>.path, and the built-in directories of
 * the machine; plus $ORIGIN/$LIB/$PLATFORM expansion for DT_RPATH and DT_RUNPATH.
 */

const MAX_INCLUDE_DEPTH = 16;

/** Directories listed by /etc/ld.so.conf and the files it includes, in order, without duplicates. */
export async function readLdSoConf(image: ImageIndex, warn: (message: string) => void): Promise<string[]> {
  const dirs: string[] = [];
  const seen = new Set<string>();
  const visit = async (file: string, depth: number): Promise<void> => {
    const canonical = image.resolve(file);
    if (canonical === undefined || seen.has(canonical)) return;
    if (depth > MAX_INCLUDE_DEPTH) {
      warn(`${file}: includes nested deeper than ${MAX_INCLUDE_DEPTH}, ignored`);
      return;
    }
    seen.add(canonical);
    const text = await image.readText(file);
    if (text === undefined) return;
    for (const line of parseLdSoConfText(text)) {
      if (line.include !== undefined) {
        for (const pattern of line.include) {
          // ldconfig resolves relative include patterns against the including file's directory.
          const abs = pattern.startsWith('/') ? pattern : `${parentPath(file)}/${pattern}`;
          for (const f of image.expandGlob(abs)) await visit(f, depth + 1);
        }
      } else if (line.dir !== undefined && !dirs.includes(line.dir)) dirs.push(line.dir);
    }
  };
  await visit('/etc/ld.so.conf', 0);
  return dirs;
}

export interface LdSoConfLine {
  dir?: string;
  include?: string[];
}

/** ldconfig's syntax: "#" comments, `include <glob>…`, obsolete `hwcap` lines, else one directory. */
export function parseLdSoConfText(text: string): LdSoConfLine[] {
  const out: LdSoConfLine[] = [];
  for (const raw of text.split('\n')) {
    const hash = raw.indexOf('#');
    const line = (hash === -1 ? raw : raw.slice(0, hash)).trim();
    if (line === '') continue;
    const include = /^include\s+(.*)$/.exec(line);
    if (include) {
      out.push({ include: include[1]!.split(/\s+/).filter((s) => s !== '') });
      continue;
    }
    if (/^hwcap\s/.test(line)) continue;
    // Old ldconfig allowed "dir=TYPE"; several directories may share a line separated by space, comma or colon.
    for (const d of line.split(/[\s,:]+/)) {
      const dir = normaliseDir(d.replace(/=.*$/, ''));
      if (dir !== undefined) out.push({ dir });
    }
  }
  return out;
}

function normaliseDir(d: string): string | undefined {
  if (!d.startsWith('/')) return undefined;
  const s = d.replace(/\/{2,}/g, '/').replace(/\/+$/, '');
  return s === '' ? '/' : s;
}

/** musl reads /etc/ld-musl-<arch>.path (directories separated by newlines or colons) instead of ld.so.conf. */
export async function readMuslPaths(image: ImageIndex): Promise<string[]> {
  const dirs: string[] = [];
  const etc = image.resolve('/etc');
  if (etc === undefined) return dirs;
  for (const p of image.children(etc)) {
    if (!/\/ld-musl-[^/]+\.path$/.test(p)) continue;
    const text = await image.readText(p);
    for (const d of (text ?? '').split(/[\n:]+/)) {
      const dir = normaliseDir(d.trim());
      if (dir !== undefined && !dirs.includes(dir)) dirs.push(dir);
    }
  }
  return dirs;
}

/** True when the image has a musl dynamic loader (/lib/ld-musl-*.so.1). */
export function hasMuslLoader(image: ImageIndex): boolean {
  const lib = image.resolve('/lib');
  return lib !== undefined && image.children(lib).some((p) => /\/ld-musl-[^/]+\.so\.1$/.test(p));
}

type Machine = Pick<ElfFacts, 'class' | 'machine' | 'endian'>;

/** Debian multiarch tuples for a machine (several for ARM hard/soft float). */
export function multiarchTuples(m: Machine): string[] {
  const le = m.endian === 'le';
  switch (m.machine) {
    case 'x86-64':
      return m.class === 64 ? ['x86_64-linux-gnu'] : ['x86_64-linux-gnux32'];
    case 'i386':
      return ['i386-linux-gnu'];
    case 'aarch64':
      return [le ? 'aarch64-linux-gnu' : 'aarch64_be-linux-gnu'];
    case 'arm':
      return ['arm-linux-gnueabihf', 'arm-linux-gnueabi'];
    case 'ppc64':
      return [le ? 'powerpc64le-linux-gnu' : 'powerpc64-linux-gnu'];
    case 'ppc':
      return ['powerpc-linux-gnu'];
    case 's390':
      return m.class === 64 ? ['s390x-linux-gnu'] : ['s390-linux-gnu'];
    case 'riscv':
      return m.class === 64 ? ['riscv64-linux-gnu'] : ['riscv32-linux-gnu'];
    case 'loongarch':
      return ['loongarch64-linux-gnu'];
    case 'mips':
    case 'mips-rs3-le':
      return m.class === 64 ? [le ? 'mips64el-linux-gnuabi64' : 'mips64-linux-gnuabi64'] : [le ? 'mipsel-linux-gnu' : 'mips-linux-gnu'];
    case 'sparcv9':
      return ['sparc64-linux-gnu'];
    case 'ia64':
      return ['ia64-linux-gnu'];
    default:
      return [];
  }
}

/** ld.so's built-in directories: multiarch (Debian), lib64/lib32 (Red Hat, SUSE, Debian multilib), then /lib and /usr/lib. */
export function defaultLibraryDirs(m: Machine, musl: boolean): string[] {
  const dirs: string[] = [];
  for (const t of multiarchTuples(m)) dirs.push(`/lib/${t}`, `/usr/lib/${t}`);
  if (m.class === 64) dirs.push('/lib64', '/usr/lib64');
  else if (m.machine === 'i386' || m.machine === 'x86-64') dirs.push('/lib32', '/usr/lib32', '/libx32', '/usr/libx32');
  dirs.push('/lib', '/usr/lib');
  if (musl) dirs.push('/usr/local/lib');
  return dirs;
}

/** Values of $PLATFORM ld.so may use for a machine (AT_PLATFORM). */
function platforms(m: Machine): string[] {
  switch (m.machine) {
    case 'x86-64':
      return m.class === 64 ? ['x86_64', 'haswell', 'xeon_phi'] : ['i686'];
    case 'i386':
      return ['i686', 'i586', 'i486', 'i386'];
    case 'aarch64':
      return ['aarch64'];
    case 'arm':
      return ['v7l', 'v8l', 'v6l'];
    default:
      return [m.machine];
  }
}

/** Values of $LIB: the distribution's library directory for the class (Debian multiarch or lib64/lib). */
function libValues(m: Machine): string[] {
  const out = multiarchTuples(m).map((t) => `lib/${t}`);
  out.push(m.class === 64 ? 'lib64' : 'lib');
  if (m.class === 64) out.push('lib');
  return out;
}

/**
 * Expands one DT_RPATH/DT_RUNPATH element for an object whose directory is `origin`. Unknown
 * values ($LIB, $PLATFORM) give every value the loader could use, so nothing is missed. Relative
 * elements (relative to the process's working directory) and empty ones are dropped.
 */
export function expandSearchElement(element: string, origin: string, m: Machine): string[] {
  let results = [element];
  const subst = (name: string, values: string[]) => {
    const source = `\\$(?:${name}\\b|\\{${name}\\})`;
    const re = new RegExp(source, 'g');
    const has = new RegExp(source);
    const next: string[] = [];
    for (const r of results) {
      if (!has.test(r)) {
        next.push(r);
        continue;
      }
      for (const v of values) next.push(r.replace(re, () => v));
    }
    results = next;
  };
  subst('ORIGIN', [origin]);
  subst('LIB', libValues(m));
  subst('PLATFORM', platforms(m));
  const out: string[] = [];
  for (const r of results) {
    const d = normaliseDir(r);
    if (d !== undefined && !out.includes(d)) out.push(d);
  }
  return out;
}

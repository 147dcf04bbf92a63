import type { ElfFacts } from '../analyze/elf.js';
import { parentPath } from '../model/entry.js';
import type { ImageIndex } from './image-index.js';
import { defaultLibraryDirs, expandSearchElement } from './ld-config.js';

/** An ELF object as the loader sees it while resolving its DT_NEEDED. */
export interface LoadedObject {
  /** Canonical path of the file. */
  path: string;
  facts: ElfFacts;
  /**
   * DT_RPATH directories of the objects that loaded this one, nearest first, ending with the
   * executable's: glibc searches them after the object's own DT_RPATH when it has no DT_RUNPATH.
   */
  inheritedRpath: string[];
}

export interface FoundLibrary {
  /** Paths that satisfy the soname in the first directory that has one: glibc-hwcaps variants first, then the plain file. */
  paths: string[];
}

/**
 * ld.so's search for a DT_NEEDED soname, over the image: DT_RPATH of the object and of its
 * loaders (only when the object has no DT_RUNPATH), LD_LIBRARY_PATH (not known statically,
 * ignored), DT_RUNPATH, the ld.so.conf directories (what ld.so.cache holds), then the built-in
 * directories. A candidate must be an ELF file of the same class and machine as the object, as
 * ld.so skips the others. In each directory the glibc-hwcaps/<level>/ subdirectories come first;
 * since the target CPU is unknown, every variant found there is returned.
 */
export class LibrarySearch {
  private readonly cache = new Map<string, FoundLibrary | undefined>();
  private readonly system = new Map<string, string[]>();

  constructor(
    private readonly image: ImageIndex,
    private readonly elf: (blob: string) => ElfFacts | undefined,
    private readonly confDirs: string[],
    private readonly musl: boolean,
  ) {}

  /** The object's own DT_RPATH, expanded; empty when it has DT_RUNPATH (glibc then ignores DT_RPATH). */
  ownRpath(obj: Omit<LoadedObject, 'inheritedRpath'>): string[] {
    if (obj.facts.runpath !== undefined || obj.facts.rpath === undefined) return [];
    return obj.facts.rpath.flatMap((e) => expandSearchElement(e, parentPath(obj.path), obj.facts));
  }

  /** Directories in search order for the object's DT_NEEDED. */
  searchDirs(obj: LoadedObject): string[] {
    return [...new Set([...this.objectDirs(obj), ...this.systemDirs(obj.facts)])];
  }

  /** DT_RPATH chain (without DT_RUNPATH) or DT_RUNPATH: the part of the search that depends on the object. */
  private objectDirs(obj: LoadedObject): string[] {
    const f = obj.facts;
    if (f.runpath === undefined) return [...this.ownRpath(obj), ...obj.inheritedRpath];
    return f.runpath.flatMap((e) => expandSearchElement(e, parentPath(obj.path), f));
  }

  /** ld.so.conf directories then the built-in ones, per machine. */
  private systemDirs(m: ElfFacts): string[] {
    const key = `${m.class}\0${m.machine}\0${m.endian}`;
    let dirs = this.system.get(key);
    if (!dirs) {
      dirs = [...new Set([...this.confDirs, ...defaultLibraryDirs(m, this.musl)])];
      this.system.set(key, dirs);
    }
    return dirs;
  }

  find(soname: string, obj: LoadedObject): FoundLibrary | undefined {
    if (soname.includes('/')) {
      // A DT_NEEDED with a slash is opened as a path; relative ones depend on the working directory.
      if (!soname.startsWith('/')) return undefined;
      return this.matches(soname, obj.facts) ? { paths: [soname] } : undefined;
    }
    const own = this.objectDirs(obj);
    const f = obj.facts;
    const key = `${soname}\0${f.class}\0${f.machine}\0${f.endian}\0${own.join('\0')}`;
    if (this.cache.has(key)) return this.cache.get(key);
    let found: FoundLibrary | undefined;
    for (const list of [own, this.systemDirs(f)]) {
      for (const dir of list) {
        const paths = this.findIn(dir, soname, f);
        if (paths.length > 0) {
          found = { paths };
          break;
        }
      }
      if (found) break;
    }
    this.cache.set(key, found);
    return found;
  }

  /** Files named `soname` anywhere in the search directories, of any class: for diagnostics. */
  mismatches(soname: string, obj: LoadedObject): string[] {
    if (soname.includes('/')) return [];
    return this.searchDirs(obj)
      .map((d) => `${d}/${soname}`)
      .filter((p) => this.image.lookup(p)?.type === 'file');
  }

  private findIn(dir: string, soname: string, facts: ElfFacts): string[] {
    const canonical = this.image.resolve(dir);
    if (canonical === undefined || this.image.get(canonical)?.type !== 'dir') return [];
    const out: string[] = [];
    const hwcaps = this.image.resolve(`${canonical}/glibc-hwcaps`);
    if (hwcaps !== undefined && this.image.get(hwcaps)?.type === 'dir') {
      for (const level of this.image.children(hwcaps)) {
        const candidate = `${dir}/glibc-hwcaps/${level.slice(hwcaps.length + 1)}/${soname}`;
        if (this.matches(candidate, facts)) out.push(candidate);
      }
    }
    const plain = `${dir}/${soname}`;
    // The directory is canonical, so the entry is there or nowhere: a cheap miss before resolving.
    if (this.image.get(`${canonical === '/' ? '' : canonical}/${soname}`) && this.matches(plain, facts)) out.push(plain);
    return out;
  }

  private matches(path: string, dependent: ElfFacts): boolean {
    const e = this.image.lookup(path);
    if (!e || e.type !== 'file' || e.blob === undefined) return false;
    const f = this.elf(e.blob);
    return f !== undefined && f.class === dependent.class && f.machine === dependent.machine && f.endian === dependent.endian;
  }
}

import { silentReporter } from '../../lib/reporter.js';
import type { Reporter } from '../../lib/reporter.js';
import { joinImagePath, parentPath } from '../model/entry.js';
import type { Entry } from '../model/entry.js';
import { parseApkInstalled } from './apk.js';
import { mapLimit } from './concurrency.js';
import { licenseFactFromApk, licenseFactFromCopyright } from './copyright.js';
import type { LicenseFact } from './copyright.js';
import { loadDpkgDatabase } from './dpkg.js';
import { isElfMagic, parseElf } from './elf.js';
import type { ElfFacts } from './elf.js';
import type { Diversion, PackageDatabase, PackageFact } from './package.js';
import { lookupImagePath, resolveImagePath } from './resolve.js';

export { resolveImagePath, lookupImagePath, MAX_SYMLINK_HOPS } from './resolve.js';
export type { ResolveOptions } from './resolve.js';
export { parseElf, isElfMagic } from './elf.js';
export type { ElfFacts, ElfReader } from './elf.js';
export type { PackageFact, PackageDatabase, Conffile, Diversion, PackageManager } from './package.js';
export type { LicenseFact, CopyrightFilesStanza } from './copyright.js';

/** Read access to one image: its entries and the content of its regular files. */
export interface ImageView {
  /** All entries of the image by absolute path. */
  entries: ReadonlyMap<string, Entry>;
  /** Reads a regular file's whole content (by blob); throws if absent. */
  readBlob(blob: string): Promise<Buffer>;
  /** Reads part of a blob (for ELF headers of big binaries). */
  readBlobRange(blob: string, offset: number, length: number): Promise<Buffer>;
}

/** What aim knows about an image after decomposition. */
export interface ImageFacts {
  distro: 'debian' | 'alpine' | 'unknown';
  /** /etc/os-release (or /usr/lib/os-release) as key → unquoted value. */
  osRelease?: Record<string, string>;
  /** The three os-release values most reports need. */
  os?: { id?: string; versionId?: string; prettyName?: string };
  /** Installed packages of every package manager found, sorted by name and architecture. */
  packages: PackageFact[];
  /**
   * Image path → owning package ids (sorted). Paths are recorded as the package manager lists them
   * and, when that goes through a symlinked directory (/lib → usr/lib), also at the canonical path.
   */
  owners: Map<string, string[]>;
  /** Blob → ELF facts; each distinct ELF blob is parsed once. */
  elf: Map<string, ElfFacts>;
  /** One per package name, sorted by package. */
  licenses: LicenseFact[];
  /** dpkg diversions in force. */
  diversions?: Diversion[];
}

export interface AnalyzeOptions {
  reporter?: Reporter;
  /** Blobs known to start with the ELF magic; when given, only these are parsed and no heads are read. */
  elfCandidates?: ReadonlySet<string>;
  /** ELF facts already parsed (by ingest, from contents it held in memory): not read again. */
  knownElf?: ReadonlyMap<string, ElfFacts>;
  /** Reads in flight at once (default 16). */
  concurrency?: number;
}

const HEAD_BYTES = 4096;
const STAGE = 'analyze';

/** Parses os-release syntax (shell-like KEY=value lines, values optionally quoted). */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!;
    if (v.startsWith('"')) {
      const end = findClosingQuote(v);
      v = v.slice(1, end).replace(/\\(["\\$`])/g, '$1');
    } else if (v.startsWith("'")) {
      const end = v.indexOf("'", 1);
      v = v.slice(1, end === -1 ? undefined : end);
    } else v = v.replace(/\s+#.*$/, '').trim();
    out[m[1]!] = v;
  }
  return out;
}

function findClosingQuote(v: string): number {
  for (let i = 1; i < v.length; i++) {
    if (v[i] === '\\') i++;
    else if (v[i] === '"') return i;
  }
  return v.length;
}

/**
 * Decomposition facts of an image: distribution, installed packages and which paths they own,
 * ELF facts of every ELF file, and licenses per package. Reads only through `view`; problems
 * (unreadable files, missing lists or copyright files) become warnings, not failures.
 */
export async function analyzeImage(view: ImageView, options: AnalyzeOptions = {}): Promise<ImageFacts> {
  const reporter = options.reporter ?? silentReporter;
  const concurrency = options.concurrency ?? 16;
  const entries = view.entries;

  const readFile = async (path: string): Promise<Buffer | undefined> => {
    const e = lookupImagePath(entries, path);
    // A file with holes (model/sparse.ts) is no configuration file: not read whole into memory.
    if (!e || e.type !== 'file' || e.sparse) return undefined;
    if (e.blob === undefined) return (e.size ?? 0) === 0 ? Buffer.alloc(0) : undefined;
    try {
      return await view.readBlob(e.blob);
    } catch (err) {
      reporter.emit({ type: 'warn', code: 'W_ANALYZE_READ', message: `cannot read ${path}: ${(err as Error).message}`, path });
      return undefined;
    }
  };

  const facts: ImageFacts = { distro: 'unknown', packages: [], owners: new Map(), elf: new Map(), licenses: [] };

  const osText = (await readFile('/etc/os-release')) ?? (await readFile('/usr/lib/os-release'));
  if (osText) {
    const os = parseOsRelease(osText.toString('utf8'));
    facts.osRelease = os;
    facts.os = {};
    if (os.ID !== undefined) facts.os.id = os.ID;
    if (os.VERSION_ID !== undefined) facts.os.versionId = os.VERSION_ID;
    if (os.PRETTY_NAME !== undefined) facts.os.prettyName = os.PRETTY_NAME;
  }

  reporter.emit({ type: 'stage', stage: `${STAGE}.packages`, status: 'start' });
  const databases: PackageDatabase[] = [];
  const dpkgDir = resolveImagePath(entries, '/var/lib/dpkg');
  if (dpkgDir !== undefined) {
    const dpkg = await loadDpkgDatabase((rel) => readFile(`${dpkgDir}/${rel}`));
    if (dpkg) databases.push(dpkg);
  }
  const apkInstalled = await readFile('/lib/apk/db/installed');
  if (apkInstalled) databases.push(parseApkInstalled(apkInstalled));
  for (const db of databases) {
    for (const p of db.problems) reporter.emit({ type: 'warn', ...p });
    facts.packages.push(...db.packages);
    if (db.diversions.length > 0) facts.diversions = [...(facts.diversions ?? []), ...db.diversions];
  }
  facts.packages.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.arch < b.arch ? -1 : a.arch > b.arch ? 1 : 0));
  facts.owners = computeOwners(entries, databases);
  facts.distro = detectDistro(databases, facts.osRelease);
  reporter.emit({
    type: 'stage',
    stage: `${STAGE}.packages`,
    status: 'done',
    detail: `${facts.packages.length} packages, ${facts.owners.size} owned paths`,
  });

  facts.elf = await analyzeElf(view, options.elfCandidates, options.knownElf, concurrency, reporter);
  facts.licenses = await analyzeLicenses(facts.packages, entries, readFile, concurrency, reporter);
  return facts;
}

function detectDistro(databases: PackageDatabase[], os: Record<string, string> | undefined): ImageFacts['distro'] {
  if (databases.some((d) => d.manager === 'dpkg')) return 'debian';
  if (databases.some((d) => d.manager === 'apk')) return 'alpine';
  const ids = [os?.ID ?? '', ...(os?.ID_LIKE ?? '').split(/\s+/)].map((s) => s.toLowerCase());
  if (ids.includes('debian') || ids.includes('ubuntu')) return 'debian';
  if (ids.includes('alpine')) return 'alpine';
  return 'unknown';
}

/** Ownership by listed path, plus the canonical path when a symlinked directory leads elsewhere. */
function computeOwners(entries: ReadonlyMap<string, Entry>, databases: PackageDatabase[]): Map<string, string[]> {
  const owners = new Map<string, string[]>();
  const add = (path: string, id: string) => {
    const list = owners.get(path);
    if (!list) owners.set(path, [id]);
    else if (!list.includes(id)) list.push(id);
  };
  const dirCache = new Map<string, string | undefined>();
  const canonicalDir = (dir: string): string | undefined => {
    if (dirCache.has(dir)) return dirCache.get(dir);
    const r = resolveImagePath(entries, dir);
    dirCache.set(dir, r);
    return r;
  };
  for (const db of databases) {
    for (const [id, paths] of db.files) {
      for (const path of paths) {
        add(path, id);
        if (path === '/') continue;
        const dir = parentPath(path);
        const canon = canonicalDir(dir);
        if (canon === undefined || canon === dir) continue;
        const canonical = joinImagePath(canon, path.slice(dir === '/' ? 1 : dir.length + 1));
        if (canonical !== path && entries.has(canonical)) add(canonical, id);
      }
    }
  }
  for (const list of owners.values()) list.sort();
  return owners;
}

async function analyzeElf(
  view: ImageView,
  candidates: ReadonlySet<string> | undefined,
  known: ReadonlyMap<string, ElfFacts> | undefined,
  concurrency: number,
  reporter: Reporter,
): Promise<Map<string, ElfFacts>> {
  const sizes = new Map<string, number>();
  const paths = new Map<string, string>();
  for (const e of view.entries.values()) {
    // The blob of a file with holes holds only its data: its offsets are not the file's.
    if (e.type !== 'file' || e.blob === undefined || e.sparse || sizes.has(e.blob)) continue;
    const size = e.size ?? 0;
    if (size < 16 || (candidates && !candidates.has(e.blob))) continue;
    sizes.set(e.blob, size);
    if (known?.has(e.blob)) continue;
    paths.set(e.blob, e.path);
  }
  const blobs = [...sizes.keys()].filter((b) => !known?.has(b));
  const total = blobs.length;
  reporter.emit({ type: 'stage', stage: `${STAGE}.elf`, status: 'start', detail: `${total} ${candidates ? 'ELF files' : 'files to check'}` });
  const found = new Map<string, ElfFacts>();
  let done = 0;
  await mapLimit(blobs, concurrency, async (blob) => {
    const size = sizes.get(blob)!;
    try {
      const head = await view.readBlobRange(blob, 0, Math.min(size, HEAD_BYTES));
      if (isElfMagic(head)) {
        const f = await parseElf((offset, length) => view.readBlobRange(blob, offset, length), size, { head });
        if (f) found.set(blob, f);
        else reporter.emit({ type: 'warn', code: 'W_ELF_MALFORMED', message: 'ELF magic but unusable header', path: paths.get(blob) });
      }
    } catch (err) {
      reporter.emit({ type: 'warn', code: 'W_ANALYZE_READ', message: `cannot read ELF file: ${(err as Error).message}`, path: paths.get(blob) });
    }
    done++;
    if (done % 250 === 0) reporter.emit({ type: 'progress', stage: `${STAGE}.elf`, done, total, unit: 'files' });
  });
  reporter.emit({ type: 'progress', stage: `${STAGE}.elf`, done: total, total, unit: 'files' });
  // Insertion order follows completion; make it deterministic.
  const ordered = new Map<string, ElfFacts>();
  for (const blob of sizes.keys()) {
    const f = found.get(blob) ?? known?.get(blob);
    if (f) ordered.set(blob, f);
  }
  reporter.emit({ type: 'stage', stage: `${STAGE}.elf`, status: 'done', detail: `${ordered.size} ELF objects` });
  return ordered;
}

async function analyzeLicenses(
  packages: PackageFact[],
  entries: ReadonlyMap<string, Entry>,
  readFile: (path: string) => Promise<Buffer | undefined>,
  concurrency: number,
  reporter: Reporter,
): Promise<LicenseFact[]> {
  reporter.emit({ type: 'stage', stage: `${STAGE}.licenses`, status: 'start' });
  const byName = new Map<string, PackageFact>();
  for (const p of packages) if (!byName.has(p.name)) byName.set(p.name, p);
  // Several packages often share one copyright file through a symlinked doc directory.
  const parsed = new Map<string, Promise<LicenseFact>>();
  const missing: string[] = [];
  const facts = await mapLimit([...byName.values()], concurrency, async (p): Promise<LicenseFact> => {
    if (p.manager === 'apk') return licenseFactFromApk(p.name, p.license);
    const canonical = resolveImagePath(entries, `/usr/share/doc/${p.name}/copyright`);
    if (canonical === undefined) {
      missing.push(p.name);
      return licenseFactFromCopyright(p.name, undefined);
    }
    let pending = parsed.get(canonical);
    if (!pending) {
      pending = readFile(canonical).then((b) => licenseFactFromCopyright(p.name, b?.toString('utf8'), canonical));
      parsed.set(canonical, pending);
    }
    const f = await pending;
    if (f.origin === 'missing') missing.push(p.name);
    return { ...f, package: p.name };
  });
  if (missing.length > 0) {
    missing.sort();
    const shown = missing.slice(0, 10).join(', ');
    reporter.emit({
      type: 'warn',
      code: 'W_NO_COPYRIGHT',
      message: `${missing.length} package(s) have no readable /usr/share/doc/<package>/copyright: ${shown}${missing.length > 10 ? ', …' : ''}`,
    });
  }
  facts.sort((a, b) => (a.package < b.package ? -1 : a.package > b.package ? 1 : 0));
  reporter.emit({ type: 'stage', stage: `${STAGE}.licenses`, status: 'done', detail: `${facts.length} packages` });
  return facts;
}

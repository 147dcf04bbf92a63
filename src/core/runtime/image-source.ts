/**
 * Reads what the runtime state plan needs from an image manifest: the tmpfiles.d files in force,
 * the workload's units (named, or found by the program the workload runs) with their drop-ins,
 * and the users and groups. Reads only; resolves every path through the image's own symlinks.
 */
import { ConfigError } from '../../lib/errors.js';
import { lookupImagePath, resolveImagePath } from '../analyze/resolve.js';
import { parseGroup, parsePasswd } from '../closure/passwd.js';
import type { Entry } from '../model/entry.js';
import { planRuntimeState, type RuntimePlan } from './plan.js';
import { parseTmpfiles, selectTmpfiles, TMPFILES_DIRS, type TmpfilesProblem } from './tmpfiles.js';
import { dropInDirNames, execStartPrograms, INTERPRETERS, mergeUnitFiles, parseUnitFile, selectDropIns, UNIT_DIRS, unitName, type UnitFile } from './unit-file.js';
import { splitWords } from './words.js';

export interface ImageFiles {
  entries: ReadonlyMap<string, Entry>;
  readBlob: (blob: string) => Promise<Buffer>;
}

export interface RuntimeRequest {
  /** Units to apply. Undefined: find them from `command`; empty: none. */
  units?: readonly string[];
  /** The workload's command (sh -c text): its programs pick the units when none are named. */
  command?: string;
}

export interface ImageRuntimePlan extends RuntimePlan {
  /** True when the units were found from the workload's programs rather than named. */
  detected: boolean;
  /** tmpfiles.d lines aim could not read. */
  problems: TmpfilesProblem[];
}

const PATH_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
/** Programs that only start another one: never the workload's own unit. */
const WRAPPERS = /^(sh|bash|dash|ash|busybox|env|exec|nice|nohup|setpriv|runuser|su|sudo|chroot|timeout|stdbuf|ionice|taskset|numactl|chpst|s6-setuidgid|gosu|tini|dumb-init)$/;

/** The path with its directories resolved through the image's symlinks; missing tails appended as named. */
export function canonicalImagePath(entries: ReadonlyMap<string, Entry>, path: string): string {
  const parts = path.split('/').filter((c) => c !== '' && c !== '.');
  for (let keep = parts.length - 1; keep >= 0; keep--) {
    const dir = resolveImagePath(entries, `/${parts.slice(0, keep).join('/')}`);
    if (dir === undefined || entries.get(dir)?.type !== 'dir') continue;
    const rest = parts.slice(keep).join('/');
    return dir === '/' ? `/${rest}` : `${dir}/${rest}`;
  }
  return `/${parts.join('/')}`;
}

async function readText(image: ImageFiles, path: string): Promise<string | undefined> {
  const e = lookupImagePath(image.entries, path);
  if (e?.type !== 'file') return undefined;
  if (e.blob === undefined) return '';
  return (await image.readBlob(e.blob)).toString('utf8');
}

/** Directory → names directly in it, built once per manifest. */
const childIndex = new WeakMap<ReadonlyMap<string, Entry>, Map<string, string[]>>();

function childrenOf(entries: ReadonlyMap<string, Entry>, dir: string): string[] {
  let index = childIndex.get(entries);
  if (!index) {
    index = new Map();
    for (const path of entries.keys()) {
      const slash = path.lastIndexOf('/');
      if (slash < 0 || path === '/') continue;
      const parent = slash === 0 ? '/' : path.slice(0, slash);
      const list = index.get(parent);
      if (list) list.push(path.slice(slash + 1));
      else index.set(parent, [path.slice(slash + 1)]);
    }
    childIndex.set(entries, index);
  }
  return index.get(dir) ?? [];
}

/** Names directly in each of `dirs` (resolved; a directory reached twice through links counts once), as DIR/NAME. */
function listDirs(entries: ReadonlyMap<string, Entry>, dirs: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const d of dirs) {
    const c = resolveImagePath(entries, d);
    if (c === undefined || entries.get(c)?.type !== 'dir' || seen.has(c)) continue;
    seen.add(c);
    for (const name of childrenOf(entries, c)) out.push(`${d}/${name}`);
  }
  return out.sort();
}

/** True when `path` is masked: a symlink to /dev/null (or an empty file for tmpfiles.d). */
function isMasked(entries: ReadonlyMap<string, Entry>, path: string): boolean {
  const named = resolveImagePath(entries, path, { followFinal: false });
  const e = named === undefined ? undefined : entries.get(named);
  return e?.type === 'symlink' && (e.target === '/dev/null' || resolveImagePath(entries, path) === '/dev/null');
}

/**
 * The executable an unqualified or absolute program name names in the image, canonical. An
 * absolute path may name any regular file (a script an interpreter runs need not be executable).
 */
function programPath(entries: ReadonlyMap<string, Entry>, word: string): string | undefined {
  const candidates = word.startsWith('/') ? [word] : word.includes('/') ? [] : PATH_DIRS.map((d) => `${d}/${word}`);
  for (const c of candidates) {
    const path = resolveImagePath(entries, c);
    const e = path === undefined ? undefined : lookupImagePath(entries, path);
    if (path !== undefined && e?.type === 'file' && (word.startsWith('/') || (e.mode & 0o111) !== 0)) return path;
  }
  return undefined;
}

const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
/** Wrappers and interpreters name no service by themselves. */
const generic = (p: string) => WRAPPERS.test(base(p)) || INTERPRETERS.test(base(p));

/**
 * The programs a workload command names: every word that is an executable on PATH or an absolute
 * path to a file in the image, wrappers (setpriv, env …) and interpreters (sh, python3 …) aside.
 */
export function commandPrograms(entries: ReadonlyMap<string, Entry>, command: string): string[] {
  let words: string[];
  try {
    words = splitWords(command).words;
  } catch {
    words = command.split(/\s+/);
  }
  const out = new Set<string>();
  for (const w of words) {
    const word = w.replace(/^[;&|(]+|[;&|)]+$/g, '');
    if (!/^[A-Za-z0-9_./+@-]+$/.test(word) || generic(word)) continue;
    const p = programPath(entries, word);
    if (p !== undefined && !generic(p)) out.add(p);
  }
  return [...out];
}

interface FoundUnit {
  /** The name the unit file has (an alias resolves to its target's). */
  name: string;
  file: string;
  unit: UnitFile;
}

/** A unit by name, from the highest-priority directory that has it, with its drop-ins; undefined when absent or masked. */
async function loadUnit(image: ImageFiles, name: string): Promise<FoundUnit | undefined> {
  const { entries } = image;
  for (const dir of UNIT_DIRS) {
    const path = `${dir}/${name}`;
    if (resolveImagePath(entries, path, { followFinal: false }) === undefined) continue;
    if (isMasked(entries, path)) return undefined;
    const file = resolveImagePath(entries, path);
    if (file === undefined) continue;
    const text = await readText(image, file);
    if (text === undefined) continue;
    const realName = file.slice(file.lastIndexOf('/') + 1);
    const names = realName === name ? [name] : [realName, name];
    const dropInFiles = listDirs(entries, UNIT_DIRS.flatMap((d) => names.flatMap((n) => dropInDirNames(n).map((x) => `${d}/${x}`))));
    const dropIns: UnitFile[] = [];
    for (const n of names) {
      for (const f of selectDropIns(n, dropInFiles)) {
        const t = isMasked(entries, f) ? undefined : await readText(image, f);
        if (t !== undefined) dropIns.push(parseUnitFile(t));
      }
    }
    return { name: realName, file, unit: mergeUnitFiles(parseUnitFile(text), dropIns) };
  }
  return undefined;
}

/** Service units (not templates) whose ExecStart= runs one of `programs`, each unit file once. */
async function detectUnits(image: ImageFiles, programs: readonly string[]): Promise<FoundUnit[]> {
  if (programs.length === 0) return [];
  const names = new Set(listDirs(image.entries, UNIT_DIRS).map((p) => p.slice(p.lastIndexOf('/') + 1)));
  const found = new Map<string, FoundUnit>();
  for (const name of [...names].sort()) {
    if (!name.endsWith('.service') || name.includes('@')) continue;
    const unit = await loadUnit(image, name);
    if (!unit || found.has(unit.file)) continue;
    const runs = execStartPrograms(unit.unit).map((p) => programPath(image.entries, p));
    if (runs.some((p) => p !== undefined && programs.includes(p))) found.set(unit.file, unit);
  }
  return [...found.values()];
}

/**
 * The runtime state plan of an image for a workload: every tmpfiles.d line in force, and the
 * directories of the named units (or of the units whose ExecStart= runs a program of the
 * workload's command). A named unit the image lacks is a configuration error.
 */
export async function planImageRuntime(image: ImageFiles, req: RuntimeRequest = {}): Promise<ImageRuntimePlan> {
  const { entries } = image;
  const problems: TmpfilesProblem[] = [];
  const tmpfiles: { file: string; lines: ReturnType<typeof parseTmpfiles>['lines'] }[] = [];
  for (const file of selectTmpfiles(listDirs(entries, TMPFILES_DIRS))) {
    if (isMasked(entries, file)) continue;
    const text = await readText(image, file);
    if (text === undefined) continue;
    const parsed = parseTmpfiles(text, file);
    problems.push(...parsed.problems);
    tmpfiles.push({ file, lines: parsed.lines });
  }
  let units: FoundUnit[];
  const detected = req.units === undefined;
  if (req.units !== undefined) {
    units = [];
    for (const n of req.units) {
      const name = unitName(n);
      const unit = await loadUnit(image, name);
      if (!unit) {
        throw new ConfigError(`unit ${name} is not in the image (or is masked)`, {
          hint: `looked in ${UNIT_DIRS.join(', ')}; name a unit the image has, or leave out --unit to find it from the workload's program`,
        });
      }
      if (!units.some((u) => u.file === unit.file)) units.push(unit);
    }
  } else {
    units = await detectUnits(image, req.command === undefined ? [] : commandPrograms(entries, req.command));
  }
  const plan = planRuntimeState({
    tmpfiles,
    units: units.map((u) => ({ name: u.name, unit: u.unit })),
    users: parsePasswd((await readText(image, '/etc/passwd')) ?? ''),
    groups: parseGroup((await readText(image, '/etc/group')) ?? ''),
    canonical: (p) => canonicalImagePath(entries, p),
  });
  return { ...plan, detected, problems };
}

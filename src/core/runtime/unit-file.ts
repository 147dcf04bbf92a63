/**
 * systemd unit files (systemd.syntax(7), systemd.unit(5)): sections of Key=Value assignments,
 * drop-ins in NAME.d/*.conf, and what aim needs from a service: its executables, the directories
 * it asks systemd to create (RuntimeDirectory= …) and the user it runs as. Pure.
 */
import { splitWords } from './words.js';

/** Unit directories of the system manager, highest priority first. */
export const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/usr/local/lib/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system'] as const;

/** Section → key → assigned values in order (a key may be assigned many times). */
export type UnitFile = Map<string, Map<string, string[]>>;

/**
 * Parses a unit file: comments (# ;), continuation lines (a trailing backslash), sections.
 * Assignments before the first section are ignored, as systemd does.
 */
export function parseUnitFile(text: string): UnitFile {
  const unit: UnitFile = new Map();
  let section: Map<string, string[]> | undefined;
  let pending: string | undefined;
  for (const physical of text.split('\n')) {
    const line = physical.replace(/\r$/, '');
    const trimmed = line.trim();
    if (pending !== undefined) {
      // Comment lines inside a continuation are skipped, as systemd does.
      if (trimmed.startsWith('#') || trimmed.startsWith(';')) continue;
      if (trimmed.endsWith('\\')) {
        pending += ` ${trimmed.slice(0, -1)}`;
        continue;
      }
      assign(section, `${pending} ${trimmed}`);
      pending = undefined;
      continue;
    }
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) continue;
    if (trimmed.startsWith('[') && trimmed.endsWith(']')) {
      const name = trimmed.slice(1, -1);
      section = unit.get(name) ?? new Map();
      unit.set(name, section);
      continue;
    }
    if (trimmed.endsWith('\\')) pending = trimmed.slice(0, -1);
    else assign(section, trimmed);
  }
  if (pending !== undefined) assign(section, pending);
  return unit;
}

function assign(section: Map<string, string[]> | undefined, line: string): void {
  const eq = line.indexOf('=');
  if (section === undefined || eq <= 0) return;
  const key = line.slice(0, eq).trim();
  const value = line.slice(eq + 1).trim();
  const list = section.get(key);
  if (list) list.push(value);
  else section.set(key, [value]);
}

/** The unit with its drop-ins applied in order: later assignments follow earlier ones. */
export function mergeUnitFiles(main: UnitFile, dropIns: readonly UnitFile[]): UnitFile {
  const out: UnitFile = new Map([...main].map(([s, keys]) => [s, new Map([...keys].map(([k, v]) => [k, [...v]]))]));
  for (const d of dropIns) {
    for (const [s, keys] of d) {
      const section = out.get(s) ?? new Map<string, string[]>();
      out.set(s, section);
      for (const [k, values] of keys) section.set(k, [...(section.get(k) ?? []), ...values]);
    }
  }
  return out;
}

/** The value of a single-valued setting: the last assignment wins. */
export function lastValue(unit: UnitFile, section: string, key: string): string | undefined {
  const v = unit.get(section)?.get(key);
  return v === undefined || v.length === 0 ? undefined : v[v.length - 1];
}

/** The words of a list setting: assignments add up, an empty assignment clears the list. */
export function listValue(unit: UnitFile, section: string, key: string): string[] {
  let out: string[] = [];
  for (const v of unit.get(section)?.get(key) ?? []) {
    if (v === '') out = [];
    else out.push(...splitWords(v).words);
  }
  return out;
}

/**
 * Drop-in files in force for unit `name`, in the order they apply: NAME.d/*.conf (and, for an
 * instance foo@bar.service, foo@.service.d first) from every unit directory, by file name; of
 * files with the same name the highest-priority directory's wins. `candidates` are absolute paths.
 */
export function selectDropIns(name: string, candidates: readonly string[]): string[] {
  const dirs = dropInDirNames(name);
  const byName = new Map<string, { path: string; rank: number; order: number }>();
  for (const path of candidates) {
    const m = /^(.*)\/([^/]+)\/([^/]+\.conf)$/.exec(path);
    if (!m) continue;
    const rank = (UNIT_DIRS as readonly string[]).indexOf(m[1]!);
    const order = dirs.indexOf(m[2]!);
    if (rank < 0 || order < 0) continue;
    const key = `${order}\0${m[3]}`;
    const seen = byName.get(key);
    if (!seen || rank < seen.rank) byName.set(key, { path, rank, order });
  }
  return [...byName.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, v]) => v.path);
}

/** NAME.d directories whose drop-ins apply to a unit, in order. */
export function dropInDirNames(name: string): string[] {
  const m = /^([^@]+)@([^.]*)\.([a-z]+)$/.exec(name);
  const template = m && m[2] !== '' ? `${m[1]}@.${m[3]}` : undefined;
  return template ? [`${template}.d`, `${name}.d`] : [`${name}.d`];
}

/** Unit names are NAME.TYPE; a bare name means a service. */
export function unitName(name: string): string {
  return /\.(service|socket|target|mount|timer|path|slice|scope|swap|device|automount)$/.test(name) ? name : `${name}.service`;
}

/** ExecStart= prefixes (systemd.service(5)): @ - : + ! !!. */
const EXEC_PREFIX = /^[@\-:+!]+/;
const SHELLS = /(^|\/)(sh|bash|dash|ash|busybox|zsh|ksh|mksh)$/;
/** Programs that run a script or class named after them: the script is what identifies a service. */
export const INTERPRETERS = /^(python[0-9.]*|pypy[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|java|php[0-9.]*|lua[0-9.]*|tclsh[0-9.]*|Rscript|sh|bash|dash|ash|zsh|ksh|mksh)$/;

/**
 * The programs a service's ExecStart= lines start: each line's executable; when that is a shell
 * running `-c SCRIPT`, the programs the script `exec`s; when it is another interpreter, the
 * script it runs (the first word after it that is not an option). As written (maybe relative).
 */
export function execStartPrograms(unit: UnitFile): string[] {
  const out: string[] = [];
  for (const line of unit.get('Service')?.get('ExecStart') ?? []) {
    if (line === '') continue;
    let words: string[];
    try {
      words = splitWords(line.replace(EXEC_PREFIX, '')).words;
    } catch {
      continue;
    }
    const program = words[0];
    if (program === undefined) continue;
    const c = words.indexOf('-c');
    if (SHELLS.test(program) && c > 0 && words[c + 1] !== undefined) {
      for (const m of words[c + 1]!.matchAll(/(?:^|[;&|({\s])exec\s+([^\s;&|)]+)/g)) out.push(m[1]!);
    } else if (INTERPRETERS.test(program.slice(program.lastIndexOf('/') + 1))) {
      const script = words.slice(1).find((w) => !w.startsWith('-'));
      if (script !== undefined) out.push(script);
    } else out.push(program);
  }
  return out;
}

/** The kinds of directories systemd creates for a service (systemd.exec(5), "RuntimeDirectory="). */
export const UNIT_DIRECTORY_SETTINGS = {
  RuntimeDirectory: '/run',
  StateDirectory: '/var/lib',
  CacheDirectory: '/var/cache',
  LogsDirectory: '/var/log',
  ConfigurationDirectory: '/etc',
} as const;

export type UnitDirectorySetting = keyof typeof UNIT_DIRECTORY_SETTINGS;

export interface UnitDirectory {
  setting: UnitDirectorySetting;
  /** Absolute path of the directory. */
  path: string;
  /** From SETTINGMode=, default 0755. */
  mode: number;
  /** Symlinks to the directory (the NAME:LINK form). */
  links: string[];
}

/** What a service unit asks systemd to prepare before it starts. */
export interface ServiceRuntime {
  directories: UnitDirectory[];
  user?: string;
  group?: string;
  dynamicUser: boolean;
  /** Values aim could not use, with why. */
  problems: string[];
}

const SAFE_RELATIVE = /^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[^\0]+$/;

/** The directories, modes and user of a service, with `%n`-style specifiers of the unit resolved. */
export function serviceRuntime(unit: UnitFile, name: string): ServiceRuntime {
  const problems: string[] = [];
  const directories: UnitDirectory[] = [];
  const spec = unitSpecifiers(name);
  for (const [setting, base] of Object.entries(UNIT_DIRECTORY_SETTINGS) as [UnitDirectorySetting, string][]) {
    let values: string[];
    try {
      values = listValue(unit, 'Service', setting);
    } catch (e) {
      problems.push(`${setting}=: ${(e as Error).message}`);
      continue;
    }
    const modeText = lastValue(unit, 'Service', `${setting}Mode`);
    let mode = 0o755;
    if (modeText !== undefined) {
      if (/^[0-7]{1,4}$/.test(modeText)) mode = parseInt(modeText, 8);
      else problems.push(`${setting}Mode=${modeText}: not an octal mode, 0755 used`);
    }
    for (const value of values) {
      let expanded: string;
      try {
        expanded = value.replace(/%(.)?/g, (_m, c: string | undefined) => {
          const v = c === undefined ? undefined : spec[c];
          if (v === undefined) throw new Error(`specifier %${c ?? ''} is not supported`);
          return v;
        });
      } catch (e) {
        problems.push(`${setting}=${value}: ${(e as Error).message}`);
        continue;
      }
      const [dir, ...links] = expanded.split(':');
      const bad = [dir!, ...links].find((p) => !SAFE_RELATIVE.test(p.replace(/\/+$/, '')));
      if (bad !== undefined) {
        problems.push(`${setting}=${value}: "${bad}" is not a relative path below ${base}`);
        continue;
      }
      const clean = (p: string) => `${base}/${p.replace(/\/+$/, '').replace(/\/+/g, '/')}`;
      directories.push({ setting, path: clean(dir!), mode, links: links.map(clean) });
    }
  }
  const out: ServiceRuntime = { directories, dynamicUser: /^(yes|true|on|1)$/i.test(lastValue(unit, 'Service', 'DynamicUser') ?? ''), problems };
  const user = lastValue(unit, 'Service', 'User');
  const group = lastValue(unit, 'Service', 'Group');
  if (user !== undefined && user !== '') out.user = user;
  if (group !== undefined && group !== '') out.group = group;
  return out;
}

/** Specifiers of a unit's own name (systemd.unit(5), "Specifiers"). */
function unitSpecifiers(name: string): Record<string, string> {
  const dot = name.lastIndexOf('.');
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const at = stem.indexOf('@');
  const prefix = at >= 0 ? stem.slice(0, at) : stem;
  const instance = at >= 0 ? stem.slice(at + 1) : '';
  return { '%': '%', n: name, N: stem, p: prefix, P: prefix, i: instance, I: instance, j: prefix.slice(prefix.lastIndexOf('-') + 1), J: prefix.slice(prefix.lastIndexOf('-') + 1) };
}

/**
 * tmpfiles.d(5) configuration, parsed: which files are in force (override by file name) and
 * what each line asks for. Pure: text in, lines and problems out.
 */
import { splitWords, unescapeC } from './words.js';

/** Directories systemd-tmpfiles reads, highest priority first (a file name in an earlier one masks the later ones). */
export const TMPFILES_DIRS = ['/etc/tmpfiles.d', '/run/tmpfiles.d', '/usr/local/lib/tmpfiles.d', '/usr/lib/tmpfiles.d', '/lib/tmpfiles.d'] as const;

export interface TmpfilesMode {
  value: number;
  /** "~": masked by the existing mode (bits only taken away). */
  masked: boolean;
  /** ":": applied when the path is created, never to an existing one. */
  createOnly: boolean;
}

/** One configuration line. `undefined` fields were "-" or absent. */
export interface TmpfilesLine {
  file: string;
  /** 1-based, of the line's first physical line. */
  line: number;
  /** The type letter (d, D, f, L, z …). */
  type: string;
  /** Modifier characters after the letter (+ ! - = ~ ^ ?). */
  modifiers: string;
  path: string;
  mode?: TmpfilesMode;
  user?: string;
  group?: string;
  age?: string;
  argument?: string;
}

export interface TmpfilesProblem {
  file: string;
  line: number;
  message: string;
}

const MODIFIERS = new Set(['+', '!', '-', '=', '~', '^', '?', '$']);

/**
 * Specifiers valid in a system tmpfiles.d line whose value does not depend on the machine. The
 * others (%m machine id, %b boot id, %H host name, %v kernel …) make the line unplannable.
 */
const SPECIFIERS: Record<string, string> = {
  '%': '%',
  t: '/run',
  S: '/var/lib',
  C: '/var/cache',
  L: '/var/log',
  T: '/tmp',
  V: '/var/tmp',
  E: '/etc',
  h: '/root',
  u: 'root',
  U: '0',
  g: 'root',
  G: '0',
};

/** Replaces %x specifiers; throws with the unknown one. */
export function expandSpecifiers(text: string, extra: Record<string, string> = {}): string {
  return text.replace(/%(.)?/g, (_m, c: string | undefined) => {
    const v = c === undefined ? undefined : (extra[c] ?? SPECIFIERS[c]);
    if (v === undefined) throw new Error(`specifier %${c ?? ''} cannot be resolved without a running system`);
    return v;
  });
}

function parseMode(text: string): TmpfilesMode | undefined {
  let t = text;
  let masked = false;
  let createOnly = false;
  for (;;) {
    if (t.startsWith('~')) masked = true;
    else if (t.startsWith(':')) createOnly = true;
    else break;
    t = t.slice(1);
  }
  if (!/^[0-7]{1,4}$/.test(t)) return undefined;
  return { value: parseInt(t, 8), masked, createOnly };
}

const field = (w: string | undefined): string | undefined => (w === undefined || w === '-' ? undefined : w);

/** Parses one tmpfiles.d file. Lines it cannot read are problems, never errors. */
export function parseTmpfiles(text: string, file: string): { lines: TmpfilesLine[]; problems: TmpfilesProblem[] } {
  const lines: TmpfilesLine[] = [];
  const problems: TmpfilesProblem[] = [];
  const physical = text.split('\n');
  for (let i = 0; i < physical.length; i++) {
    const n = i + 1;
    const raw = physical[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const problem = (message: string) => problems.push({ file, line: n, message });
    let words: string[];
    let rest: string | undefined;
    try {
      ({ words, rest } = splitWords(raw, 6));
    } catch (e) {
      problem((e as Error).message);
      continue;
    }
    const [typeWord, path, mode, user, group, age] = words;
    if (typeWord === undefined || path === undefined) {
      problem('a line needs at least a type and a path');
      continue;
    }
    const type = typeWord[0]!;
    const modifiers = typeWord.slice(1);
    if (!/^[A-Za-z]$/.test(type) || [...modifiers].some((m) => !MODIFIERS.has(m))) {
      problem(`"${typeWord}" is not a tmpfiles.d type`);
      continue;
    }
    const parsed: TmpfilesLine = { file, line: n, type, modifiers, path };
    const m = field(mode);
    if (m !== undefined) {
      const pm = parseMode(m);
      if (!pm) {
        problem(`"${m}" is not a file mode`);
        continue;
      }
      parsed.mode = pm;
    }
    if (field(user) !== undefined) parsed.user = user;
    if (field(group) !== undefined) parsed.group = group;
    if (field(age) !== undefined) parsed.age = age;
    if (rest !== undefined && rest !== '' && rest !== '-') parsed.argument = unescapeC(rest);
    lines.push(parsed);
  }
  return { lines, problems };
}

/**
 * The configuration files in force, in the order systemd-tmpfiles reads them (by file name): of
 * files with the same name, the one in the highest-priority directory wins. `candidates` are
 * absolute paths in any of {@link TMPFILES_DIRS}; only *.conf files count.
 */
export function selectTmpfiles(candidates: readonly string[]): string[] {
  const byName = new Map<string, { path: string; rank: number }>();
  for (const path of candidates) {
    const slash = path.lastIndexOf('/');
    const dir = path.slice(0, slash);
    const name = path.slice(slash + 1);
    const rank = (TMPFILES_DIRS as readonly string[]).indexOf(dir);
    if (rank < 0 || !name.endsWith('.conf')) continue;
    const seen = byName.get(name);
    if (!seen || rank < seen.rank) byName.set(name, { path, rank });
  }
  return [...byName.keys()].sort().map((name) => byName.get(name)!.path);
}

/**
 * The lexical layer of strace output: one line of `strace -f -ttt -y -o FILE` into pid, time and
 * either a syscall (name, raw argument texts, return value) or a notice (exit, unfinished,
 * resumed). Knows nothing about what syscalls mean; see strace-parser.ts for that.
 */

export interface SyscallReturn {
  /** The numeric value, undefined when strace printed `?` (process died in the call). */
  value?: number;
  /** `-1 ENOENT (…)` gives 'ENOENT'; also set for `? ERESTARTSYS (…)`. */
  errno?: string;
  /** `-y` decoration of a returned fd: `3</etc/passwd>` gives '/etc/passwd' (still escaped). */
  fdPath?: string;
  /** `--pidns-translation`: `2 /* 15906 in strace's PID NS *\/` gives 15906. */
  translatedPid?: number;
}

export type LineBody =
  | { kind: 'call'; name: string; text: string }
  | { kind: 'unfinished'; name: string; text: string }
  | { kind: 'resumed'; name: string; text: string }
  | { kind: 'exit'; detail: string }
  | { kind: 'other' };

export interface TraceLine {
  pid: number;
  /** Seconds: since the epoch with -ttt, since midnight with -tt, 0 without a timestamp. */
  time: number;
  body: LineBody;
}

const LINE = /^(\d+)\s+(?:(\d+\.\d+|\d+|\d\d:\d\d:\d\d(?:\.\d+)?)\s+)?(.*)$/;
const UNFINISHED = ' <unfinished ...>';

function parseTime(t: string | undefined): number {
  if (t === undefined) return 0;
  if (t.includes(':')) {
    const [h, m, s] = t.split(':');
    return Number(h) * 3600 + Number(m) * 60 + Number(s);
  }
  return Number(t);
}

/** One line of strace output; undefined for lines that are not pid-prefixed trace lines. */
export function parseLine(line: string): TraceLine | undefined {
  const m = LINE.exec(line.replace(/\r$/, ''));
  if (!m) return undefined;
  const pid = Number(m[1]);
  const time = parseTime(m[2]);
  const rest = m[3]!;
  if (rest.startsWith('+++ ')) return { pid, time, body: { kind: 'exit', detail: rest.slice(4, -4).trim() } };
  if (rest.startsWith('<... ')) {
    const r = /^<\.\.\. ([A-Za-z0-9_]+) resumed>(.*)$/.exec(rest);
    if (!r) return { pid, time, body: { kind: 'other' } };
    const text = r[2]!;
    // A call can be interrupted twice (resumed, then unfinished again while the process dies).
    if (text.endsWith(UNFINISHED)) return { pid, time, body: { kind: 'other' } };
    return { pid, time, body: { kind: 'resumed', name: r[1]!, text } };
  }
  const n = /^([A-Za-z0-9_]+)\(/.exec(rest);
  if (!n) return { pid, time, body: { kind: 'other' } };
  if (rest.endsWith(UNFINISHED)) {
    return { pid, time, body: { kind: 'unfinished', name: n[1]!, text: rest.slice(0, -UNFINISHED.length) } };
  }
  return { pid, time, body: { kind: 'call', name: n[1]!, text: rest } };
}

/** Index just past a quoted string starting at `i` (which holds '"'), honouring escapes. */
function skipString(s: string, i: number): number {
  let j = i + 1;
  while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
  j += 1;
  if (s.startsWith('...', j)) j += 3;
  return j;
}

/** Index just past a `<…>` decoration starting at `i`; '>' inside is printed escaped (\76). */
function skipDecoration(s: string, i: number): number {
  let j = i + 1;
  while (j < s.length && s[j] !== '>') j += s[j] === '\\' ? 2 : 1;
  return j + 1;
}

/**
 * Splits `name(a, {b, c}, "d,e") = ret` into the top-level argument texts and the return text.
 * Strings, `-y` decorations (which may hold unescaped commas and parentheses), nested brackets
 * and comments are skipped as units.
 */
export function splitCall(text: string): { args: string[]; ret: string } | undefined {
  const open = text.indexOf('(');
  if (open < 0) return undefined;
  const args: string[] = [];
  let depth = 0;
  let start = open + 1;
  let i = open + 1;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      i = skipString(text, i);
      continue;
    }
    if (c === '<') {
      i = skipDecoration(text, i);
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (c === ')') {
      if (depth === 0) {
        const last = text.slice(start, i).trim();
        if (last !== '' || args.length > 0) args.push(last);
        const after = text.slice(i + 1).trim();
        if (!after.startsWith('=')) return undefined;
        return { args, ret: after.slice(1).trim() };
      }
      depth--;
    } else if (c === ',' && depth === 0) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
    i++;
  }
  return undefined;
}

/** `0`, `3</etc/passwd>`, `-1 ENOENT (No such file…)`, `? <unavailable>`, `2 /* 15 in strace's PID NS *\/`. */
export function parseReturn(ret: string): SyscallReturn {
  const out: SyscallReturn = {};
  const m = /^(-?\d+|0x[0-9a-fA-F]+|\?)/.exec(ret);
  if (!m) return out;
  if (m[1] !== '?') out.value = Number(m[1]);
  let rest = ret.slice(m[1]!.length);
  if (rest.startsWith('<')) {
    const end = skipDecoration(rest, 0);
    out.fdPath = rest.slice(1, end - 1);
    rest = rest.slice(end);
  }
  rest = rest.trim();
  const errno = /^([A-Z][A-Z0-9_]+)\b/.exec(rest);
  if (errno) out.errno = errno[1];
  const translated = /\/\* (\d+) in strace's PID NS \*\//.exec(rest);
  if (translated) out.translatedPid = Number(translated[1]);
  return out;
}

const SIMPLE_ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, v: 11, f: 12, a: 7, b: 8, e: 27, '\\': 92, '"': 34, "'": 39, '?': 63 };

/** Decodes strace's escaped text (octal, \xNN, \n, \" …) to the raw bytes it stands for. */
export function decodeEscaped(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 92 || i + 1 >= s.length) {
      if (c < 0x80) out.push(c);
      else for (const b of Buffer.from(s[i]!, 'utf8')) out.push(b);
      continue;
    }
    const n = s[i + 1]!;
    if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) {
      out.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else if (n >= '0' && n <= '7') {
      const oct = /^[0-7]{1,3}/.exec(s.slice(i + 1))![0];
      out.push(parseInt(oct, 8) & 0xff);
      i += oct.length;
    } else if (n in SIMPLE_ESCAPES) {
      out.push(SIMPLE_ESCAPES[n]!);
      i += 1;
    } else {
      out.push(92);
    }
  }
  return Buffer.from(out);
}

/**
 * A string argument: `"…"` gives its bytes; `"…"...` (cut by -s) and anything else (NULL, an
 * address strace could not read) give undefined.
 */
export function parseStringArg(arg: string | undefined): Buffer | undefined {
  if (arg === undefined || !arg.startsWith('"')) return undefined;
  let close = 1;
  while (close < arg.length && arg[close] !== '"') close += arg[close] === '\\' ? 2 : 1;
  if (close >= arg.length || arg.slice(close + 1).startsWith('...')) return undefined;
  return decodeEscaped(arg.slice(1, close));
}

/** A file-descriptor argument: `AT_FDCWD`, `AT_FDCWD</cwd>`, `3</etc>`, `3`. */
export function parseFdArg(arg: string | undefined): { fd: number | 'AT_FDCWD'; path?: string } | undefined {
  if (arg === undefined) return undefined;
  const m = /^(AT_FDCWD|-?\d+)(?:<(.*)>)?$/s.exec(arg);
  if (!m) return undefined;
  return { fd: m[1] === 'AT_FDCWD' || m[1] === '-100' ? 'AT_FDCWD' : Number(m[1]), path: m[2] };
}

/**
 * Globs over absolute image paths, compiled to regular expressions.
 *
 *  - `*` matches any run of characters within one path component, `?` one character, `[a-z]`,
 *    `[!a-z]` / `[^a-z]` a character class, `\x` the character x. None of them matches "/".
 *  - `**` as a whole component matches zero or more components: "/usr/share/doc/**" is the
 *    directory and everything below it, "/usr/lib/**\/*.pyc" every .pyc under /usr/lib.
 *  - Leading dots are not special: "*" matches ".hidden".
 *  - A pattern not starting with "/" matches at any depth ("*.pyc" is "/**\/*.pyc").
 *  - A trailing "/" restricts the pattern to directories (`dirOnly`).
 *
 * Written here rather than using node's path.matchesGlob, which is experimental on Node 20 and
 * warns at run time, and whose `**` and dot-file rules differ between versions.
 */
export interface Glob {
  /** The pattern as written. */
  pattern: string;
  /** The pattern made absolute ("*.pyc" → "/**\/*.pyc"), without a trailing "/". */
  absolute: string;
  dirOnly: boolean;
  /** Leading components without wildcards, as a directory path ("/usr/lib" for "/usr/lib/python3*"). */
  literalDir: string;
  /** The components after `literalDir`. */
  rest: string[];
  regex: RegExp;
}

const WILD = /[*?[\\]/;

export function compileGlob(pattern: string): Glob {
  let p = pattern.trim();
  const dirOnly = p.length > 1 && p.endsWith('/');
  p = p.replace(/\/+$/, '');
  if (!p.startsWith('/')) p = p.startsWith('**/') || p === '**' ? `/${p}` : `/**/${p}`;
  // "**/**" means the same as "**", and consecutive ones would make the regex backtrack.
  const comps = p.split('/').filter((c, i, all) => c !== '' && !(c === '**' && all[i - 1] === '**'));
  let literal = 0;
  // The last component stays in `rest` so a literal pattern still names its own entry.
  while (literal < comps.length - 1 && !WILD.test(comps[literal]!)) literal++;
  const absolute = comps.length === 0 ? '/' : `/${comps.join('/')}`;
  return {
    pattern,
    absolute,
    dirOnly,
    literalDir: literal === 0 ? '/' : `/${comps.slice(0, literal).join('/')}`,
    rest: comps.slice(literal),
    regex: globRegex(comps),
  };
}

/** The same glob with its literal directory replaced (to follow /lib → /usr/lib). */
export function rebaseGlob(glob: Glob, literalDir: string): Glob {
  const comps = [...literalDir.split('/').filter((c) => c !== ''), ...glob.rest];
  return {
    ...glob,
    absolute: comps.length === 0 ? '/' : `/${comps.join('/')}`,
    literalDir,
    regex: globRegex(comps),
  };
}

function globRegex(comps: string[]): RegExp {
  let re = '';
  for (const c of comps) re += c === '**' ? '(?:/[^/]+)*' : `/${componentRegex(c)}`;
  return new RegExp(`^${re === '' ? '/' : re}$`);
}

function componentRegex(c: string): string {
  let out = '';
  for (let i = 0; i < c.length; i++) {
    const ch = c[i]!;
    if (ch === '*') {
      while (c[i + 1] === '*') i++;
      out += '[^/]*';
    } else if (ch === '?') out += '[^/]';
    else if (ch === '\\' && i + 1 < c.length) out += escapeRegex(c[++i]!);
    else if (ch === '[') {
      const end = classEnd(c, i);
      if (end === -1) out += '\\[';
      else {
        let body = c.slice(i + 1, end);
        let negate = false;
        if (body.startsWith('!') || body.startsWith('^')) {
          negate = true;
          body = body.slice(1);
        }
        const escaped = body.replace(/[\\\]^[]/g, (m) => `\\${m}`);
        out += negate ? `[^/${escaped}]` : `[${escaped}]`;
        i = end;
      }
    } else out += escapeRegex(ch);
  }
  return out;
}

/** Index of the "]" closing the class opened at `start`, or -1. A "]" first in the class is literal. */
function classEnd(c: string, start: number): number {
  let j = start + 1;
  if (c[j] === '!' || c[j] === '^') j++;
  if (c[j] === ']') j++;
  const end = c.indexOf(']', j);
  return end;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** True when the absolute `path` matches the glob (ignoring `dirOnly`, which needs the entry type). */
export function matchesGlob(glob: Glob, path: string): boolean {
  return glob.regex.test(path);
}

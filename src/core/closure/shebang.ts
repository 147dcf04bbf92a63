/**
 * "#!" lines as the kernel reads them (binfmt_script): the interpreter is the first word after
 * "#!", everything after it up to the end of the line is one optional argument. `env` is then
 * followed through its own argument syntax to the command it runs.
 */

/** Bytes the kernel reads for the "#!" line (BINPRM_BUF_SIZE since Linux 5.1). */
export const SHEBANG_BYTES = 256;

export interface Shebang {
  interpreter: string;
  arg?: string;
}

export function parseShebang(head: Buffer): Shebang | undefined {
  if (head.length < 3 || head[0] !== 0x23 || head[1] !== 0x21) return undefined;
  const nl = head.indexOf(0x0a);
  const line = head
    .subarray(2, nl === -1 ? Math.min(head.length, SHEBANG_BYTES) : Math.min(nl, SHEBANG_BYTES))
    .toString('utf8')
    .replace(/\r$/, '')
    .trim();
  const m = /^(\S+)(?:[ \t]+(.*))?$/.exec(line);
  if (!m) return undefined;
  const arg = m[2]?.trim();
  return arg === undefined || arg === '' ? { interpreter: m[1]! } : { interpreter: m[1]!, arg };
}

/** True when the interpreter is env(1), whose argument names the real interpreter. */
export function isEnv(interpreter: string): boolean {
  return /(^|\/)env$/.test(interpreter);
}

/**
 * The command env runs, from its (single, kernel-delivered) argument: skips options
 * (-i, -u NAME, -C DIR, -S splitting, --long=value) and NAME=value assignments.
 */
export function envCommand(arg: string | undefined): string | undefined {
  if (arg === undefined) return undefined;
  const words = arg.split(/[ \t]+/).filter((w) => w !== '');
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--') return words[i + 1];
    if (w === '-u' || w === '-C' || w === '--unset' || w === '--chdir') {
      i++;
      continue;
    }
    // "-S" may carry the rest glued on ("-Spython3 -u"); "-vS" groups too.
    const glued = /^-[a-zA-Z]*S(.+)$/.exec(w);
    if (glued) return glued[1]!.split(/\s+/)[0];
    if (w.startsWith('-')) continue;
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(w)) continue;
    return w;
  }
  return undefined;
}

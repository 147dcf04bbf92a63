/**
 * A runtime state plan as busybox sh lines, for aim's init in a booted image: run after /run and
 * /tmp are mounted and before the entrypoint starts. Inside the booted system the image is the
 * root, so its symlinks lead where they should. A failing line prints a notice and the rest go on.
 */
import { DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, type RuntimeAction, type RuntimePerms } from './plan.js';

/** Single-quotes a word for sh. */
function q(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

const octal = (m: number) => m.toString(8).padStart(4, '0');

/** Bytes as a printf format: printable ASCII as is (% and \ escaped), the rest as \ooo. */
function printfFormat(bytes: Buffer): string {
  let out = '';
  for (const [i, b] of bytes.entries()) {
    // A leading "-" would read as an option.
    if (b === 0x2d && i === 0) out += '\\055';
    else if (b === 0x25) out += '%%';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\${b.toString(8).padStart(3, '0')}`;
  }
  return out;
}

/** "U:G", "U" or ":G" for chown, "-" when the owner is left alone; a new path defaults to root's. */
function owner(p: RuntimePerms, created: boolean): string {
  if (created) return `${p.uid ?? 0}:${p.gid ?? 0}`;
  if (p.uid === undefined && p.gid === undefined) return '-';
  return p.gid === undefined ? `${p.uid}` : `${p.uid ?? ''}:${p.gid}`;
}

/**
 * Shell functions the lines call, with $B the busybox binary. Arguments: path, mode on creation,
 * owner on creation, mode and owner for an existing path ("-": leave it).
 */
export const RUNTIME_FUNCTIONS = `aim_perm() { [ "$3" = - ] || $B chown "$3" "$1" || return; [ "$2" = - ] || $B chmod "$2" "$1"; }
aim_dir() {
  if [ -d "$1" ]; then aim_perm "$1" "$4" "$5"; return; fi
  $B mkdir -p "$1" && aim_perm "$1" "$2" "$3"
}
aim_file() {
  if [ -e "$1" ] && [ "$6" != truncate ]; then aim_perm "$1" "$4" "$5"; return; fi
  [ -e "$1" ] && new=0 || new=1
  $B mkdir -p "\${1%/*}" && printf "$7" > "$1" || return
  if [ $new = 1 ]; then aim_perm "$1" "$2" "$3"; else aim_perm "$1" "$4" "$5"; fi
}
aim_link() {
  if [ -e "$1" ] || [ -L "$1" ]; then [ "$3" = replace ] && [ ! -d "$1" ] || return 0; $B rm -f "$1"; fi
  $B mkdir -p "\${1%/*}" && $B ln -s "$2" "$1"
}
aim_adjust() {
  [ -e "$1" ] || return 0
  if [ "$4" = recursive ]; then
    [ "$3" = - ] || $B chown -R "$3" "$1" || return
    [ "$2" = - ] || $B chmod -R "$2" "$1"
  else aim_perm "$1" "$2" "$3"; fi
}`;

/** One sh line per action, in plan order; each reports its failure and never stops the init. */
export function runtimeShellLines(actions: readonly RuntimeAction[]): string[] {
  return actions.map((a) => {
    const path = q(a.path);
    let line: string;
    switch (a.kind) {
      case 'dir': {
        const existing = a.createOnly ? '- -' : `${a.mode === undefined ? '-' : octal(a.mode)} ${owner(a, false)}`;
        line = `aim_dir ${path} ${octal(a.mode ?? DEFAULT_DIR_MODE)} ${owner(a, true)} ${existing}`;
        break;
      }
      case 'file': {
        const existing = a.createOnly ? '- -' : `${a.mode === undefined ? '-' : octal(a.mode)} ${owner(a, false)}`;
        const content = q(printfFormat(Buffer.from(a.content ?? '', 'base64')));
        line = `aim_file ${path} ${octal(a.mode ?? DEFAULT_FILE_MODE)} ${owner(a, true)} ${existing} ${a.truncate ? 'truncate' : 'keep'} ${content === '' ? "''" : content}`;
        break;
      }
      case 'symlink':
        line = `aim_link ${path} ${q(a.target)} ${a.replace ? 'replace' : 'keep'}`;
        break;
      case 'adjust':
        line = `aim_adjust ${path} ${a.mode === undefined ? '-' : octal(a.mode)} ${owner(a, false)} ${a.recursive ? 'recursive' : 'one'}`;
        break;
    }
    return `${line} || echo ${q(`aim: could not prepare ${a.path}`)}`;
  });
}

/** The whole fragment for the init: functions and lines, or nothing for an empty plan. */
export function runtimeShell(actions: readonly RuntimeAction[]): string {
  if (actions.length === 0) return '';
  return `# runtime state (tmpfiles.d and the service's directories), planned by aim at build time\n${RUNTIME_FUNCTIONS}\n${runtimeShellLines(actions).join('\n')}\n`;
}

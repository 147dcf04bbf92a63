import { readFileSync } from 'node:fs';
import { AimError, ExitCode, InternalError, errnoCode, isAimError } from './errors.js';

/** What Node's system errors carry besides `code`: the call that failed and the paths it named. */
interface SystemErrorFields {
  code: string;
  syscall?: string;
  path?: string;
  dest?: string;
  message: string;
}

interface Mapping {
  code: string;
  exitCode: number;
  /** What happened, in words (the errno's name follows in parentheses). */
  what: string;
  /** What to do; `where` is the path the call named, or "the output or repository directory". */
  hint: (where: string, e: SystemErrorFields) => string;
}

const space: Mapping = {
  code: 'E_NO_SPACE',
  exitCode: ExitCode.system,
  what: 'no space left on the device',
  hint: (where) => `free space on the filesystem of ${where} (df -h), or give --repo/--out on a larger one, then run the command again`,
};
const access: Mapping = {
  code: 'E_ACCESS_DENIED',
  exitCode: ExitCode.permission,
  what: 'permission denied',
  hint: (where) => `check the owner and mode of ${where} and its parent directories (ls -ld), or run as a user who may write there`,
};
const files: Mapping = {
  code: 'E_TOO_MANY_OPEN_FILES',
  exitCode: ExitCode.system,
  what: 'too many open files',
  hint: () => {
    const limit = openFileLimit();
    return `raise the limit of open files (ulimit -n${limit ? `, now ${limit}` : ''}) or close other programs, then run the command again`;
  },
};

/**
 * Node system errors (errno codes) → aim error codes. They reach the top level when the machine,
 * not the input, stops a command: a full disk, a read-only mount, a path through a file.
 */
export const SYSTEM_ERRORS: Readonly<Record<string, Mapping>> = {
  ENOSPC: space,
  EDQUOT: { ...space, what: 'disk quota exceeded', hint: (where) => `free space within your quota on the filesystem of ${where} (quota -s), or use another --repo/--out` },
  EFBIG: { ...space, code: 'E_FILE_TOO_LARGE', what: 'file too large for the filesystem or the limit of file sizes', hint: (where) => `write ${where} to a filesystem that holds large files (not FAT), or raise ulimit -f` },
  EACCES: access,
  EPERM: { ...access, what: 'operation not permitted', hint: (where) => `this needs privileges on ${where} that the process lacks: run as root (sudo), or check the file's attributes (lsattr)` },
  EROFS: {
    code: 'E_READ_ONLY',
    exitCode: ExitCode.permission,
    what: 'read-only filesystem',
    hint: (where) => `${where} is on a read-only filesystem: give --repo/--out on a writable one (or remount it read-write)`,
  },
  EMFILE: files,
  ENFILE: { ...files, what: 'too many open files in the system', hint: () => 'the whole system ran out of file handles (fs.file-max): close other programs, then run the command again' },
  ENOTDIR: {
    code: 'E_NOT_A_DIRECTORY',
    exitCode: ExitCode.usage,
    what: 'not a directory',
    hint: (where) => `a part of ${where} is a file, not a directory: check the path`,
  },
  EISDIR: { code: 'E_IS_A_DIRECTORY', exitCode: ExitCode.usage, what: 'is a directory', hint: (where) => `${where} is a directory where a file was expected: check the path` },
  ENAMETOOLONG: { code: 'E_NAME_TOO_LONG', exitCode: ExitCode.usage, what: 'file name too long', hint: (where) => `shorten ${where} (a name is at most 255 bytes, a path 4096)` },
  ELOOP: { code: 'E_SYMLINK_LOOP', exitCode: ExitCode.usage, what: 'too many levels of symbolic links', hint: (where) => `${where} goes through a symbolic link loop: check the links (namei -l)` },
  ENOENT: { code: 'E_NOT_FOUND', exitCode: ExitCode.notFound, what: 'no such file or directory', hint: (where) => `check that ${where} exists` },
  EEXIST: { code: 'E_EXISTS', exitCode: ExitCode.usage, what: 'file exists', hint: (where) => `${where} is in the way: remove it or choose another path` },
  EXDEV: { code: 'E_CROSS_DEVICE', exitCode: ExitCode.system, what: 'cross-device link', hint: (where) => `${where} must be on the same filesystem as the repository` },
  EIO: { code: 'E_IO', exitCode: ExitCode.system, what: 'input/output error', hint: (where) => `the device under ${where} failed: check it (dmesg, smartctl) before running again` },
  ENOMEM: { code: 'E_NO_MEMORY', exitCode: ExitCode.system, what: 'out of memory', hint: () => 'free memory (or raise the limit of this process), then run the command again' },
  EBUSY: { code: 'E_DEVICE_BUSY', exitCode: ExitCode.system, what: 'device or resource busy', hint: (where) => `${where} is in use (a mount, another process: fuser -vm): free it and run again` },
};

/** The soft limit of open files, when it can still be read (EMFILE may forbid even that). */
function openFileLimit(): string | undefined {
  // /proc/self/limits: "Max open files            1024                 1048576              files"
  try {
    return /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * SQLite's result codes for the same conditions (better-sqlite3's SqliteError.code), by prefix:
 * SQLITE_IOERR_WRITE is an SQLITE_IOERR. The catalog turns a failed open into the errno behind it.
 */
const SQLITE_ERRORS: [string, Mapping][] = [
  ['SQLITE_FULL', space],
  ['SQLITE_READONLY', SYSTEM_ERRORS.EROFS!],
  ['SQLITE_IOERR', SYSTEM_ERRORS.EIO!],
  ['SQLITE_CANTOPEN', { code: 'E_CATALOG_UNAVAILABLE', exitCode: ExitCode.system, what: 'the catalog cannot be opened', hint: (where) => `check that ${where} exists and is readable and writable (ls -l)` }],
];

function mappingOf(code: string): Mapping | undefined {
  return Object.hasOwn(SYSTEM_ERRORS, code) ? SYSTEM_ERRORS[code] : SQLITE_ERRORS.find(([prefix]) => code === prefix || code.startsWith(`${prefix}_`))?.[1];
}

/**
 * An AimError for a Node system error (or SQLite's like it) aim knows, with a hint; undefined for
 * anything else. `where` names the place when the error carries no path (a failed write): the
 * command's repository or output directory.
 */
export function systemError(e: unknown, where?: string): AimError | undefined {
  const code = errnoCode(e);
  if (code === undefined || !(e instanceof Error)) return undefined;
  const mapping = mappingOf(code);
  if (!mapping) return undefined;
  const fields = e as Error & Partial<SystemErrorFields>;
  const paths = [fields.path, fields.dest].filter((p): p is string => typeof p === 'string');
  const call = fields.syscall ? ` (${fields.syscall}${paths.length ? ` ${paths.join(' → ')}` : ''})` : paths.length ? ` (${paths.join(' → ')})` : '';
  return new AimError(mapping.code, `${mapping.what} [${code}]${call}`, mapping.exitCode, {
    hint: mapping.hint(paths[0] ?? where ?? 'the repository or output directory', fields as SystemErrorFields),
    cause: e,
  });
}

/**
 * What the top level reports for any error: an AimError as it is, a known system error mapped,
 * anything else as an internal error (a bug) with its message, never Node's raw object.
 */
export function toAimError(e: unknown, where?: string): AimError {
  if (isAimError(e)) return e;
  const mapped = systemError(e, where);
  if (mapped) return mapped;
  const message = e instanceof Error ? e.message : String(e);
  return new InternalError(`${errnoCode(e) ? `[${errnoCode(e)}] ` : ''}${message}`, {
    cause: e,
    hint: 'this is a bug in aim: run again with DEBUG=aim:* and report the output',
  });
}

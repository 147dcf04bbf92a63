import type { Reporter } from '../../lib/reporter.js';
import type { ElfFacts } from '../analyze/elf.js';
import type { Entry } from '../model/entry.js';
import type { RecordedRuntime } from '../runtime/for-image.js';
import type { RuntimeAction } from '../runtime/plan.js';

/**
 * Why a path is kept (or was asked for). Kinds with `of` point at the path that caused this one,
 * so explanations can be followed back to a seed: a library is `needed` by an executable that
 * was `traced`.
 */
export type Reason =
  /** The workload touched the path under the tracer. */
  | { kind: 'traced'; syscall: string; pid?: number }
  /** Declared entrypoint (command, service ExecStart). */
  | { kind: 'entrypoint' }
  /** PT_INTERP of the ELF file `of`: the kernel maps it during execve, strace never shows it. */
  | { kind: 'interp'; of: string }
  /** DT_NEEDED `soname` of the ELF file `of`, found the way ld.so searches. */
  | { kind: 'needed'; of: string; soname: string }
  /** Listed in /etc/ld.so.preload (`of`): ld.so loads it into every program. */
  | { kind: 'preload'; of: string }
  /** Interpreter (or `env` and the command it runs) named by the `#!` line of script `of`. */
  | { kind: 'shebang'; of: string }
  /** A symlink on the way to `of` (a directory link such as /lib → usr/lib, or a link in a chain). */
  | { kind: 'symlink'; of: string }
  /** A directory on the way to `of`. */
  | { kind: 'parent'; of: string }
  /** The file entry holding the content of hardlink `of`. */
  | { kind: 'hardlink'; of: string }
  /** A libc configuration file (nsswitch.conf, ld.so.preload) read by the libc `of`. */
  | { kind: 'config'; file: string; of?: string }
  /**
   * NSS: the module library of `module` (libnss_<module>.so.2), or, with `db`, the file the
   * "files" or "dns" service reads for that database (/etc/hosts, /etc/resolv.conf). `of` is the libc.
   */
  | { kind: 'nss'; module: string; db?: string; of?: string }
  /** gconv configuration or module used by iconv in the libc `of`. */
  | { kind: 'gconv'; of?: string }
  /** /etc/ld.so.cache, read by ld.so `of` to find libraries. */
  | { kind: 'ld-cache'; of?: string }
  /** CA certificates for the TLS library `of`. */
  | { kind: 'tls-ca'; of?: string }
  /** Time zone data: /etc/localtime and its zoneinfo target, or the whole zoneinfo tree by rule. */
  | { kind: 'tzdata' }
  /** passwd/group database holding the user the workload runs as (`why`: how it comes to, default "runs as"). */
  | { kind: 'user'; name: string; why?: string }
  /** group/gshadow database holding a group the workload switched to or a planned path belongs to. */
  | { kind: 'group'; name: string; why: string }
  /** A tmpfiles.d file whose line `line` creates `creates`, a path the workload used. */
  | { kind: 'tmpfiles'; line: number; creates: string }
  /** A path the runtime state plan creates (`by`: the tmpfiles.d line or unit setting), kept as the gold image has it. */
  | { kind: 'runtime'; by: string }
  /** A file of a package kept whole by rule. */
  | { kind: 'package'; name: string }
  /** Matches a keep glob. */
  | { kind: 'glob'; pattern: string }
  /** Inside the interpreter module tree `root`, kept whole by rule `pattern`. */
  | { kind: 'module-tree'; pattern: string; root: string }
  /** /proc, /sys, /dev, /run, /tmp: mount points the slim image needs as directories. */
  | { kind: 'mountpoint' };

export type ReasonKind = Reason['kind'];

/** Package-aware rules of a profile or template. */
export interface ClosureRules {
  /** Packages kept whole (by id such as "libc6:amd64" or by name). */
  keepPackages?: string[];
  /** Globs of paths to keep (see glob.ts for the syntax). */
  keepGlobs?: string[];
  /**
   * Globs of paths to drop. A drop glob removes what rules and essentials would keep (a package's
   * documentation, *.pyc of a module tree, zoneinfo); it never removes what the seeds need
   * (traced paths, entrypoints and everything their execution requires: interpreter, libraries,
   * shebang interpreters, symlinks and directories on the way), nor a directory or symlink leading
   * to a kept path. A drop glob that hits such a path is reported as a warning.
   */
  dropGlobs?: string[];
  /** Directory globs whose whole tree is kept, e.g. "/usr/lib/python3*\/". */
  keepModuleTrees?: string[];
  /**
   * gconv (iconv charset modules). "auto" (default): gconv-modules configuration when a kept ELF
   * uses libc and the trace touched a gconv directory; "config": the configuration whenever libc
   * is kept; "all": configuration and every module; "none".
   */
  gconv?: 'auto' | 'config' | 'all' | 'none';
  /** "localtime" (default): /etc/localtime and its target; "all": the whole zoneinfo tree; "none". */
  tzdata?: 'localtime' | 'all' | 'none';
}

/** Everything the static closure needs, all read-only. */
export interface ClosureInput {
  /** The gold image, by absolute path. */
  entries: ReadonlyMap<string, Entry>;
  /** ELF facts already in the catalog, by blob. */
  elf: (blob: string) => ElfFacts | undefined;
  /** Content of a blob (ld.so.conf, nsswitch.conf, script heads, passwd). */
  readBlob: (blob: string) => Promise<Buffer>;
  /** Path → owning package ids; used for package rules when `packageFiles` is absent. */
  owners?: ReadonlyMap<string, string[]>;
  /** Package id → its paths. */
  packageFiles?: ReadonlyMap<string, string[]>;
  /** Traced paths (with their evidence) and declared entrypoints. */
  seeds: { path: string; reason: Reason }[];
  /** Users the workload runs as (names or numeric uids). */
  users?: string[];
  rules?: ClosureRules;
  /**
   * Runtime state: the gold image's plan for the workload (tmpfiles.d, its units' directories),
   * every path the workload named (found or not), and the ids it switched to.
   */
  runtime?: { actions: RuntimeAction[]; used: string[]; uids?: number[]; gids?: number[] };
  /** PATH used to resolve `#!/usr/bin/env cmd`; default Debian's root PATH. */
  path?: string[];
  reporter?: Reporter;
}

/** A path a rule or essential asked for and a drop rule removed. */
export interface DroppedPath {
  /** The drop glob, or "mount point /tmp" for content under a run-time mount point. */
  by: string;
  /** What would have kept it. */
  reasons: Reason[];
}

/** The static closure: what the slim image keeps and why. */
export interface Closure {
  /** Kept image paths (every one an entry of the image) and why, most direct reason first. */
  kept: Map<string, Reason[]>;
  /** Reasons beyond the per-kind cap (see MAX_REASONS_PER_KIND), counted per path. */
  moreReasons: Map<string, number>;
  /** Paths asked for and removed by a drop rule. */
  dropped: Map<string, DroppedPath>;
  /** Paths asked for that the image does not have (traced ENOENT, run-time files, dangling links). */
  missing: Map<string, Reason[]>;
  /** Mount points absent from the image: the composer creates them as directories. */
  create: string[];
  /** The drop globs in force, for explanations. */
  dropGlobs: string[];
  /** The runtime state the slim image creates before its workload starts (when the input had a plan). */
  runtime?: RecordedRuntime;
  warnings: string[];
}

/** Kept reasons per kind and path; more are only counted, so /usr does not list every file below it. */
export const MAX_REASONS_PER_KIND = 8;

/** Run-time mount points: created empty in the slim image, never filled from the gold image. */
export const MOUNT_POINTS = ['/proc', '/sys', '/dev', '/run', '/tmp'] as const;

/** Debian's PATH for root, used for `#!/usr/bin/env` when the input gives none. */
export const DEFAULT_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

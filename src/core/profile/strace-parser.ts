/**
 * Turns the output of `strace -f` (flags from {@link straceFlags}) into the set of image paths a
 * workload touched, with evidence. Pure: text in, {@link Trace} out.
 *
 * Each process has a root and a working directory (shared between threads that were cloned with
 * CLONE_FS, copied at fork). Nothing a process does before it, or an ancestor, chroot()s into the
 * image root is recorded: that is the host side of the sandbox (unshare, mount, the chroot
 * program's own libc). Paths are recorded as the workload saw them: absolute inside the image,
 * lexically normalised ("." and ".." folded, ".." never above the root), in aim's byte-exact
 * string form (lib/path-codec.ts).
 */
import { comparePaths, encodePath } from '../../lib/path-codec.js';
import {
  decodeEscaped,
  parseFdArg,
  parseLine,
  parseReturn,
  parseStringArg,
  splitCall,
  type SyscallReturn,
  type TraceLine,
} from './strace-syntax.js';

/** What the trace shows about one path. */
export interface PathEvidence {
  /** Absolute path inside the image, aim string form. */
  path: string;
  /** Names of the syscalls that named this path, sorted. */
  syscalls: string[];
  /** At least one of those calls succeeded. */
  ok: boolean;
  /** errno names of failed calls (ENOENT: looked for but missing), sorted. */
  errors: string[];
  /** Successfully executed (execve/execveat). */
  exec: boolean;
  /** Successfully created, written, removed, renamed or changed (mode, owner, times). */
  wrote: boolean;
  /** The process that first named the path (host pid) and when (seconds, from strace -ttt). */
  firstPid: number;
  firstSeen: number;
  /**
   * Set when the path was never named itself but is what another path resolved to: the file an
   * open() really reached through symlinks (from the -y decoration of the returned fd), or the
   * target of an exec'd symlink.
   */
  via?: string;
}

/** The file-system footprint of a traced run. */
export interface Trace {
  /** Keyed by image path, in path order. */
  paths: Map<string, PathEvidence>;
  /** Successfully exec'd paths, in first-exec order, each once. */
  execs: string[];
  /** Processes (not threads) that ran inside the image. */
  processes: number;
  /** Calls inside the image whose path could not be placed (relative to an unknown directory). */
  unresolved: number;
  /**
   * The trace shows the end (`+++ exited`, `+++ killed`, superseded by an execve) of every process
   * and thread it saw, and saw at least one. False when the tracer stopped before its tracees (it
   * was killed): lines are missing, and a profile made from it could miss what they used.
   */
  complete: boolean;
  /**
   * Processes whose clone() result named no pid the trace knows (a pid namespace the tracer could
   * not translate): placed inside or outside the image by the processes that were cloning when
   * they first appeared.
   */
  untied: number;
  /** clone() calls with CLONE_UNTRACED: their children escaped the trace. */
  untraced: number;
  /** User ids processes inside the image switched to (set*uid) or gave files (chown), sorted. */
  uids?: number[];
  /** Group ids likewise (set*gid, setgroups, chown), sorted. */
  gids?: number[];
}

export interface ParseOptions {
  /**
   * The image root as the host (and strace's -y decorations) spell it, without symlinks. A
   * chroot() to it marks the start of the workload; decorated fd paths are mapped through it.
   * Without it, any successful chroot() from the host side enters the image.
   */
  root?: string;
  /** Record from the first line on, as if the traced command already ran in the image. */
  insideFromStart?: boolean;
}

interface PathArg {
  /** Index of the directory-fd argument (the *at() calls). */
  dirfd?: number;
  /** Index of the path argument. */
  path: number;
  /** A successful call changes this path (creates, removes, renames, chmods …). */
  writes?: boolean;
}

interface SyscallSpec {
  paths: PathArg[];
  /** Index of the open flags (O_WRONLY, O_CREAT … make it a write). */
  openFlags?: number;
  exec?: boolean;
}

const R = (path: number, dirfd?: number): PathArg => ({ path, dirfd });
const W = (path: number, dirfd?: number): PathArg => ({ path, dirfd, writes: true });

/** Every path-taking syscall the parser understands, and where its paths are. */
const FILE_SYSCALLS: Record<string, SyscallSpec> = {
  execve: { paths: [R(0)], exec: true },
  execveat: { paths: [R(1, 0)], exec: true },
  open: { paths: [R(0)], openFlags: 1 },
  openat: { paths: [R(1, 0)], openFlags: 2 },
  openat2: { paths: [R(1, 0)], openFlags: 2 },
  creat: { paths: [W(0)] },
  stat: { paths: [R(0)] },
  lstat: { paths: [R(0)] },
  stat64: { paths: [R(0)] },
  lstat64: { paths: [R(0)] },
  newfstatat: { paths: [R(1, 0)] },
  fstatat64: { paths: [R(1, 0)] },
  statx: { paths: [R(1, 0)] },
  statfs: { paths: [R(0)] },
  access: { paths: [R(0)] },
  faccessat: { paths: [R(1, 0)] },
  faccessat2: { paths: [R(1, 0)] },
  readlink: { paths: [R(0)] },
  readlinkat: { paths: [R(1, 0)] },
  chdir: { paths: [R(0)] },
  chroot: { paths: [R(0)] },
  mkdir: { paths: [W(0)] },
  mkdirat: { paths: [W(1, 0)] },
  rmdir: { paths: [W(0)] },
  unlink: { paths: [W(0)] },
  unlinkat: { paths: [W(1, 0)] },
  rename: { paths: [W(0), W(1)] },
  renameat: { paths: [W(1, 0), W(3, 2)] },
  renameat2: { paths: [W(1, 0), W(3, 2)] },
  symlink: { paths: [W(1)] },
  symlinkat: { paths: [W(2, 1)] },
  link: { paths: [R(0), W(1)] },
  linkat: { paths: [R(1, 0), W(3, 2)] },
  truncate: { paths: [W(0)] },
  chmod: { paths: [W(0)] },
  fchmodat: { paths: [W(1, 0)] },
  fchmodat2: { paths: [W(1, 0)] },
  chown: { paths: [W(0)] },
  lchown: { paths: [W(0)] },
  fchownat: { paths: [W(1, 0)] },
  utime: { paths: [W(0)] },
  utimes: { paths: [W(0)] },
  futimesat: { paths: [W(1, 0)] },
  utimensat: { paths: [W(1, 0)] },
  mknod: { paths: [W(0)] },
  mknodat: { paths: [W(1, 0)] },
  getxattr: { paths: [R(0)] },
  lgetxattr: { paths: [R(0)] },
  listxattr: { paths: [R(0)] },
  llistxattr: { paths: [R(0)] },
  setxattr: { paths: [W(0)] },
  lsetxattr: { paths: [W(0)] },
  removexattr: { paths: [W(0)] },
  lremovexattr: { paths: [W(0)] },
  inotify_add_watch: { paths: [R(1)] },
  name_to_handle_at: { paths: [R(1, 0)] },
};

const CLONE_SYSCALLS = new Set(['clone', 'clone3', 'fork', 'vfork']);
const STATE_SYSCALLS = ['fchdir', 'getcwd', 'bind', 'connect'];
/** Calls that switch or give away user and group ids: argument indexes of uids and gids. */
const ID_SYSCALLS: Record<string, { uids: number[]; gids: number[] }> = {
  setuid: { uids: [0], gids: [] },
  setreuid: { uids: [0, 1], gids: [] },
  setresuid: { uids: [0, 1, 2], gids: [] },
  setfsuid: { uids: [0], gids: [] },
  setgid: { uids: [], gids: [0] },
  setregid: { uids: [], gids: [0, 1] },
  setresgid: { uids: [], gids: [0, 1, 2] },
  setfsgid: { uids: [], gids: [0] },
  setgroups: { uids: [], gids: [] },
  chown: { uids: [1], gids: [2] },
  lchown: { uids: [1], gids: [2] },
  fchown: { uids: [1], gids: [2] },
  fchownat: { uids: [2], gids: [3] },
};

/**
 * The `-e trace=` set. Each name carries strace's '?' so a name unknown on this architecture
 * (open, stat and fork do not exist on arm64) or to this strace is skipped, not an error.
 */
export const STRACE_SYSCALLS: readonly string[] = [...new Set([...Object.keys(FILE_SYSCALLS), ...CLONE_SYSCALLS, ...STATE_SYSCALLS, ...Object.keys(ID_SYSCALLS)])];

/**
 * Signals that never end a process (their default action is to ignore or stop it): not printed.
 * Every other signal is, because strace prints `+++ killed by SIG… +++` only for signals in the
 * `-e signal=` set, and without that notice the end of a killed process (and the reuse of its
 * pid) would not be in the trace.
 */
const QUIET_SIGNALS = ['SIGCHLD', 'SIGCONT', 'SIGURG', 'SIGWINCH', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU'];

/**
 * strace flags the parser expects, before the traced command:
 * -f follows forks, clones and vforks; -q drops attach notices but keeps "+++ exited" (a pid that
 * exited may be reused); -ttt stamps epoch seconds; -y decorates fds with their paths (dirfds of
 * *at() calls, the cwd behind AT_FDCWD, the file an open() reached); --seccomp-bpf stops the
 * tracee only for traced calls (without it, medians of 3: redis-benchmark ran 13x and a
 * syscall-heavy batch job 4.6x slower; see the README).
 *
 * strace must run in the pid namespace of its tracees (the sandbox starts it there): a clone()
 * returns the child's pid in the caller's namespace, and the parser ties parent and child by
 * that number. --pidns-translation only helps when the workload makes pid namespaces of its own:
 * strace translates by searching /proc, which fails once the child has exited and been reaped
 * (a SIGCHLD-ignoring server's short-lived child, a thread) before the parent's clone() returns.
 */
export function straceFlags(outputFile: string): string[] {
  return [
    '-f',
    '-q',
    '-ttt',
    '-y',
    '-s',
    '4096',
    '--seccomp-bpf',
    '--pidns-translation',
    '-e',
    `signal=!${QUIET_SIGNALS.join(',')}`,
    '-e',
    `trace=${STRACE_SYSCALLS.map((s) => `?${s}`).join(',')}`,
    '-o',
    outputFile,
  ];
}

interface Fs {
  inside: boolean;
  /** Inside: the process root as an image path. */
  root: string;
  /** Inside: an image path; outside: a host path; undefined when not known. */
  cwd?: string;
}

interface Proc {
  fs: Fs;
  /** Image path of the program the process runs, once seen exec'd inside. */
  exe?: string;
}

interface Unfinished {
  name: string;
  text: string;
  time: number;
  /** Known to have succeeded, whatever strace prints as its result. */
  succeeded?: boolean;
}

/**
 * What the processes that could be a process's parent had in common: enough to place it when its
 * parent is never known. Constant size, so pooling many is cheap.
 */
interface Lineage {
  count: number;
  /** Every one was inside the image, under `root`. */
  inside: boolean;
  root?: string;
  /** The one parent's state, when there was exactly one. */
  only?: Fs;
}

const NO_LINEAGE: Lineage = { count: 0, inside: true };

function joinLineage(a: Lineage, b: Lineage): Lineage {
  if (b.count === 0 || a.only === b.only) return a;
  if (a.count === 0) return b;
  const root = a.root === b.root ? a.root : undefined;
  return { count: a.count + b.count, inside: a.inside && b.inside && root !== undefined, root };
}

const lineageOf = (fs: Fs): Lineage => ({ count: 1, inside: fs.inside, root: fs.root, only: fs });

/** Lines of a pid seen before the clone() that made it returned, held until it does. */
interface Orphan {
  lines: TraceLine[];
  /** The processes that were cloning when it appeared (or that could have been, through other orphans). */
  lineage: Lineage;
  /** Its end is among the lines: a later line of the same pid is another process. */
  ended: boolean;
}

const isEnd = (body: TraceLine['body']): boolean => body.kind === 'exit' && /^(exited|killed)\b/.test(body.detail);

function normalise(base: string, rel: string, floor: string): string {
  const floorParts = floor.split('/').filter((c) => c !== '');
  const parts = base.split('/').filter((c) => c !== '');
  const under = floorParts.every((c, i) => parts[i] === c);
  const min = under ? floorParts.length : 0;
  for (const c of rel.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (parts.length > min) parts.pop();
    } else parts.push(c);
  }
  return '/' + parts.join('/');
}

function hasFlag(text: string | undefined, flag: string): boolean {
  return text !== undefined && new RegExp(`\\b${flag}\\b`).test(text);
}

const WRITE_FLAGS = /\b(O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_TMPFILE)\b/;

export class StraceParser {
  private readonly procs = new Map<number, Proc>();
  private readonly unfinished = new Map<number, Unfinished>();
  /** Parent pid → its state at the start of a clone that has not returned yet. */
  private readonly pendingClones = new Map<number, { fs: Fs; flags: string }>();
  /** Lines of pids whose parent's clone has not returned yet, replayed once it does; per pid, oldest process first. */
  private readonly orphans = new Map<number, Orphan[]>();
  /** The lineages of every orphan so far: a pid that appears while only orphans are cloning descends from one of them. */
  private orphanPool: Lineage = NO_LINEAGE;
  /** Pids seen and not ended yet. */
  private readonly live = new Set<number>();
  private seen = false;
  private untied = 0;
  private untraced = 0;
  private readonly evidence = new Map<string, PathEvidence>();
  private readonly execs: string[] = [];
  private readonly execSeen = new Set<string>();
  private processes = 0;
  private unresolved = 0;
  private readonly uids = new Set<number>();
  private readonly gids = new Set<number>();
  private readonly root?: string;
  private readonly insideFromStart: boolean;

  constructor(options: ParseOptions = {}) {
    if (options.root !== undefined) this.root = normalise('/', encodePath(Buffer.from(options.root)), '/');
    this.insideFromStart = options.insideFromStart ?? false;
  }

  /** Feeds one line of strace output (without the newline). */
  feed(line: string): void {
    const parsed = parseLine(line);
    if (!parsed) return;
    this.track(parsed);
    this.handle(parsed);
  }

  /** Ends the input and returns the trace. */
  finish(): Trace {
    // Calls that never returned (the process was killed in them), and pids whose clone never
    // returned a pid the trace knows: what they did still counts, with what can be known.
    while (this.unfinished.size > 0 || this.orphans.size > 0) {
      for (const [pid, u] of [...this.unfinished]) {
        this.unfinished.delete(pid);
        this.call(pid, u.time, u.name, `${u.text}) = ?`);
      }
      this.pendingClones.clear();
      const first = this.orphans.entries().next().value as [number, Orphan[]] | undefined;
      if (first) this.adopt(first[0]);
    }
    const paths = new Map<string, PathEvidence>();
    for (const key of [...this.evidence.keys()].sort(comparePaths)) {
      const e = this.evidence.get(key)!;
      e.syscalls.sort();
      e.errors.sort();
      paths.set(key, e);
    }
    const byNumber = (a: number, b: number) => a - b;
    return {
      paths,
      execs: [...this.execs],
      processes: this.processes,
      unresolved: this.unresolved,
      complete: this.seen && this.live.size === 0,
      untied: this.untied,
      untraced: this.untraced,
      uids: [...this.uids].sort(byNumber),
      gids: [...this.gids].sort(byNumber),
    };
  }

  private newProc(): Proc {
    if (this.insideFromStart) {
      this.processes++;
      return { fs: { inside: true, root: '/' } };
    }
    return { fs: { inside: false, root: '/' } };
  }

  /** Which pids have begun and not ended, from strace's own notices. */
  private track({ pid, body }: TraceLine): void {
    this.seen = true;
    if (isEnd(body)) {
      this.live.delete(pid);
      return;
    }
    this.live.add(pid);
    // A thread's execve: the thread's pid ends, the leader's goes on with the new program.
    const superseded = body.kind === 'exit' ? /^superseded by execve in pid (\d+)/.exec(body.detail) : null;
    if (superseded && Number(superseded[1]) !== pid) this.live.delete(Number(superseded[1]));
  }

  /**
   * The oldest orphan of `pid` whose parent never turned up (its clone() returned a pid of
   * another namespace that strace could not translate): inside the image, under their root, when
   * every process that could be its parent was; otherwise a host-side process.
   */
  private adopt(pid: number): void {
    const orphan = this.takeOrphan(pid)!;
    const { lineage } = orphan;
    this.untied++;
    let proc: Proc;
    if (lineage.count > 0 && lineage.inside && lineage.root !== undefined) {
      proc = { fs: { inside: true, root: lineage.root, cwd: lineage.only?.cwd } };
      this.processes++;
    } else proc = this.newProc();
    this.procs.set(pid, proc);
    for (const l of orphan.lines) this.handle(l);
  }

  private takeOrphan(pid: number): Orphan | undefined {
    const groups = this.orphans.get(pid);
    const orphan = groups?.shift();
    if (groups?.length === 0) this.orphans.delete(pid);
    return orphan;
  }

  private handle(line: TraceLine): void {
    const { pid, time, body } = line;
    if (!this.procs.has(pid)) {
      const groups = this.orphans.get(pid);
      const last = groups?.[groups.length - 1];
      if (last && !last.ended) {
        last.lines.push(line);
        last.ended = isEnd(body);
        return;
      }
      if (this.pendingClones.size > 0 || this.orphans.size > 0) {
        let lineage = this.orphans.size > 0 ? this.orphanPool : NO_LINEAGE;
        for (const c of this.pendingClones.values()) lineage = joinLineage(lineage, lineageOf(c.fs));
        this.orphanPool = joinLineage(this.orphanPool, lineage);
        const orphan: Orphan = { lines: [line], lineage, ended: isEnd(body) };
        if (groups) groups.push(orphan);
        else this.orphans.set(pid, [orphan]);
        return;
      }
      this.procs.set(pid, this.newProc());
    }
    switch (body.kind) {
      case 'call':
        this.call(pid, time, body.name, body.text);
        break;
      case 'unfinished': {
        this.unfinished.set(pid, { name: body.name, text: body.text, time });
        if (CLONE_SYSCALLS.has(body.name)) {
          const fs = this.procs.get(pid)!.fs;
          const flags = /flags=([A-Z0-9_|]+)/.exec(body.text)?.[1] ?? '';
          this.pendingClones.set(pid, { fs: hasFlag(flags, 'CLONE_FS') ? fs : { ...fs }, flags });
        }
        break;
      }
      case 'resumed': {
        const u = this.unfinished.get(pid);
        this.unfinished.delete(pid);
        if (u?.succeeded && u.name === body.name) this.call(pid, u.time, u.name, `${u.text}) = 0`);
        else if (u && u.name === body.name) this.call(pid, u.time, u.name, u.text + body.text);
        else if (CLONE_SYSCALLS.has(body.name)) this.call(pid, time, body.name, `${body.name}(${body.text}`);
        break;
      }
      case 'exit': {
        // A thread's execve replaces the leader: the call started under the thread's pid. That
        // notice is the proof it succeeded; with --seccomp-bpf strace 6.1 then prints a garbage
        // result ("= -1 (errno 18446744073709551359)") for it.
        const superseded = /^superseded by execve in pid (\d+)/.exec(body.detail);
        // The thread may have run before its clone returned (the leader's clone then ends "= ?"):
        // it waits among the orphans, and the notice says whose thread it is.
        const thread = superseded ? Number(superseded[1]) : undefined;
        if (thread !== undefined && thread !== pid && !this.procs.has(thread)) {
          const orphan = this.takeOrphan(thread);
          if (orphan) {
            this.procs.set(thread, this.procs.get(pid)!);
            for (const l of orphan.lines) this.handle(l);
          }
        }
        const u = thread !== undefined ? this.unfinished.get(thread) : undefined;
        if (u) {
          this.unfinished.delete(thread!);
          this.unfinished.set(pid, { ...u, succeeded: true });
        }
        if (isEnd(body)) {
          this.procs.delete(pid);
          this.unfinished.delete(pid);
          this.pendingClones.delete(pid);
        }
        break;
      }
      default:
        break;
    }
  }

  private call(pid: number, time: number, name: string, text: string): void {
    const proc = this.procs.get(pid);
    if (!proc) return;
    const split = splitCall(text);
    if (CLONE_SYSCALLS.has(name)) {
      this.cloned(pid, proc, text, split ? parseReturn(split.ret) : {});
      return;
    }
    if (!split) return;
    const ret = parseReturn(split.ret);
    if (ret.errno?.startsWith('ERESTART')) return; // the call is restarted and printed again
    const ok = ret.value !== undefined && ret.value >= 0 && ret.errno === undefined;
    const { args } = split;
    const fs = proc.fs;
    this.noteCwdDecoration(fs, args);
    if (ok && fs.inside && ID_SYSCALLS[name]) this.noteIds(name, args);

    const spec = FILE_SYSCALLS[name];
    if (spec) this.fileCall(pid, time, name, spec, args, ret, ok, proc);
    else if (name === 'fchdir' && ok) {
      const fd = parseFdArg(args[0]);
      fs.cwd = fd?.path === undefined ? undefined : this.fromHost(fs, fd.path);
    } else if (name === 'getcwd' && ok && fs.inside) {
      const cwd = parseStringArg(args[0]);
      if (cwd && cwd[0] === 0x2f) fs.cwd = normalise(fs.root, encodePath(cwd), fs.root);
    } else if ((name === 'bind' || name === 'connect') && fs.inside) {
      const m = /sun_path=("(?:[^"\\]|\\.)*")/.exec(args[1] ?? '');
      const raw = m ? parseStringArg(m[1]) : undefined;
      if (raw && raw.length > 0) {
        const path = this.resolve(fs, encodePath(raw), undefined);
        if (path === undefined) this.unresolved++;
        else this.record(path, pid, time, name, ok, ret.errno, { wrote: ok && name === 'bind' });
      }
    }
  }

  /** Ids a successful set*id/setgroups/chown call inside the image used (-1: unchanged). */
  private noteIds(name: string, args: string[]): void {
    const spec = ID_SYSCALLS[name]!;
    const id = (a: string | undefined) => (a !== undefined && /^\d+$/.test(a.trim()) ? Number(a.trim()) : undefined);
    for (const i of spec.uids) {
      const v = id(args[i]);
      if (v !== undefined) this.uids.add(v);
    }
    for (const i of spec.gids) {
      const v = id(args[i]);
      if (v !== undefined) this.gids.add(v);
    }
    if (name === 'setgroups') for (const g of /\[([^\]]*)\]/.exec(args[1] ?? '')?.[1]?.split(',') ?? []) if (id(g) !== undefined) this.gids.add(id(g)!);
  }

  /** AT_FDCWD</host/cwd> is the kernel's own word on the cwd: prefer it to what we tracked. */
  private noteCwdDecoration(fs: Fs, args: string[]): void {
    for (const a of args) {
      if (!a.startsWith('AT_FDCWD<')) continue;
      const fd = parseFdArg(a);
      if (fd?.path !== undefined) fs.cwd = this.fromHost(fs, fd.path);
      return;
    }
  }

  /** A -y decoration (host path, escaped) in the coordinates of this process's cwd. */
  private fromHost(fs: Fs, decorated: string): string | undefined {
    const raw = decodeEscaped(decorated);
    if (raw.length === 0 || raw[0] !== 0x2f) return undefined;
    const host = normalise('/', encodePath(raw), '/');
    if (!fs.inside) return host;
    return this.hostToImage(host);
  }

  private hostToImage(host: string): string | undefined {
    if (host.endsWith(' (deleted)')) return undefined;
    if (this.root === undefined) return this.insideFromStart ? host : undefined;
    if (host === this.root) return '/';
    if (this.root === '/') return host;
    return host.startsWith(this.root + '/') ? host.slice(this.root.length) : undefined;
  }

  /** An image path for `path` named by an inside process, relative to `base` or its cwd. */
  private resolve(fs: Fs, path: string, base: string | undefined): string | undefined {
    if (path.startsWith('/')) return normalise(fs.root, path, fs.root);
    const dir = base ?? fs.cwd;
    return dir === undefined ? undefined : normalise(dir, path, fs.root);
  }

  private fileCall(
    pid: number,
    time: number,
    name: string,
    spec: SyscallSpec,
    args: string[],
    ret: SyscallReturn,
    ok: boolean,
    proc: Proc,
  ): void {
    const fs = proc.fs;
    if (!fs.inside) {
      if (name === 'chroot' && ok) this.enterFromHost(fs, args[0]);
      else if (name === 'chdir' && ok) {
        const p = parseStringArg(args[0]);
        if (p) fs.cwd = this.hostJoin(fs, encodePath(p));
      }
      return;
    }
    const opensForWrite = spec.openFlags !== undefined && WRITE_FLAGS.test(args[spec.openFlags] ?? '');
    let first: string | undefined;
    for (const pa of spec.paths) {
      const raw = parseStringArg(args[pa.path]);
      if (raw === undefined) continue;
      let path: string | undefined;
      if (raw.length === 0) {
        // execveat(fd, "", …, AT_EMPTY_PATH) runs the file behind fd (fexecve). Other empty-path
        // calls are fstat()s of files already recorded when they were opened.
        if (!spec.exec || !hasFlag(args[args.length - 1], 'AT_EMPTY_PATH')) continue;
        const fd = parseFdArg(args[pa.dirfd ?? -1]);
        path = fd?.path === undefined ? undefined : this.fromHost(fs, fd.path);
      } else {
        const rel = encodePath(raw);
        let base: string | undefined;
        if (!rel.startsWith('/') && pa.dirfd !== undefined) {
          const fd = parseFdArg(args[pa.dirfd]);
          if (fd?.fd === 'AT_FDCWD') base = fd.path === undefined ? fs.cwd : this.fromHost(fs, fd.path);
          else if (fd?.path !== undefined) base = this.fromHost(fs, fd.path);
          if (base === undefined) {
            this.unresolved++;
            continue;
          }
        }
        path = this.resolve(fs, rel, base);
      }
      if (path === undefined) {
        this.unresolved++;
        continue;
      }
      first ??= path;
      this.record(path, pid, time, name, ok, ret.errno, {
        wrote: ok && (pa.writes === true || opensForWrite),
        exec: ok && spec.exec === true,
      });
    }
    if (spec.openFlags !== undefined && ok && first !== undefined && ret.fdPath !== undefined) {
      // The fd's path is where the open really landed after symlinks; /proc/self/… is per pid.
      const real = this.fromHost(fs, ret.fdPath);
      if (real !== undefined && real !== first && !real.startsWith('/proc/')) {
        this.record(real, pid, time, name, true, undefined, { wrote: opensForWrite, via: first });
      }
    }
    if (!ok || first === undefined) return;
    if (spec.exec) {
      // Re-exec of itself through /proc (busybox, systemd, Go programs): the program is the one
      // the process was already running.
      const self = /^\/proc\/(self|thread-self)\/exe$/.test(first) ? proc.exe : undefined;
      if (self !== undefined) this.record(self, pid, time, name, true, undefined, { exec: true, via: first });
      proc.exe = self ?? first;
    } else if (name === 'chdir') fs.cwd = first;
    else if (name === 'chroot') fs.root = first;
  }

  private hostJoin(fs: Fs, path: string): string | undefined {
    if (path.startsWith('/')) return normalise('/', path, '/');
    return fs.cwd === undefined ? undefined : normalise(fs.cwd, path, '/');
  }

  /** A host-side process chroot()s: into the image root (the workload starts) or elsewhere. */
  private enterFromHost(fs: Fs, arg: string | undefined): void {
    const raw = parseStringArg(arg);
    const target = raw === undefined ? undefined : this.hostJoin(fs, encodePath(raw));
    const hostCwd = fs.cwd;
    let root: string | undefined;
    if (this.root === undefined) root = '/';
    else if (target !== undefined) root = this.hostToImage(target);
    if (root === undefined) {
      fs.cwd = undefined; // chrooted somewhere else: host paths no longer mean anything
      return;
    }
    fs.inside = true;
    fs.root = root;
    fs.cwd = hostCwd === undefined || this.root === undefined ? undefined : this.hostToImage(hostCwd);
    this.processes++;
  }

  private cloned(pid: number, parent: Proc, text: string, ret: SyscallReturn): void {
    const pending = this.pendingClones.get(pid);
    this.pendingClones.delete(pid);
    const flags = pending?.flags ?? /flags=([A-Z0-9_|]+)/.exec(text)?.[1] ?? '';
    if (hasFlag(flags, 'CLONE_UNTRACED') && parent.fs.inside) this.untraced++;
    const child = ret.translatedPid ?? ret.value;
    if (child === undefined || child <= 0) return;
    const shared = hasFlag(flags, 'CLONE_FS');
    const fs = shared ? parent.fs : { ...(pending?.fs ?? parent.fs) };
    this.procs.set(child, { fs, exe: parent.exe });
    this.unfinished.delete(child);
    if (fs.inside && !hasFlag(flags, 'CLONE_THREAD')) this.processes++;
    const orphan = this.takeOrphan(child);
    if (orphan) for (const l of orphan.lines) this.handle(l);
  }

  private record(
    path: string,
    pid: number,
    time: number,
    syscall: string,
    ok: boolean,
    errno: string | undefined,
    extra: { wrote?: boolean; exec?: boolean; via?: string },
  ): void {
    let e = this.evidence.get(path);
    if (!e) {
      e = { path, syscalls: [], ok: false, errors: [], exec: false, wrote: false, firstPid: pid, firstSeen: time };
      if (extra.via !== undefined) e.via = extra.via;
      this.evidence.set(path, e);
    } else {
      if (extra.via === undefined && e.via !== undefined) delete e.via; // named directly after all
      if (time < e.firstSeen) {
        e.firstSeen = time;
        e.firstPid = pid;
      }
    }
    if (!e.syscalls.includes(syscall)) e.syscalls.push(syscall);
    if (ok) e.ok = true;
    if (errno !== undefined && !ok && !e.errors.includes(errno)) e.errors.push(errno);
    if (extra.wrote) e.wrote = true;
    if (extra.exec) {
      e.exec = true;
      if (!this.execSeen.has(path) && !path.startsWith('/proc/')) {
        this.execSeen.add(path);
        this.execs.push(path);
      }
    }
  }
}

/** Parses a whole strace output file's text. */
export function parseStrace(text: string, options: ParseOptions = {}): Trace {
  const parser = new StraceParser(options);
  for (const line of text.split('\n')) parser.feed(line);
  return parser.finish();
}

/** Unites traces of the same image (the workload's and its probes'). */
export function mergeTraces(...traces: Trace[]): Trace {
  const merged = new Map<string, PathEvidence>();
  const execs: string[] = [];
  let processes = 0;
  let unresolved = 0;
  let untied = 0;
  let untraced = 0;
  const uids = new Set<number>();
  const gids = new Set<number>();
  for (const t of traces) {
    processes += t.processes;
    unresolved += t.unresolved;
    untied += t.untied;
    untraced += t.untraced;
    for (const u of t.uids ?? []) uids.add(u);
    for (const g of t.gids ?? []) gids.add(g);
    for (const x of t.execs) if (!execs.includes(x)) execs.push(x);
    for (const [path, e] of t.paths) {
      const m = merged.get(path);
      if (!m) {
        merged.set(path, { ...e, syscalls: [...e.syscalls], errors: [...e.errors] });
        continue;
      }
      m.syscalls = [...new Set([...m.syscalls, ...e.syscalls])].sort();
      m.errors = [...new Set([...m.errors, ...e.errors])].sort();
      m.ok ||= e.ok;
      m.exec ||= e.exec;
      m.wrote ||= e.wrote;
      if (e.firstSeen < m.firstSeen) {
        m.firstSeen = e.firstSeen;
        m.firstPid = e.firstPid;
      }
      if (e.via === undefined) delete m.via;
    }
  }
  const paths = new Map([...merged.keys()].sort(comparePaths).map((k) => [k, merged.get(k)!]));
  const byNumber = (a: number, b: number) => a - b;
  return { paths, execs, processes, unresolved, complete: traces.every((t) => t.complete), untied, untraced, uids: [...uids].sort(byNumber), gids: [...gids].sort(byNumber) };
}

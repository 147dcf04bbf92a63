/**
 * Runs a workload inside an image root, isolated and traced, and reports what it touched.
 *
 * Process chain (each line the child of the one above):
 *
 *   setpriv --pdeathsig KILL   unshare --mount --pid --uts --net --ipc --fork --kill-child
 *   /bin/sh supervisor (pid 1)  mounts /proc, and /proc /sys /dev /tmp /run under the root,
 *                               copies the runtime state seeded for /dev /tmp /run onto them, lo up
 *   strace -f …                traces everything below, from inside the pid namespace
 *   env -i … setpriv … chroot ROOT cmd   the workload: clean environment, fewer capabilities
 *
 * strace runs in the workload's pid namespace so that the pid a clone() returns is the pid strace
 * prints for the child: the parser ties every child to its parent without strace having to
 * translate pids through /proc, which fails for a child that is gone before its parent's clone()
 * returns. It gets a /proc of that namespace (mounted over the host's in the sandbox's private
 * mount namespace), so its fd paths (-y) are those of the right processes. strace stays until
 * every process it traces has ended, daemons that forked away included; the supervisor waits for
 * strace and then exits, so the workload has ended, and the trace file is written to its end,
 * exactly when the chain exits. If strace dies early the supervisor exits too, and the kernel
 * kills the rest of the namespace. aim dying takes the chain down through pdeathsig and
 * --kill-child. Every mount is made by the supervisor inside the new mount namespace
 * (propagation private), so the host never sees one and all vanish with the namespace.
 *
 * aim stops the workload with SIGTERM to every process in the namespace but the supervisor and
 * strace, then SIGKILL to them, and as a last resort SIGKILL to the supervisor (the kernel then
 * kills the rest; the trace is then incomplete and refused).
 *
 * Readiness is read by the host from /proc/PID/net/tcp{,6} of the sandbox's init: those files
 * show the sockets of that process's network namespace, so no helper runs inside and nothing
 * connects before the port listens.
 */
import { createReadStream } from 'node:fs';
import { copyFile, lstat, mkdir, open, readFile, realpath, rm, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { ConfigError, InputError, PermissionError, throwIfCancelled } from '../../lib/errors.js';
import { requireTool, spawnTool, type StreamingProcess } from '../../lib/exec.js';
import { debugLog } from '../../lib/log.js';
import { silentReporter, type Reporter } from '../../lib/reporter.js';
import { LineWatch, parseReadyLog } from '../probe/line-watch.js';
import { probeWhenReady, type Gate } from '../probe/readiness.js';
import { ProfileError } from './errors.js';
import { OutputTail } from './output-tail.js';
import { insideImage, probeExpectation, probeLabel, runExecProbe, runHttpProbe, validateProbe, type ProbeAttempt, type ProbeContext, type ProbeResult, type ProbeSpec } from './probes.js';
import { hostPidIn, listeningPorts, namespaceMembers, nsPids, pidNamespaceOf, processTree, signalPids, waitUntil } from './processes.js';
import { applyRuntimePlan } from '../runtime/apply.js';
import type { RuntimeAction } from '../runtime/plan.js';
import { resolveInRoot } from '../../lib/resolve-in-root.js';
import { mergeTraces, StraceParser, straceFlags, type PathEvidence, type Trace } from './strace-parser.js';

const debug = debugLog('profile');

export interface SandboxOptions {
  /** Directory holding the materialised image. Missing mount points (proc, sys, dev, tmp, run) are created in it. */
  root: string;
  /** Where the trace files and the supervisor's markers go; created if missing. */
  workDir: string;
  /** A shell command (run with the image's /bin/sh -c) or an argv to exec directly. */
  run: string | readonly string[];
  /** Environment inside the image, on top of PATH and HOME. Nothing is inherited from the host. */
  env?: Record<string, string>;
  hostname?: string;
  /** TCP port the workload listens on when ready (HTTP probes wait for their own port anyway). */
  readyPort?: number;
  /** A line of the workload's stdout or stderr that says it is ready, awaited before the probes. */
  readyLog?: string;
  /** Run in order, each tried until it meets its expectation (see core/probe/readiness). */
  probes?: readonly ProbeSpec[];
  /** Rounds of probes: after the first, each probe is tried once more per round. Default 1. */
  repeat?: number;
  /** A probe that never meets its expectation fails the run (default), or is recorded as unmet. */
  onUnmet?: 'throw' | 'record';
  /** Said in a probe's error: where it ran ("in the gold image"). */
  where?: string;
  /** How long the workload runs, from its start (after the sandbox is set up), before aim stops it; probes may extend it. Default 20 s. */
  durationMs?: number;
  /** From the workload's start until it must be ready: the ready line and port seen, every probe met once. Default 60 s. */
  readyTimeoutMs?: number;
  /** Per probe. Default 10 s. */
  probeTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL. Default 5 s. */
  graceMs?: number;
  /**
   * Copy the raw strace output of the run (workload and exec probes) into a new subdirectory of
   * this directory, whether the run succeeds or fails. Default: $AIM_KEEP_TRACE; unset keeps nothing.
   */
  keepTraceDir?: string;
  /** Runtime state (tmpfiles.d, the unit's directories) to create before the workload starts. */
  runtime?: readonly RuntimeAction[];
  reporter?: Reporter;
  /** Stops a run without probes early: the sandbox is torn down and the run rejects with the signal's cancellation error. */
  signal?: AbortSignal;
}

export interface SandboxResult {
  /** Workload and exec probes together. */
  trace: Trace;
  /** The first round: each probe's result once it met its expectation (or its last try, when recorded as unmet). */
  probes: ProbeResult[];
  /** Every round (rounds[0] is `probes`), when more than one was asked for. */
  probeRounds: ProbeResult[][];
  /** The last lines the workload wrote to stdout and stderr. */
  outputTail: string;
  /** True when aim stopped the workload; false when it ended by itself (then `code` says how). */
  stopped: boolean;
  /** Exit status of the started command as its shell reports it (128+n for signal n), when known. */
  code?: number;
  /**
   * Readiness, when there was anything to wait for: milliseconds from the workload's start until
   * every gate held and every probe had met its expectation once, the probe tries that took, and
   * the ready-log line.
   */
  ready?: { ms: number; tries: number; line?: string };
  /** TCP ports listening in the sandbox once the probes had met their expectations (what a booted image must forward to be probed). */
  listening?: number[];
  durationMs: number;
}

export const DEFAULT_READY_TIMEOUT_MS = 60_000;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MOUNT_POINTS: Record<string, number> = { proc: 0o555, sys: 0o555, dev: 0o755, tmp: 0o1777, run: 0o755 };
const SETUP_TIMEOUT_MS = 15_000;
const EXIT_TIMEOUT_MS = 10_000;

// $1 root, $2 marker file, $3 hostname, $4 runtime seed directory (or empty); the rest is
// strace's argv with the workload's after it (strace … env -i … chroot ROOT …). Runs on the
// host's /bin/sh, in the new namespaces. Qualification (src/run/probe-namespaces.ts) runs it too,
// with a host `sleep` as the command: namespaces for probes of a booted image.
export const SUPERVISOR = `set -eu
root=$1 marker=$2 name=$3 seed=$4
shift 4
mount --make-rprivate /
printf '%s' "$name" > /proc/sys/kernel/hostname
# Still the host's procfs: our host pid. Then a procfs of this pid namespace over it, for strace.
read -r hostpid _ < /proc/self/stat
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
for p in sys sysrq-trigger irq bus fs; do
  if [ -e "$root/proc/$p" ]; then mount -o bind,ro "$root/proc/$p" "$root/proc/$p"; fi
done
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
d=$root/dev
mount -t tmpfs -o nosuid,noexec,mode=0755,size=4m tmpfs "$d"
mknod -m 666 "$d/null" c 1 3
mknod -m 666 "$d/zero" c 1 5
mknod -m 666 "$d/full" c 1 7
mknod -m 666 "$d/random" c 1 8
mknod -m 666 "$d/urandom" c 1 9
mknod -m 666 "$d/tty" c 5 0
ln -s /proc/self/fd "$d/fd"
ln -s /proc/self/fd/0 "$d/stdin"
ln -s /proc/self/fd/1 "$d/stdout"
ln -s /proc/self/fd/2 "$d/stderr"
mkdir -m 1777 "$d/shm"
mkdir -m 755 "$d/pts"
if mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$d/pts" 2>/dev/null; then ln -s pts/ptmx "$d/ptmx"; fi
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs "$root/run"
if [ -n "$seed" ]; then
  for m in dev tmp run; do
    if [ -d "$seed/$m" ]; then cp -a "$seed/$m/." "$root/$m/"; fi
  done
fi
ip link set lo up
set +e
"$@" &
echo "$hostpid $!" > "$marker"
# From here on the shell's own notices are not the workload's output.
exec 2>/dev/null
# strace ends once every process it traces has ended (daemons that forked away too), with the
# started command's status. While waiting, the shell reaps the orphans the kernel gives pid 1.
wait $!
echo $? > "$marker.exit"
`;

export function requireSandboxTools(): void {
  const purposes: Record<string, string> = {
    strace: 'trace what the workload touches',
    unshare: 'isolate the workload in namespaces',
    setpriv: 'tie the sandbox lifetime to aim',
    nsenter: 'run probes inside the sandbox',
    chroot: 'run the workload inside the image',
    mount: 'mount /proc, /sys, /dev and tmpfs inside the sandbox',
    mknod: 'create device nodes inside the sandbox',
    ip: 'bring up loopback inside the sandbox',
    sh: 'run the sandbox supervisor',
    env: 'give the workload a clean environment',
    ln: 'create /dev links inside the sandbox',
    mkdir: 'create /dev directories inside the sandbox',
    sleep: 'pace the sandbox supervisor',
    cp: 'copy runtime state onto the sandbox\'s /run and /tmp',
  };
  for (const [tool, purpose] of Object.entries(purposes)) requireTool(tool, purpose);
}

/** Checks the root and creates missing mount points; refuses symlinked ones (a mount would follow them out of the root). */
export async function prepareRoot(root: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(root);
  } catch {
    throw new ConfigError(`image root ${root} does not exist`);
  }
  if (real === '/') throw new ConfigError('the image root cannot be the host\'s /');
  if (!(await lstat(real)).isDirectory()) throw new ConfigError(`image root ${root} is not a directory`);
  for (const [name, mode] of Object.entries(MOUNT_POINTS)) {
    const p = join(real, name);
    const st = await lstat(p).catch(() => undefined);
    if (!st) await mkdir(p, { mode });
    else if (!st.isDirectory()) {
      throw new InputError('E_PROFILE_ROOT', `/${name} in the image is a ${st.isSymbolicLink() ? 'symlink' : 'non-directory'}: cannot mount over it`, {
        hint: `make /${name} a plain directory in the image`,
      });
    }
  }
  return real;
}

function workloadArgv(run: string | readonly string[]): string[] {
  if (typeof run === 'string') {
    if (run.trim() === '') throw new ConfigError('--run: empty command');
    return ['/bin/sh', '-c', run];
  }
  if (run.length === 0 || run[0] === '') throw new ConfigError('--run: empty command');
  return [...run];
}

async function readNumberFile(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.endsWith('\n') && /^\d+\n$/.test(text) ? Number(text) : undefined;
}

/** The supervisor's marker: its host pid and strace's pid in the sandbox, once both run. */
export async function readMarker(file: string): Promise<{ initPid: number; tracerNsPid: number } | undefined> {
  const m = /^(\d+) (\d+)\n$/.exec(await readFile(file, 'utf8').catch(() => ''));
  return m ? { initPid: Number(m[1]), tracerNsPid: Number(m[2]) } : undefined;
}

/** Copies the raw traces into a new directory under `dir`; says where. */
async function keepRawTraces(dir: string, files: readonly string[]): Promise<string> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out = join(dir, `trace-${stamp}-${process.pid}-${(keptRuns += 1)}`);
  await mkdir(out, { recursive: true });
  for (const f of files) await copyFile(f, join(out, basename(f))).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
  return out;
}
let keptRuns = 0;

/**
 * Applies the runtime state plan: into the root, and for /dev, /tmp and /run (mounted fresh in the
 * sandbox) into a seed directory the supervisor copies onto the mounts. Returns the seed directory
 * when anything went there. A failed action is a warning: the workload shows whether it mattered.
 */
async function seedRuntimeState(actions: readonly RuntimeAction[], root: string, workDir: string, reporter: Reporter): Promise<string | undefined> {
  if (actions.length === 0) return undefined;
  const seed = join(workDir, 'runtime-seed');
  await rm(seed, { recursive: true, force: true });
  const mounts = Object.fromEntries(Object.entries(MOUNT_POINTS).filter(([name]) => name === 'dev' || name === 'tmp' || name === 'run'));
  const result = await applyRuntimePlan(actions, { root, seed, mounts });
  for (const f of result.failed) reporter.emit({ type: 'warn', code: 'W_RUNTIME_STATE', message: `runtime state: ${f}` });
  reporter.emit({ type: 'info', message: `runtime state: ${result.applied} of ${actions.length} action(s) applied before the workload starts` });
  return result.seeded.length > 0 ? seed : undefined;
}

/** Streams a trace file through the parser (traces of long runs are large). */
async function parseTraceFile(file: string, root: string): Promise<Trace> {
  const parser = new StraceParser({ root });
  const lines = createInterface({ input: createReadStream(file, { encoding: 'latin1' }), crlfDelay: Infinity });
  for await (const line of lines) parser.feed(line);
  return parser.finish();
}

/** Adds what each exec'd path resolves to (the kernel follows symlinks in execve, strace shows only the name). */
async function addExecTargets(trace: Trace, root: string): Promise<Trace> {
  const targets = new Map<string, PathEvidence>();
  for (const path of trace.execs) {
    const target = await resolveInRoot(root, path);
    const e = trace.paths.get(path)!;
    if (target === undefined || target === path || trace.paths.get(target)?.exec) continue;
    if (!targets.has(target)) {
      targets.set(target, { ...e, path: target, syscalls: [...e.syscalls.filter((s) => s.startsWith('execve'))], errors: [], via: path });
    }
  }
  if (targets.size === 0) return trace;
  return mergeTraces(trace, { paths: targets, execs: [...targets.keys()], processes: 0, unresolved: 0, complete: true, untied: 0, untraced: 0 });
}

/**
 * Runs `options.run` isolated inside `options.root`, traced by strace; waits until ready, runs
 * the probes, lets it run for the duration, stops it, and returns the trace. Needs root. Leaves
 * no process, mount or namespace behind, on success or failure; writes only to the work
 * directory (and missing mount points in the root).
 */
export async function runSandboxed(options: SandboxOptions): Promise<SandboxResult> {
  const reporter = options.reporter ?? silentReporter;
  if (process.getuid?.() !== 0) {
    throw new PermissionError('profiling runs the workload in namespaces and a chroot, which needs root', {
      hint: 'run aim profile as root (sudo)',
    });
  }
  const argv = workloadArgv(options.run);
  const probes = options.probes ?? [];
  probes.forEach(validateProbe);
  if (options.readyPort !== undefined && !(Number.isInteger(options.readyPort) && options.readyPort > 0 && options.readyPort < 65536)) {
    throw new ConfigError(`--ready-port ${options.readyPort}: not a TCP port`);
  }
  requireSandboxTools();
  const durationMs = options.durationMs ?? 20_000;
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const readyLog = options.readyLog === undefined ? undefined : new LineWatch(parseReadyLog(options.readyLog, '--ready-log'));
  const graceMs = options.graceMs ?? 5_000;
  const root = await prepareRoot(options.root);
  await mkdir(options.workDir, { recursive: true });
  const workDir = await realpath(options.workDir);
  const seed = await seedRuntimeState(options.runtime ?? [], root, workDir, reporter);
  const traceFile = join(workDir, 'workload.strace');
  const marker = join(workDir, 'sandbox.pid');
  const probeTraces: string[] = [];
  await Promise.all([traceFile, marker, `${marker}.exit`].map((f) => rm(f, { force: true })));

  for (const name of Object.keys(options.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ConfigError(`--env ${name}: not a variable name`);
  }
  const env = [`PATH=${DEFAULT_PATH}`, 'HOME=/root', ...Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`)];
  const workload = insideImage(root, env, argv);
  const unshare = [
    requireTool('unshare'),
    '--mount',
    '--pid',
    '--uts',
    '--net',
    '--ipc',
    '--fork',
    '--kill-child',
    '--propagation',
    'private',
    '--',
    requireTool('sh'),
    '-c',
    SUPERVISOR,
    'aim-sandbox',
    root,
    marker,
    options.hostname ?? 'aim-profile',
    seed ?? '',
    requireTool('strace'),
    ...straceFlags(traceFile),
    ...workload,
  ];
  const chain = ['--pdeathsig', 'KILL', '--', ...unshare];

  reporter.emit({ type: 'stage', stage: 'profile:run', status: 'start', detail: argv.join(' ') });
  const started = Date.now();
  const output = new OutputTail();
  const { child } = await spawnTool('setpriv', chain, {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    env: { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/bin:/sbin:/bin` },
  });
  child.stdout?.on('data', (c: Buffer) => {
    output.push(c);
    readyLog?.push('stdout', c);
  });
  child.stderr?.on('data', (c: Buffer) => {
    output.push(c);
    readyLog?.push('stderr', c);
  });
  let chainDone = false;
  const chainResult = child.then((r) => {
    chainDone = true;
    return r;
  });

  let initPid: number | undefined;
  let tracerPid: number | undefined;
  let namespace: string | undefined;
  // An open handle pins the pid namespace: its id cannot be reused by another sandbox while we
  // look for processes in it.
  let pin: FileHandle | undefined;
  const tail = () => output.text();
  const keepDir = options.keepTraceDir ?? (process.env.AIM_KEEP_TRACE || undefined);
  const keepTraces = async (): Promise<void> => {
    if (keepDir === undefined) return;
    const dir = await keepRawTraces(keepDir, [traceFile, ...probeTraces]);
    reporter.emit({ type: 'info', message: `raw strace output kept in ${dir}` });
  };

  /** Exit status of the started command once the workload has entirely ended. */
  const workloadEnded = async (): Promise<{ code?: number } | undefined> =>
    chainDone ? { code: await readNumberFile(`${marker}.exit`) } : undefined;
  const endedError = (what: string, code: number | undefined): ProfileError =>
    code === 127
      ? new ProfileError('E_PROFILE_NOT_FOUND', `workload command not found in the image: ${argv.join(' ')}`, tail())
      : new ProfileError('E_PROFILE_EXITED', `workload exited ${what} (exit ${code ?? 'unknown'})`, tail());

  try {
    // 1. Setup: the supervisor writes its host pid and strace's once the traced workload is started.
    let marks: { initPid: number; tracerNsPid: number } | undefined;
    const up = await waitUntil(async () => (marks = await readMarker(marker)) !== undefined || chainDone, SETUP_TIMEOUT_MS);
    initPid = marks?.initPid;
    if (initPid === undefined) {
      throw new ProfileError('E_PROFILE_SETUP', up ? `sandbox failed to start (exit ${(await chainResult).exitCode ?? 'signal'})` : 'sandbox did not start in time', tail());
    }
    pin = await open(`/proc/${initPid}/ns/pid`, 'r').catch(() => undefined);
    if (pin) namespace = `pid:[${(await pin.stat()).ino}]`;
    const ids = await nsPids(initPid);
    // (Gone already is fine: a workload that ended at once; the checks below report it.)
    if (ids !== undefined && ids[ids.length - 1] !== 1) {
      throw new ProfileError('E_PROFILE_SETUP', `sandbox supervisor ${initPid} is not the init of a pid namespace`, tail());
    }
    // strace is left alone when the workload is stopped; it ends by itself once its tracees have.
    if (namespace !== undefined) tracerPid = await hostPidIn(namespace, marks!.tracerNsPid);
    debug('sandbox init %d, tracer %d, in %s', initPid, tracerPid, namespace);
    const workloadStarted = Date.now(); // setup time does not count against the duration

    // 2. Readiness and probes: gates, then every probe tried until it meets its expectation.
    let ended: { code?: number } | undefined;
    const ctx: ProbeContext = { initPid, root, workDir, env, timeoutMs: options.probeTimeoutMs ?? 10_000 };
    const gates: Gate[] = [];
    if (readyLog) {
      gates.push({
        name: 'log',
        check: () => readyLog.check(),
        notReady: () => new ProfileError('E_PROFILE_NOT_READY', `the workload wrote no line matching /${options.readyLog}/ within ${readyTimeoutMs} ms`, tail(), { hint: 'check --ready-log against what the workload prints; raise --ready-timeout for slow starts' }),
      });
    }
    let portSeen = options.readyPort === undefined;
    if (options.readyPort !== undefined) {
      const port = options.readyPort;
      gates.push({
        name: 'port',
        check: async () => (portSeen = (await listeningPorts(initPid!)).has(port)),
        notReady: () => new ProfileError('E_PROFILE_NOT_READY', `port ${port} was not listening after ${readyTimeoutMs} ms`, tail()),
      });
    }
    const execTries = probes.map(() => 0);
    const run = await probeWhenReady<ProbeSpec, ProbeAttempt>({
      probes,
      gates,
      repeat: options.repeat,
      start: workloadStarted,
      deadline: workloadStarted + readyTimeoutMs,
      onUnmet: options.onUnmet,
      where: options.where,
      outputTail: tail,
      tailLabel: 'workload',
      label: probeLabel,
      expectation: probeExpectation,
      judge: (_, r) => r.unmet,
      abandon: async () => {
        if (!(ended = await workloadEnded())) return;
        const before = readyLog && !readyLog.check() ? `it wrote a line matching /${options.readyLog}/` : !portSeen ? `port ${options.readyPort} was ready` : 'its probes were done';
        throw endedError(`before ${before}`, ended.code);
      },
      attempt: async (probe, i) => {
        if (probe.kind === 'http') return runHttpProbe(ctx, probe, tail);
        const { result, traceFile: t } = await runExecProbe(ctx, probe, `probe-${i}-${++execTries[i]!}`);
        probeTraces.push(t);
        return result;
      },
    });
    const results = run.rounds[0] ?? [];
    const listening = [...(await listeningPorts(initPid))].sort((a, b) => a - b);
    const line = readyLog?.matched?.line;
    const ready = gates.length + probes.length > 0 ? { ms: run.readyMs, tries: run.tries, ...(line === undefined ? {} : { line }) } : undefined;
    if (ready) reporter.emit({ type: 'info', message: `workload ready after ${ready.ms} ms (${ready.tries} probe ${ready.tries === 1 ? 'try' : 'tries'})` });

    // 3. Run out the duration, unless the workload ends first.
    await waitUntil(async () => (ended = await workloadEnded()) !== undefined || options.signal?.aborted === true, Math.max(0, workloadStarted + durationMs - Date.now()), 100);
    throwIfCancelled(options.signal);
    if (ended && gates.length + probes.length > 0) {
      reporter.emit({ type: 'warn', code: 'W_PROFILE_EXITED', message: `workload exited by itself after the probes (exit ${ended.code ?? 'unknown'})` });
    } else if (ended && ended.code !== 0) {
      throw endedError('with an error', ended.code);
    }

    // 4. Stop, wait until every tracer has exited (their files are then written to the end), read the traces.
    const stopped = !ended;
    await teardown({ initPid, tracerPid, namespace, child, chainResult, graceMs, isDone: () => chainDone });
    await pin?.close();
    await keepTraces();
    const code = await readNumberFile(`${marker}.exit`);
    const traces = [await parseTraceFile(traceFile, root)];
    for (const t of probeTraces) traces.push(await parseTraceFile(t, root));
    const trace = await addExecTargets(traces.length === 1 ? traces[0]! : mergeTraces(...traces), root);
    if (!trace.complete) {
      throw new ProfileError('E_PROFILE_TRACE', 'the trace is incomplete: strace ended before the processes it traced (it was killed), so it may miss what they used', tail());
    }
    warnAboutGaps(trace, reporter);
    const result: SandboxResult = { trace, probes: results, probeRounds: run.rounds, outputTail: tail(), stopped, durationMs: Date.now() - started };
    if (code !== undefined) result.code = code;
    if (ready) result.ready = ready;
    if (listening.length > 0) result.listening = listening;
    reporter.emit({ type: 'stage', stage: 'profile:run', status: 'done', detail: `${trace.paths.size} paths, ${trace.processes} processes` });
    return result;
  } catch (e) {
    // Tear down before reporting; a teardown failure must not hide why the run failed.
    await teardown({ initPid, tracerPid, namespace, child, chainResult, graceMs, isDone: () => chainDone }).catch((te: unknown) =>
      reporter.emit({ type: 'warn', code: 'W_PROFILE_TEARDOWN', message: te instanceof Error ? te.message : String(te) }),
    );
    await pin?.close().catch(() => undefined);
    await keepTraces().catch((ke: unknown) => reporter.emit({ type: 'warn', code: 'W_PROFILE_KEEP_TRACE', message: ke instanceof Error ? ke.message : String(ke) }));
    throw e;
  }
}

function warnAboutGaps(trace: Trace, reporter: Reporter): void {
  if (trace.unresolved > 0) {
    reporter.emit({ type: 'warn', code: 'W_PROFILE_UNRESOLVED', message: `${trace.unresolved} traced calls named paths relative to an unknown directory` });
  }
  if (trace.untied > 0) {
    reporter.emit({
      type: 'warn',
      code: 'W_PROFILE_UNTIED',
      message: `${trace.untied} traced processes could not be tied to their parent (a pid namespace of the workload's own); they were placed by the processes cloning when they appeared`,
    });
  }
  if (trace.untraced > 0) {
    reporter.emit({ type: 'warn', code: 'W_PROFILE_UNTRACED', message: `${trace.untraced} processes were started with CLONE_UNTRACED: what they used is not in the trace` });
  }
}

interface Running {
  initPid: number | undefined;
  /** strace, inside the sandbox: never signalled, it ends once its tracees have. */
  tracerPid: number | undefined;
  namespace: string | undefined;
  child: StreamingProcess;
  chainResult: Promise<unknown>;
  graceMs: number;
  isDone: () => boolean;
}

/**
 * Stops the sandbox and waits until its namespace is empty: SIGTERM to every process in it but
 * the supervisor, SIGKILL to the survivors after the grace period (the supervisor then exits by
 * itself), SIGKILL to the supervisor and finally to the whole chain if that is not enough.
 * Idempotent; signals only processes of this sandbox.
 */
async function teardown(run: Running): Promise<void> {
  const { initPid, namespace, child, chainResult } = run;
  const { tracerPid } = run;
  const others = async () => (namespace === undefined ? [] : (await namespaceMembers(namespace)).filter((p) => p !== initPid && p !== tracerPid));
  const within = (ms: number) => waitUntil(run.isDone, ms, 50);
  if (!run.isDone() && namespace !== undefined) {
    debug('stopping: SIGTERM to %o', await others());
    signalPids(await others(), 'SIGTERM');
    if (!(await waitUntil(async () => run.isDone() || (await others()).length === 0, run.graceMs))) {
      debug('stopping: SIGKILL to %o after %d ms', await others(), run.graceMs);
      signalPids(await others(), 'SIGKILL');
    }
    if (!(await within(EXIT_TIMEOUT_MS)) && initPid !== undefined && (await pidNamespaceOf(initPid)) === namespace) {
      signalPids([initPid], 'SIGKILL');
    }
  }
  debug('stopping: chain done %s', run.isDone());
  // Without a namespace (setup never finished) there is nothing to stop gently.
  if (!(namespace === undefined ? run.isDone() : await within(EXIT_TIMEOUT_MS)) && child.pid !== undefined) {
    signalPids(await processTree(child.pid), 'SIGKILL');
    await chainResult;
  }
  if (namespace !== undefined) {
    const ns = namespace;
    const empty = await waitUntil(async () => (await namespaceMembers(ns)).length === 0, EXIT_TIMEOUT_MS, 50);
    if (!empty) throw new ProfileError('E_PROFILE_SETUP', `processes of the sandbox survived its teardown (${ns})`, '');
  }
}

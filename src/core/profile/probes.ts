/**
 * Probes exercise a sandboxed workload once it is ready. HTTP probes are made by a host `node`
 * that nsenter has put into the sandbox's network namespace only (the sandbox's loopback is not
 * reachable from the host's); nothing new has to exist in the image or on the host. Exec probes
 * run inside the image (all the sandbox's namespaces, then chroot) under their own strace, started
 * inside the sandbox's pid namespace, so what they touch joins the profile.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:os';
import { join } from 'node:path';
import { ConfigError, ToolFailedError } from '../../lib/errors.js';
import { requireTool, runTool, spawnTool, type StreamingProcess } from '../../lib/exec.js';
import { ProfileError } from './errors.js';
import { OutputTail } from './output-tail.js';
import { pidNamespaceOf, processTree, signalPids, waitUntil } from './processes.js';
import { straceFlags } from './strace-parser.js';

export type ProbeSpec = { kind: 'http'; url: string } | { kind: 'exec'; command: string };

export interface HttpProbeResult {
  kind: 'http';
  url: string;
  status: number;
  /** sha256 (hex) and length of the response body. */
  sha256: string;
  bytes: number;
  ms: number;
}

export interface ExecProbeResult {
  kind: 'exec';
  command: string;
  /** Exit status of the command (128+n when a signal ended it, as the shell reports). */
  exitCode: number;
  /** sha256 (hex) and length of its standard output. */
  sha256: string;
  bytes: number;
  /** Last lines of stdout and stderr. */
  outputTail: string;
  ms: number;
}

export type ProbeResult = HttpProbeResult | ExecProbeResult;

/** Where and how probes reach the running sandbox. */
export interface ProbeContext {
  /** Host pid of the sandbox's init (any process inside its namespaces would do). */
  initPid: number;
  /** Image root, realpath. */
  root: string;
  workDir: string;
  /** Environment of commands inside the image, as NAME=value. */
  env: readonly string[];
  timeoutMs: number;
}

/**
 * Capabilities no profiled workload should need and whose use would reach past the sandbox
 * (kernel modules, raw I/O, reboot, the clock, the kernel log, LSM policy).
 */
const DROPPED_CAPABILITIES = ['sys_module', 'sys_rawio', 'sys_boot', 'sys_time', 'syslog', 'mac_admin', 'mac_override', 'wake_alarm'];

/**
 * The host-side argv that runs `argv` inside the image: a clean environment, a reduced
 * capability bounding set, then chroot (whose own host-side work the trace parser ignores).
 */
export function insideImage(root: string, env: readonly string[], argv: readonly string[]): string[] {
  return [
    requireTool('env'),
    '-i',
    ...env,
    requireTool('setpriv'),
    '--bounding-set',
    DROPPED_CAPABILITIES.map((c) => `-${c}`).join(','),
    '--',
    requireTool('chroot'),
    root,
    ...argv,
  ];
}

/** Checks probe specs before anything starts. */
export function validateProbe(probe: ProbeSpec): void {
  if (probe.kind === 'http') {
    let url: URL;
    try {
      url = new URL(probe.url);
    } catch {
      throw new ConfigError(`--probe ${probe.url}: not a URL`, { hint: 'use e.g. http://127.0.0.1:80/' });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(`--probe ${probe.url}: only http and https probes are supported`);
    }
  } else if (probe.command.trim() === '') {
    throw new ConfigError('--probe-exec: empty command');
  }
}

// Runs as `node -e` inside the sandbox's network namespace. Always exits 0 and prints one JSON
// object, so the outcome (status or error) is data, not a tool failure.
const HTTP_CLIENT = `
const [url, timeout] = process.argv.slice(1);
const mod = require(url.startsWith('https:') ? 'https' : 'http');
const hash = require('crypto').createHash('sha256');
const t0 = Date.now();
let done = false;
const finish = (o) => { if (!done) { done = true; process.stdout.write(JSON.stringify(o)); } };
const req = mod.get(url, { timeout: Number(timeout), rejectUnauthorized: false }, (res) => {
  let bytes = 0;
  res.on('data', (c) => { hash.update(c); bytes += c.length; });
  res.on('end', () => finish({ status: res.statusCode, sha256: hash.digest('hex'), bytes, ms: Date.now() - t0 }));
  res.on('error', (e) => finish({ error: e.code || e.message }));
});
req.on('timeout', () => req.destroy(Object.assign(new Error('timed out after ' + timeout + ' ms'), { code: 'ETIMEDOUT' })));
req.on('error', (e) => finish({ error: e.code ? e.code + ' (' + e.message + ')' : e.message }));
`;

/** One GET against the sandbox's loopback; a refused or timed-out request is a ProfileError. */
export async function runHttpProbe(ctx: ProbeContext, url: string, workloadTail: () => string): Promise<HttpProbeResult> {
  let stdout: string;
  try {
    ({ stdout } = await runTool(
      'nsenter',
      ['--target', String(ctx.initPid), '--net', '--', process.execPath, '-e', HTTP_CLIENT, url, String(ctx.timeoutMs)],
      { env: {}, extendEnv: false, timeout: ctx.timeoutMs + 10_000 },
    ));
  } catch (e) {
    if (!(e instanceof ToolFailedError)) throw e;
    throw new ProfileError('E_PROFILE_PROBE', `probe ${url} could not run: ${e.message}`, workloadTail(), { cause: e });
  }
  let out: { status?: number; sha256?: string; bytes?: number; ms?: number; error?: string };
  try {
    out = JSON.parse(stdout) as typeof out;
  } catch {
    throw new ProfileError('E_PROFILE_PROBE', `probe ${url}: no answer from the probe client (${stdout.slice(0, 200)})`, workloadTail());
  }
  if (out.error !== undefined || out.status === undefined) {
    throw new ProfileError('E_PROFILE_PROBE', `probe ${url} failed: ${out.error ?? 'no status'}`, workloadTail());
  }
  return { kind: 'http', url, status: out.status, sha256: out.sha256!, bytes: out.bytes!, ms: out.ms! };
}

/**
 * Runs `sh -c command` inside the image, traced into its own file. Its exit status is data; only
 * a timeout is an error.
 */
export async function runExecProbe(
  ctx: ProbeContext,
  command: string,
  index: number,
  workloadTail: () => string,
): Promise<{ result: ExecProbeResult; traceFile: string }> {
  const traceFile = join(ctx.workDir, `probe-${index}.strace`);
  // strace runs inside the sandbox's pid namespace, as the workload's does (see sandbox.ts).
  const args = [
    '--pdeathsig',
    'KILL',
    '--',
    requireTool('nsenter'),
    '--target',
    String(ctx.initPid),
    '--mount',
    '--uts',
    '--ipc',
    '--net',
    '--pid',
    '--',
    requireTool('strace', 'trace what the workload touches'),
    ...straceFlags(traceFile),
    ...insideImage(ctx.root, ctx.env, ['/bin/sh', '-c', command]),
  ];
  const t0 = Date.now();
  const child = spawnTool('setpriv', args, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  const hash = createHash('sha256');
  let bytes = 0;
  const tail = new OutputTail();
  child.stdout?.on('data', (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
    tail.push(c);
  });
  child.stderr?.on('data', (c: Buffer) => tail.push(c));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ctx.timeoutMs);
  });
  const outcome = await Promise.race([child, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    await killProbe(child);
    throw new ProfileError('E_PROFILE_PROBE', `probe-exec "${command}" timed out after ${ctx.timeoutMs} ms`, tail.text() || workloadTail());
  }
  const exitCode = outcome.exitCode ?? 128 + signalNumber(outcome.signal);
  return {
    result: { kind: 'exec', command, exitCode, sha256: hash.digest('hex'), bytes, outputTail: tail.text(), ms: Date.now() - t0 },
    traceFile,
  };
}

/**
 * Kills a probe's processes inside the sandbox first, so nsenter reaps them and exits by itself:
 * killing nsenter first would hand its in-sandbox child to the host's init, and the sandbox's pid
 * namespace cannot end before that zombie is reaped.
 */
async function killProbe(child: StreamingProcess): Promise<void> {
  if (child.pid === undefined) return;
  let done = false;
  void child.then(() => (done = true));
  const ours = await pidNamespaceOf(process.pid);
  const tree = await processTree(child.pid);
  const inside: number[] = [];
  for (const pid of tree) if ((await pidNamespaceOf(pid)) !== ours) inside.push(pid);
  signalPids(inside, 'SIGKILL');
  if (!(await waitUntil(() => done, 2_000))) signalPids(await processTree(child.pid), 'SIGKILL');
  await child;
}

function signalNumber(signal: string | undefined): number {
  return signal === undefined ? 0 : (constants.signals[signal as NodeJS.Signals] ?? 0);
}

/**
 * Probes exercise a sandboxed workload. Each function here is one try; core/probe/readiness
 * tries again until the answer meets the probe's expectation. HTTP probes are made by a host `node`
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
import { describeExecExpectation, describeHttpExpectation, unmetExec, unmetHttp, type ExecExpectation, type HttpExpectation } from '../probe/expectation.js';
import type { Judged } from '../probe/readiness.js';
import { ProfileError } from './errors.js';
import { OutputTail } from './output-tail.js';
import { listeningPorts, pidNamespaceOf, processTree, signalPids, waitUntil } from './processes.js';
import { straceFlags } from './strace-parser.js';

/** A probe and what it expects (no expectation: HTTP 2xx, exit status 0). */
export type ProbeSpec = { kind: 'http'; url: string; expect?: HttpExpectation } | { kind: 'exec'; command: string; expect?: ExecExpectation };

/** One try of an HTTP probe: its answer, or why there was none (`error`), and why it misses its expectation (`unmet`). */
export interface HttpProbeResult {
  kind: 'http';
  url: string;
  status?: number;
  /** sha256 (hex) and length of the response body. */
  sha256?: string;
  bytes?: number;
  /** The end of the body (at most 512 characters), for errors and reports. */
  bodyTail?: string;
  /** No answer: refused, timed out, nothing listening on the port yet. */
  error?: string;
  unmet?: string;
  ms: number;
}

/** One try of an exec probe. */
export interface ExecProbeResult {
  kind: 'exec';
  command: string;
  /** Exit status of the command (128+n when a signal ended it, as the shell reports). */
  exitCode?: number;
  /** sha256 (hex) and length of its standard output. */
  sha256?: string;
  bytes?: number;
  /** Last lines of stdout and stderr. */
  outputTail: string;
  /** It did not end: timed out. */
  error?: string;
  unmet?: string;
  ms: number;
}

export type ProbeAttempt = HttpProbeResult | ExecProbeResult;

/** A probe's result as judged against its expectation, with its tries and time to ready. */
export type ProbeResult = Judged<ProbeAttempt>;

const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

/** An HTTP probe; it carries `expect` only when that says something beyond the default. */
export function httpProbe(url: string, expect: HttpExpectation = {}): ProbeSpec {
  const e = defined(expect);
  return Object.keys(e).length > 0 ? { kind: 'http', url, expect: e } : { kind: 'http', url };
}

/** An exec probe; it carries `expect` only when that says something beyond the default. */
export function execProbe(command: string, expect: ExecExpectation = {}): ProbeSpec {
  const e = defined(expect);
  return Object.keys(e).length > 0 ? { kind: 'exec', command, expect: e } : { kind: 'exec', command };
}

export const probeLabel = (p: ProbeSpec): string => (p.kind === 'http' ? p.url : `exec: ${p.command}`);
export const probeExpectation = (p: ProbeSpec): string => (p.kind === 'http' ? describeHttpExpectation(p.expect) : describeExecExpectation(p.expect));

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

/** The TCP port an HTTP probe connects to. */
export function probePort(url: string): number {
  const u = new URL(url);
  return u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
}

/** Checks probe specs and their expectations before anything starts. */
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
    const status = probe.expect?.status;
    if (status !== undefined && !(Number.isInteger(status) && status >= 100 && status <= 599)) {
      throw new ConfigError(`probe ${probe.url}: expected status ${status} is not an HTTP status (100-599)`);
    }
  } else {
    if (probe.command.trim() === '') throw new ConfigError('--probe-exec: empty command');
    const code = probe.expect?.exitCode;
    if (code !== undefined && !(Number.isInteger(code) && code >= 0 && code <= 255)) {
      throw new ConfigError(`probe-exec "${probe.command}": expected exit code ${code} is not an exit status (0-255)`);
    }
  }
}

/** Bytes of a body or of an output kept to check what it contains. */
const MATCH_LIMIT = 1024 * 1024;
const tailOf = (text: string, chars = 512) => (text.length > chars ? text.slice(-chars) : text);

// Runs as `node -e` inside the sandbox's network namespace. Always exits 0 and prints one JSON
// object, so the outcome (status or error) is data, not a tool failure. The body's first MiB
// comes back (base64) so that aim can check what it contains.
const HTTP_CLIENT = `
const [url, timeout, limit] = process.argv.slice(1);
const mod = require(url.startsWith('https:') ? 'https' : 'http');
const hash = require('crypto').createHash('sha256');
const t0 = Date.now();
let done = false;
const finish = (o) => { if (!done) { done = true; process.stdout.write(JSON.stringify(o)); } };
const req = mod.get(url, { timeout: Number(timeout), rejectUnauthorized: false }, (res) => {
  let bytes = 0;
  const kept = [];
  let keptBytes = 0;
  res.on('data', (c) => {
    hash.update(c);
    bytes += c.length;
    if (keptBytes < Number(limit)) { kept.push(c); keptBytes += c.length; }
  });
  res.on('end', () => finish({ status: res.statusCode, sha256: hash.digest('hex'), bytes, body: Buffer.concat(kept).subarray(0, Number(limit)).toString('base64'), ms: Date.now() - t0 }));
  res.on('error', (e) => finish({ error: e.code || e.message, ms: Date.now() - t0 }));
});
req.on('timeout', () => req.destroy(Object.assign(new Error('timed out after ' + timeout + ' ms'), { code: 'ETIMEDOUT' })));
req.on('error', (e) => finish({ error: e.code ? e.code + ' (' + e.message + ')' : e.message, ms: Date.now() - t0 }));
`;

/**
 * One GET against the sandbox's loopback, once something listens on the URL's port (until then
 * the try costs a read of /proc, not a process). Refusals and timeouts are results.
 */
export async function runHttpProbe(ctx: ProbeContext, probe: Extract<ProbeSpec, { kind: 'http' }>, workloadTail: () => string): Promise<HttpProbeResult> {
  const { url } = probe;
  const port = probePort(url);
  if (!(await listeningPorts(ctx.initPid)).has(port)) {
    const error = `nothing listens on port ${port} yet`;
    return { kind: 'http', url, error, unmet: error, ms: 0 };
  }
  let stdout: string;
  try {
    ({ stdout } = await runTool(
      'nsenter',
      ['--target', String(ctx.initPid), '--net', '--', process.execPath, '-e', HTTP_CLIENT, url, String(ctx.timeoutMs), String(MATCH_LIMIT)],
      { env: {}, extendEnv: false, timeout: ctx.timeoutMs + 10_000 },
    ));
  } catch (e) {
    if (!(e instanceof ToolFailedError)) throw e;
    throw new ProfileError('E_PROFILE_PROBE', `probe ${url} could not run: ${e.message}`, workloadTail(), { cause: e });
  }
  let out: { status?: number; sha256?: string; bytes?: number; body?: string; ms?: number; error?: string };
  try {
    out = JSON.parse(stdout) as typeof out;
  } catch {
    throw new ProfileError('E_PROFILE_PROBE', `probe ${url}: no answer from the probe client (${stdout.slice(0, 200)})`, workloadTail());
  }
  const ms = out.ms ?? 0;
  if (out.error !== undefined || out.status === undefined) {
    const error = out.error ?? 'no status';
    return { kind: 'http', url, error, unmet: error, ms };
  }
  const body = Buffer.from(out.body ?? '', 'base64').toString('utf8');
  const unmet = unmetHttp(probe.expect, { status: out.status, body });
  return { kind: 'http', url, status: out.status, sha256: out.sha256!, bytes: out.bytes!, bodyTail: tailOf(body), ...(unmet === undefined ? {} : { unmet }), ms };
}

/**
 * Runs `sh -c command` inside the image, traced into its own file. Its exit status is data, and
 * so is a timeout (the command is killed).
 */
export async function runExecProbe(
  ctx: ProbeContext,
  probe: Extract<ProbeSpec, { kind: 'exec' }>,
  traceName: string,
): Promise<{ result: ExecProbeResult; traceFile: string }> {
  const traceFile = join(ctx.workDir, `${traceName}.strace`);
  // strace runs inside the sandbox's pid namespace, as the workload's does (see sandbox.ts).
  const result = await execInside(ctx, probe, [requireTool('strace', 'trace what the workload touches'), ...straceFlags(traceFile)]);
  return { result, traceFile };
}

/** Runs an exec probe inside the image as runExecProbe does, untraced (qualification probes a booted image: nothing joins a profile). */
export async function runExecProbeUntraced(ctx: ProbeContext, probe: Extract<ProbeSpec, { kind: 'exec' }>): Promise<ExecProbeResult> {
  return execInside(ctx, probe, []);
}

async function execInside(ctx: ProbeContext, probe: Extract<ProbeSpec, { kind: 'exec' }>, tracer: string[]): Promise<ExecProbeResult> {
  const { command } = probe;
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
    ...tracer,
    ...insideImage(ctx.root, ctx.env, ['/bin/sh', '-c', command]),
  ];
  const t0 = Date.now();
  const { child } = await spawnTool('setpriv', args, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  const hash = createHash('sha256');
  let bytes = 0;
  const tail = new OutputTail();
  const output = new OutputTail(MATCH_LIMIT);
  child.stdout?.on('data', (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
    tail.push(c);
    output.push(c);
  });
  child.stderr?.on('data', (c: Buffer) => {
    tail.push(c);
    output.push(c);
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ctx.timeoutMs);
  });
  const outcome = await Promise.race([child, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    await killProbe(child);
    const error = `timed out after ${ctx.timeoutMs} ms`;
    return { kind: 'exec', command, error, unmet: error, outputTail: tail.text(), ms: Date.now() - t0 };
  }
  const exitCode = outcome.exitCode ?? 128 + signalNumber(outcome.signal);
  const unmet = unmetExec(probe.expect, { exitCode, output: output.text(Infinity) });
  return { kind: 'exec', command, exitCode, sha256: hash.digest('hex'), bytes, outputTail: tail.text(), ...(unmet === undefined ? {} : { unmet }), ms: Date.now() - t0 };
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

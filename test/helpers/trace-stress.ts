/**
 * A stress loop for the profiling trace: runs the sandbox again and again on workloads whose
 * children live briefly and are reaped at once (busybox httpd forks per connection and ignores
 * SIGCHLD; tracee's fork mode does the same), while the host churns through pid numbers and
 * spinning processes load the CPUs, and counts the opens the trace missed.
 *
 * Used by test/integration/trace-stress.test.ts: a few iterations in the normal suite,
 * `AIM_TRACE_STRESS=100 npx vitest run test/integration/trace-stress.test.ts` for a real run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runSandboxed } from '../../src/core/profile/sandbox.js';
import type { Reporter } from '../../src/lib/reporter.js';
import { staticProgram } from './c-programs.js';
import { tempDir } from './tmp.js';

export interface StressOptions {
  /** A busybox-static binary (runs alone in an empty root). */
  busybox: string;
  iterations: number;
  /** Pages fetched per iteration from busybox httpd, one connection (one httpd child) each. */
  requests: number;
  /** Children per iteration of a server that ignores SIGCHLD (tracee fork, as an exec probe). */
  forks: number;
  /** Short-lived processes per iteration inside the sandbox (tracee churn). */
  innerChurn: number;
  /**
   * Lower the sandbox's own pid_max to this once it is ready (kernels with a pid_max per pid
   * namespace, 6.14 and later), so pid numbers inside it wrap and are reused within one run.
   */
  innerPidMax?: number;
  /** Processes spinning on the host to load the CPUs. */
  spinners: number;
  /** A host process creating short-lived processes as fast as it can, so pid numbers wrap. */
  churn: boolean;
  /** Copy the raw traces of iterations that missed something here. */
  keepFailedDir?: string;
  log?: (line: string) => void;
}

export interface StressResult {
  iterations: number;
  /** Opens that had to be in the traces, over all iterations. */
  expected: number;
  missed: number;
  iterationsWithMisses: number;
  /** Iterations whose run failed (an error instead of a trace). */
  errors: string[];
  /** Processes the parser could not tie to their parent (Trace.untied), summed. */
  untied: number;
  /** Iterations whose sandbox got the lower pid_max. */
  pidMaxLowered: number;
  ms: number;
}

/** Processes whose root is `root`: the sandboxed workload, as the host sees it. */
function chrootedInto(root: string): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        return readlinkSync(`/proc/${n}/root`) === root;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * Sets pid_max in the pid namespace of the sandbox around `root`, if that namespace has its own
 * (its value differs from the host's); never touches the host's. Tells whether it did.
 */
function lowerPidMax(root: string, pidMax: number): boolean {
  const pid = chrootedInto(root)[0];
  if (pid === undefined) return false;
  const enter = ['--target', String(pid), '--pid', '--mount', '--'];
  const inside = execFileSync('nsenter', [...enter, 'cat', '/proc/sys/kernel/pid_max'], { encoding: 'utf8' }).trim();
  if (inside === readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim()) return false;
  execFileSync('nsenter', [...enter, 'sh', '-c', `echo ${pidMax} > /proc/sys/kernel/pid_max`]);
  return true;
}

/** Host processes started by the stress loop; all stopped by {@link stopAll}. */
function startHelpers(options: StressOptions): ChildProcess[] {
  const tracee = staticProgram('tracee');
  const started: ChildProcess[] = [];
  if (options.churn) started.push(spawn(tracee, ['churn', '0'], { stdio: 'ignore' }));
  for (let i = 0; i < options.spinners; i++) started.push(spawn(tracee, ['spin', '0'], { stdio: 'ignore' }));
  return started;
}

async function stopAll(started: ChildProcess[]): Promise<void> {
  await Promise.all(
    started.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        }),
    ),
  );
}

async function makeTree(root: string, options: StressOptions): Promise<string[]> {
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'www'));
  await mkdir(join(root, 'data'));
  await copyFile(options.busybox, join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'httpd', 'wget', 'seq']) await symlink('busybox', join(root, 'bin', applet));
  await copyFile(staticProgram('tracee'), join(root, 'bin/tracee'));
  await chmod(join(root, 'bin/tracee'), 0o755);
  const expected = ['/www/index.html'];
  await writeFile(join(root, 'www/index.html'), 'index\n');
  for (let i = 0; i < options.requests; i++) {
    await writeFile(join(root, `www/p${i}.html`), `page ${i}\n`);
    expected.push(`/www/p${i}.html`);
  }
  for (let i = 0; i < options.forks; i++) {
    await writeFile(join(root, `data/fork-${i}`), `${i}\n`);
    expected.push(`/data/fork-${i}`);
  }
  return expected;
}

/** Runs the loop; never throws for a failed iteration (it is counted), only for a broken set-up. */
export async function runTraceStress(options: StressOptions): Promise<StressResult> {
  const log = options.log ?? (() => undefined);
  const result: StressResult = { iterations: 0, expected: 0, missed: 0, iterationsWithMisses: 0, errors: [], untied: 0, pidMaxLowered: 0, ms: 0 };
  const t0 = Date.now();
  const helpers = startHelpers(options);
  const tmp = await tempDir('aim-stress-');
  try {
    for (let i = 0; i < options.iterations; i++) {
      const base = join(tmp.dir, String(i));
      const root = join(base, 'root');
      const expected = await makeTree(root, options);
      const probes = [
        { kind: 'http' as const, url: 'http://127.0.0.1:80/index.html' },
        ...(options.innerChurn > 0 ? [{ kind: 'exec' as const, command: `tracee churn ${options.innerChurn}` }] : []),
        { kind: 'exec' as const, command: `for i in $(seq 0 ${options.requests - 1}); do wget -q -O /dev/null http://127.0.0.1/p$i.html || exit 1; done` },
        { kind: 'exec' as const, command: `tracee fork ${options.forks}` },
      ];
      result.iterations++;
      result.expected += expected.length;
      const started = Date.now();
      try {
        // Once ready (before the probes), the sandbox's pid numbers may be made to wrap.
        const reporter: Reporter = {
          emit: (event) => {
            if (event.type === 'info' && options.innerPidMax !== undefined && lowerPidMax(root, options.innerPidMax)) result.pidMaxLowered++;
          },
        };
        const r = await runSandboxed({ root, workDir: join(base, 'work'), run: 'exec httpd -f -p 80 -h /www', readyPort: 80, probes, durationMs: 200, graceMs: 2_000, probeTimeoutMs: 120_000, reporter });
        const failedProbe = r.probes.find((p) => (p.kind === 'http' ? p.status !== 200 : p.exitCode !== 0));
        if (failedProbe) throw new Error(`probe failed: ${JSON.stringify(failedProbe)}`);
        const missing = expected.filter((p) => !r.trace.paths.get(p)?.ok);
        result.missed += missing.length;
        result.untied += r.trace.untied ?? 0;
        if (missing.length > 0) {
          result.iterationsWithMisses++;
          if (options.keepFailedDir) await cp(join(base, 'work'), join(options.keepFailedDir, `iteration-${i}`), { recursive: true });
        }
        log(`${i}: ${missing.length} of ${expected.length} opens missed${missing.length ? ` (${missing.slice(0, 5).join(' ')})` : ''}, ${Date.now() - started} ms`);
      } catch (e) {
        const message = e instanceof Error ? e.message.split('\n')[0]! : String(e);
        result.errors.push(`${i}: ${message}`);
        log(`${i}: error ${message}`);
      }
      await rm(base, { recursive: true, force: true });
    }
  } finally {
    await stopAll(helpers);
    await tmp.cleanup();
  }
  result.ms = Date.now() - t0;
  return result;
}

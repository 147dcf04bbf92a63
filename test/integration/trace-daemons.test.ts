import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runSandboxed, type SandboxResult } from '../../src/core/profile/sandbox.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { HAS_GCC, staticProgram } from '../helpers/c-programs.js';
import { tempDir } from '../helpers/tmp.js';

const has = (tool: string) => `${process.env.PATH ?? ''}:/usr/sbin:/sbin`.split(':').some((d) => d !== '' && existsSync(join(d, tool)));
const CAN_RUN = process.getuid?.() === 0 && HAS_GCC && ['strace', 'unshare', 'nsenter', 'setpriv', 'ip', 'chroot', 'mount', 'mknod'].every(has);

const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/**
 * Each case starts processes or threads one way (test/fixtures/trace/tracee.c); each of them
 * opens its own file under /data, and the trace must hold every one of those opens.
 */
const CASES: { name: string; args: string[]; files: string[]; processes: number }[] = [
  { name: 'a server that forks per request and ignores SIGCHLD', args: ['fork', '40'], files: range('fork', 40), processes: 41 },
  { name: 'a daemon that double-forks and opens its file once its parents are gone', args: ['daemon'], files: ['daemon'], processes: 3 },
  { name: 'a program that re-executes itself through /proc/self/exe and its path', args: ['reexec'], files: ['reexec-proc', 'reexec-path'], processes: 1 },
  { name: 'pthreads (clone3) opening files from threads other than main', args: ['threads', '16'], files: range('thread', 16), processes: 1 },
  { name: 'posix_spawn (clone3 CLONE_VM|CLONE_VFORK) and vfork+exec', args: ['spawn'], files: ['spawned', 'vforked'], processes: 3 },
  { name: 'a process made by a raw clone3 syscall', args: ['clone3'], files: ['clone3'], processes: 2 },
  { name: 'POSIX AIO with a SIGEV_THREAD notification, and a worker thread pool', args: ['aio'], files: ['aio-read', 'aio-notify', ...range('pool', 8)], processes: 1 },
];

describe.skipIf(!CAN_RUN)('the trace misses no process or thread (root, strace, gcc)', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await cleanup?.();
    cleanup = undefined;
  });

  async function run(args: string[], files: string[]): Promise<{ result: SandboxResult; warnings: string[] }> {
    const tmp = await tempDir('aim-trace-');
    cleanup = tmp.cleanup;
    const root = join(tmp.dir, 'root');
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'data'));
    for (const name of ['tracee', 'tracee-thread']) {
      await copyFile(staticProgram('tracee'), join(root, 'bin', name));
      await chmod(join(root, 'bin', name), 0o755);
    }
    for (const f of files) await writeFile(join(root, 'data', f), `${f}\n`);
    const reporter = new RecordingReporter();
    const result = await runSandboxed({ root, workDir: join(tmp.dir, 'work'), run: ['/bin/tracee', ...args], durationMs: 30_000, reporter });
    const warnings = reporter.events.flatMap((e) => (e.type === 'warn' ? [e.code] : []));
    return { result, warnings };
  }

  for (const c of CASES) {
    it(`records every open of ${c.name}`, async () => {
      const { result, warnings } = await run(c.args, c.files);
      expect(result.code, result.outputTail).toBe(0);
      expect(result.stopped).toBe(false);
      const missing = c.files.filter((f) => !(result.trace.paths.get(`/data/${f}`)?.ok && result.trace.paths.get(`/data/${f}`)?.syscalls.includes('openat')));
      expect(missing).toEqual([]);
      expect(result.trace).toMatchObject({ complete: true, untied: 0, untraced: 0, processes: c.processes });
      expect(result.trace.paths.get('/bin/tracee')).toMatchObject({ exec: true, ok: true });
      expect(warnings).toEqual([]);
    }, 60_000);
  }

  it('records the program a thread other than the leader executed, as executed', async () => {
    const { result } = await run(['thread-exec', '/bin/tracee-thread'], ['thread-exec']);
    expect(result.code, result.outputTail).toBe(0);
    expect(result.trace.paths.get('/data/thread-exec')).toMatchObject({ ok: true });
    expect(result.trace.paths.get('/bin/tracee-thread')).toMatchObject({ ok: true, exec: true, errors: [] });
    expect(result.trace.execs).toEqual(['/bin/tracee', '/bin/tracee-thread']);
    expect(result.trace.complete).toBe(true);
  }, 60_000);

  it('records a re-exec through /proc/self/exe as the program it really ran', async () => {
    const { result } = await run(['reexec'], ['reexec-proc', 'reexec-path']);
    expect(result.trace.paths.get('/proc/self/exe')).toMatchObject({ exec: true });
    expect(result.trace.paths.get('/bin/tracee')).toMatchObject({ exec: true, syscalls: ['execve'] });
  }, 60_000);
});

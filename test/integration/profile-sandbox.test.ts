import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, openSync, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, realpath, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProbeFailedError } from '../../src/core/probe/readiness.js';
import { ProfileError } from '../../src/core/profile/errors.js';
import { runSandboxed, type SandboxOptions } from '../../src/core/profile/sandbox.js';
import { RecordingReporter, type AimEvent, type Reporter } from '../../src/lib/reporter.js';
import { tempDir } from '../helpers/tmp.js';

function which(tool: string): string | undefined {
  for (const dir of `${process.env.PATH ?? ''}:/usr/sbin:/sbin`.split(':')) {
    if (dir && existsSync(join(dir, tool))) return join(dir, tool);
  }
  return undefined;
}

const BUSYBOX = which('busybox');
/** busybox-static runs alone in an empty root; a dynamic busybox does not. */
const isStatic = (bin: string) => {
  if (process.getuid?.() !== 0) return false;
  const dir = mkdtempSync(join(tmpdir(), 'aim-busybox-'));
  try {
    copyFileSync(bin, join(dir, 'busybox'));
    chmodSync(join(dir, 'busybox'), 0o755);
    execFileSync('chroot', [dir, '/busybox', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};
const CAN_RUN =
  process.getuid?.() === 0 &&
  ['strace', 'unshare', 'nsenter', 'setpriv', 'ip', 'chroot', 'mount', 'mknod'].every((t) => which(t) !== undefined) &&
  BUSYBOX !== undefined &&
  isStatic(BUSYBOX);

const APPLETS = ['sh', 'httpd', 'cat', 'echo', 'grep', 'ls', 'mkdir', 'mount', 'nc', 'sleep'];
const BODY = '<h1>served from the image</h1>\n';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** A tiny image: busybox-static with applet links, a web root and a file only a probe reads. */
async function makeImage() {
  const tmp = await tempDir('aim-profile-');
  const base = await realpath(tmp.dir);
  const root = join(base, 'root');
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'www'));
  await mkdir(join(root, 'etc'));
  await copyFile(BUSYBOX!, join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  for (const a of APPLETS) await symlink('busybox', join(root, 'bin', a));
  await writeFile(join(root, 'www/index.html'), BODY);
  await writeFile(join(root, 'www/probe-only.txt'), 'probe\n');
  return { base, root, work: join(base, 'work'), cleanup: tmp.cleanup };
}

/** Pids whose root directory is the image root: the workload and probes, as the host sees them. */
function chrootedInto(root: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/root`) === root) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

function inPidNamespace(ns: string): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        return readlinkSync(`/proc/${n}/ns/pid`) === ns;
      } catch {
        return false;
      }
    })
    .map(Number);
}

const mountsUnder = (dir: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir));

/** What the host looked like while the workload was ready (sampled from the reporter). */
interface Sample {
  mounts: string[];
  hostname: string;
  pids: number[];
  namespaces: string[];
}

/** Open handles on the sampled pid namespaces, so their ids are not reused before we check them. */
const pins: number[] = [];

function sampling(root: string, base: string): { reporter: Reporter; samples: Sample[]; events: AimEvent[] } {
  const samples: Sample[] = [];
  const rec = new RecordingReporter();
  const reporter: Reporter = {
    emit(event) {
      rec.emit(event);
      if (event.type === 'info' || event.type === 'progress') {
        const pids = chrootedInto(root);
        const namespaces: string[] = [];
        for (const p of pids) {
          try {
            const ns = readlinkSync(`/proc/${p}/ns/pid`);
            if (!namespaces.includes(ns)) {
              pins.push(openSync(`/proc/${p}/ns/pid`, 'r'));
              namespaces.push(ns);
            }
          } catch {
            // gone
          }
        }
        samples.push({ mounts: mountsUnder(base), hostname: hostname(), pids, namespaces });
      }
    },
  };
  return { reporter, samples, events: rec.events };
}

async function expectProbeFailed(p: Promise<unknown>): Promise<ProbeFailedError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ProbeFailedError);
  expect((e as ProbeFailedError).code).toBe('E_PROBE_FAILED');
  return e as ProbeFailedError;
}

async function expectProfileError(p: Promise<unknown>, code: string): Promise<ProfileError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ProfileError);
  expect((e as ProfileError).code).toBe(code);
  return e as ProfileError;
}

describe.skipIf(!CAN_RUN)('sandboxed, traced workload (root, strace, util-linux, iproute2, busybox-static)', () => {
  let image: Awaited<ReturnType<typeof makeImage>>;
  const hostName = hostname();
  afterEach(async () => {
    for (const fd of pins.splice(0)) closeSync(fd);
    // Whatever happened, nothing of the sandbox may survive.
    expect(chrootedInto(image.root)).toEqual([]);
    expect(mountsUnder(image.base)).toEqual([]);
    expect(hostname()).toBe(hostName);
    await image.cleanup();
  });

  const run = async (options: Omit<SandboxOptions, 'root' | 'workDir'>) => {
    image = await makeImage();
    return runSandboxed({ root: image.root, workDir: image.work, graceMs: 2_000, ...options });
  };

  it('serves a file, probes it, traces it from inside the chroot only, and leaves nothing behind', async () => {
    image = await makeImage();
    const { reporter, samples } = sampling(image.root, image.base);
    const result = await runSandboxed({
      root: image.root,
      workDir: image.work,
      // writes to /tmp and a mount of its own must stay inside the sandbox
      run: 'echo starting; echo scratch > /tmp/scratch; mkdir -p /mnt && mount -t tmpfs none /mnt; exec httpd -f -p 80 -h /www',
      readyPort: 80,
      probes: [
        { kind: 'http', url: 'http://127.0.0.1:80/index.html' },
        { kind: 'http', url: 'http://127.0.0.1/missing.html', expect: { status: 404 } },
        { kind: 'exec', command: 'cat /www/probe-only.txt; hostname' },
      ],
      durationMs: 500,
      graceMs: 2_000,
      reporter,
    });

    // probes
    expect(result.probes[0]).toMatchObject({ kind: 'http', status: 200, sha256: sha256(BODY), bytes: BODY.length });
    expect(result.probes[1]).toMatchObject({ kind: 'http', status: 404, met: true });
    expect(result.probes[2]).toMatchObject({ kind: 'exec', exitCode: 0, sha256: sha256('probe\naim-profile\n'), outputTail: 'probe\naim-profile' });
    expect(result.stopped).toBe(true);
    expect(result.ready!.ms).toBeGreaterThan(0);
    expect(result.ready!.tries).toBeGreaterThanOrEqual(3);
    expect(result.probes.every((p) => p.met && p.tries >= 1 && p.readyMs <= result.ready!.ms)).toBe(true);
    expect(result.outputTail).toContain('starting');

    // trace: what the workload and the probes used, as paths inside the image
    const t = result.trace;
    expect(t.paths.get('/www/index.html')).toMatchObject({ ok: true, exec: false });
    expect(t.paths.get('/www/index.html')?.syscalls).toContain('openat');
    expect(t.paths.get('/www/missing.html')).toMatchObject({ ok: false });
    expect(t.paths.get('/www/probe-only.txt')).toMatchObject({ ok: true, syscalls: ['openat'] });
    expect(t.paths.get('/bin/busybox')).toMatchObject({ exec: true });
    expect(t.paths.get('/bin/sh')).toMatchObject({ exec: true });
    expect(t.execs).toContain('/bin/busybox');
    expect(t.paths.get('/tmp/scratch')).toMatchObject({ ok: true, wrote: true });
    expect(t.processes).toBeGreaterThanOrEqual(2);
    // nothing from the host side: unshare, the supervisor, mount, env, chroot's own libc
    for (const host of ['/usr/bin/unshare', '/usr/sbin/chroot', '/usr/bin/env', '/usr/bin/mount', '/etc/ld.so.cache', '/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libc.so.6']) {
      expect(t.paths.has(host), host).toBe(false);
    }
    expect([...t.paths.keys()].filter((p) => p.startsWith(image.base))).toEqual([]);

    // isolation while it ran: workload processes existed in their own pid namespace, the host saw
    // none of the sandbox's mounts, and kept its hostname
    expect(samples.length).toBeGreaterThan(0);
    expect(samples[0]!.pids.length).toBeGreaterThan(0);
    expect(samples[0]!.namespaces).toHaveLength(1);
    expect(samples[0]!.namespaces[0]).not.toBe(readlinkSync('/proc/self/ns/pid'));
    for (const s of samples) {
      expect(s.mounts).toEqual([]);
      expect(s.hostname).toBe(hostName);
    }
    // afterwards: no process of that namespace, no mount, no file written outside the work dir
    expect(inPidNamespace(samples[0]!.namespaces[0]!)).toEqual([]);
    expect(existsSync(join(image.root, 'tmp/scratch'))).toBe(false);
    expect(existsSync(join(image.root, 'mnt'))).toBe(true); // mkdir -p went to the image (the workload's own write)
    expect(await readdir(image.root, { recursive: false })).toEqual(expect.arrayContaining(['bin', 'dev', 'etc', 'proc', 'run', 'sys', 'tmp', 'www']));
    expect(await readdir(join(image.root, 'dev'))).toEqual([]);
    expect((await readdir(image.work)).sort()).toEqual(['probe-2-1.strace', 'sandbox.pid', 'sandbox.pid.exit', 'workload.strace']);
  }, 30_000);

  it('runs a command that just ends (a batch job) and returns its trace', async () => {
    const result = await run({ run: ['/bin/cat', '/www/index.html'] });
    expect(result.stopped).toBe(false);
    expect(result.code).toBe(0);
    expect(result.outputTail).toBe(BODY.trim());
    expect(result.trace.execs).toEqual(['/bin/cat', '/bin/busybox']);
    expect(result.trace.paths.get('/www/index.html')).toMatchObject({ ok: true });
  }, 30_000);

  it('runs the workload with a clean environment, its own hostname and fewer capabilities', async () => {
    const result = await run({ run: 'env; hostname; grep CapBnd /proc/self/status', env: { APP_MODE: 'profile' }, hostname: 'web-1' });
    const lines = result.outputTail.split('\n');
    expect(lines).toEqual(expect.arrayContaining(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'APP_MODE=profile', 'web-1']));
    expect(lines.some((l) => l.startsWith('NODE_') || l.startsWith('VITEST'))).toBe(false);
    const bounding = BigInt('0x' + lines.find((l) => l.startsWith('CapBnd:'))!.split(/\s+/)[1]);
    expect(bounding & (1n << 16n)).toBe(0n); // CAP_SYS_MODULE dropped
    expect(bounding & (1n << 18n)).not.toBe(0n); // CAP_SYS_CHROOT kept
  }, 30_000);

  it('fails clearly when the workload exits before it is ready, with its output', async () => {
    const e = await expectProfileError(run({ run: 'echo "cannot bind: config broken" >&2; exit 3', readyPort: 80 }), 'E_PROFILE_EXITED');
    expect(e.message).toContain('before port 80 was ready (exit 3)');
    expect(e.outputTail).toContain('cannot bind: config broken');
  }, 30_000);

  it('fails clearly when a batch command fails, and keeps its raw trace when asked', async () => {
    const keep = await tempDir('aim-kept-');
    try {
      const e = await expectProfileError(run({ run: 'echo oops; cat /www/index.html >/dev/null; exit 2', keepTraceDir: keep.dir }), 'E_PROFILE_EXITED');
      expect(e.message).toContain('exit 2');
      expect(e.outputTail).toBe('oops');
      const kept = await readdir(keep.dir);
      expect(kept).toHaveLength(1);
      expect(await readdir(join(keep.dir, kept[0]!))).toEqual(['workload.strace']);
      expect(readFileSync(join(keep.dir, kept[0]!, 'workload.strace'), 'latin1')).toMatch(/openat\(.*"\/www\/index\.html"/);
    } finally {
      await keep.cleanup();
    }
  }, 30_000);

  it('keeps the raw traces of the workload and its exec probes in $AIM_KEEP_TRACE', async () => {
    const keep = await tempDir('aim-kept-');
    const saved = process.env.AIM_KEEP_TRACE;
    process.env.AIM_KEEP_TRACE = keep.dir;
    try {
      const events: AimEvent[] = [];
      const result = await run({ run: 'httpd -f -p 80 -h /www', readyPort: 80, probes: [{ kind: 'exec', command: 'cat /www/probe-only.txt' }], durationMs: 200, reporter: { emit: (e) => events.push(e) } });
      expect(result.probes[0]).toMatchObject({ exitCode: 0 });
      const [dir] = await readdir(keep.dir);
      expect((await readdir(join(keep.dir, dir!))).sort()).toEqual(['probe-0-1.strace', 'workload.strace']);
      expect(events).toContainEqual({ type: 'info', message: `raw strace output kept in ${join(keep.dir, dir!)}` });
    } finally {
      if (saved === undefined) delete process.env.AIM_KEEP_TRACE;
      else process.env.AIM_KEEP_TRACE = saved;
      await keep.cleanup();
    }
  }, 30_000);

  it('tells a command not found in the image apart, as a shell command and as an argv', async () => {
    const e1 = await expectProfileError(run({ run: 'nginx -g "daemon off;"', readyPort: 80 }), 'E_PROFILE_NOT_FOUND');
    expect(e1.outputTail).toMatch(/nginx: not found/);
    await image.cleanup();
    const e2 = await expectProfileError(run({ run: ['/usr/sbin/nginx'] }), 'E_PROFILE_NOT_FOUND');
    expect(e2.outputTail).toMatch(/\/usr\/sbin\/nginx.*No such file/);
  }, 30_000);

  it('fails when the port never opens', async () => {
    const e = await expectProfileError(run({ run: 'echo waiting; sleep 30', readyPort: 8080, readyTimeoutMs: 1_000 }), 'E_PROFILE_NOT_READY');
    expect(e.message).toContain('port 8080 was not listening after 1000 ms');
    expect(e.outputTail).toBe('waiting');
  }, 30_000);

  it('fails when a probe times out: a server that accepts but never answers, a command that hangs', async () => {
    // a ready timeout shorter than one probe try: exactly one try, which times out
    const e1 = await expectProbeFailed(
      run({ run: 'sleep 30 | nc -l -p 9000', readyPort: 9000, probes: [{ kind: 'http', url: 'http://127.0.0.1:9000/' }], probeTimeoutMs: 1_000, readyTimeoutMs: 1_000 }),
    );
    expect(e1.failure).toMatchObject({ probe: 'http://127.0.0.1:9000/', tries: 1, last: { error: expect.stringMatching(/^ETIMEDOUT/) } });
    expect(e1.failure.outputTail).toContain('GET / HTTP/1.1'); // what nc printed: the tail of the workload
    await image.cleanup();
    const e2 = await expectProbeFailed(
      run({ run: 'httpd -f -p 80 -h /www', readyPort: 80, probes: [{ kind: 'exec', command: 'echo hanging; sleep 30' }], probeTimeoutMs: 1_000, readyTimeoutMs: 1_000 }),
    );
    expect(e2.message).toContain('last: timed out after 1000 ms');
    expect(e2.failure.last).toMatchObject({ kind: 'exec', error: 'timed out after 1000 ms', outputTail: 'hanging' });
  }, 30_000);

  it('fails when nothing ever listens on the probe’s port, after trying until the ready timeout', async () => {
    const e = await expectProbeFailed(run({ run: 'httpd -f -p 80 -h /www', readyPort: 80, probes: [{ kind: 'http', url: 'http://127.0.0.1:81/' }], readyTimeoutMs: 1_500 }));
    expect(e.failure.unmet).toBe('nothing listens on port 81 yet');
    expect(e.failure.tries).toBeGreaterThan(1);
  }, 30_000);

  it('waits for a service that listens only after a while, without a ready port: its HTTP probe waits for its own port', async () => {
    const result = await run({ run: 'echo starting; sleep 2; exec httpd -f -p 80 -h /www', probes: [{ kind: 'http', url: 'http://127.0.0.1/index.html' }], durationMs: 200 });
    // (without retries the first try, made while the workload sleeps, would fail the run)
    expect(result.probes[0]).toMatchObject({ status: 200, sha256: sha256(BODY), met: true });
    expect(result.ready).toMatchObject({ ms: result.probes[0]!.readyMs, tries: result.probes[0]!.tries });
  }, 30_000);

  it('waits for the ready-log line before the first probe, and records it', async () => {
    // the probe can only succeed once the state file exists, which the line announces
    const result = await run({
      run: 'echo booting; sleep 1; echo 42 > /tmp/state; echo "state written" >&2; exec sleep 30',
      readyLog: '^state written$',
      probes: [{ kind: 'exec', command: 'cat /tmp/state', expect: { outputContains: '42' } }],
      durationMs: 200,
    });
    expect(result.probes[0]).toMatchObject({ exitCode: 0, met: true, tries: 1, outputTail: '42' });
    expect(result.ready!.line).toBe('state written');
    expect(result.ready!.ms).toBeGreaterThan(0);
  }, 30_000);

  it('fails when the ready-log line never comes', async () => {
    const e = await expectProfileError(run({ run: 'echo hello; sleep 30', readyLog: 'never printed', readyTimeoutMs: 1_000 }), 'E_PROFILE_NOT_READY');
    expect(e.message).toMatch(/wrote no line matching \/never printed\/ within \d+ ms/);
    expect(e.outputTail).toBe('hello');
  }, 30_000);

  it('checks exec expectations (exit status, output) and fails on one never met, with the last output', async () => {
    const ok = await run({
      run: 'exec httpd -f -p 80 -h /www',
      probes: [
        { kind: 'exec', command: 'echo PONG', expect: { outputContains: 'PONG' } },
        { kind: 'exec', command: 'echo nope >&2; exit 3', expect: { exitCode: 3 } },
      ],
      durationMs: 200,
    });
    expect(ok.probes.map((p) => [p.met, p.kind === 'exec' ? p.exitCode : undefined])).toEqual([[true, 0], [true, 3]]);
    await image.cleanup();
    const e = await expectProbeFailed(run({ run: 'exec httpd -f -p 80 -h /www', probes: [{ kind: 'exec', command: 'echo LOADING', expect: { outputContains: 'PONG' } }], readyTimeoutMs: 1_500 }));
    expect(e.failure).toMatchObject({ unmet: 'output does not contain "PONG"', last: { exitCode: 0, outputTail: 'LOADING' } });
  }, 30_000);

  it('repeats the probes in rounds when asked, one try each after the first', async () => {
    const result = await run({ run: 'exec httpd -f -p 80 -h /www', probes: [{ kind: 'http', url: 'http://127.0.0.1/index.html' }, { kind: 'exec', command: 'cat /proc/sys/kernel/random/uuid' }], repeat: 3, durationMs: 200 });
    expect(result.probeRounds).toHaveLength(3);
    expect(result.probeRounds.slice(1).every((round) => round.every((p) => p.tries === 1))).toBe(true);
    expect(new Set(result.probeRounds.map((r) => r[0]!.sha256))).toEqual(new Set([sha256(BODY)]));
    expect(new Set(result.probeRounds.map((r) => r[1]!.sha256)).size).toBe(3); // a fresh uuid each time
  }, 30_000);

  it('keeps a daemonising workload running after its start command returns', async () => {
    // without -f, busybox httpd forks into the background and the started shell exits at once
    const result = await run({ run: 'httpd -p 80 -h /www; echo detached', readyPort: 80, probes: [{ kind: 'http', url: 'http://127.0.0.1/' }], durationMs: 300 });
    expect(result.probes[0]).toMatchObject({ status: 200, sha256: sha256(BODY) });
    expect(result.stopped).toBe(true);
    expect(result.code).toBe(0); // the start command's own status
    expect(result.outputTail).toBe('detached');
  }, 30_000);

  it('stops a batch command when its AbortSignal aborts: torn down, rejected with the cancellation (aim update runs dpkg this way)', async () => {
    const controller = new AbortController();
    const reporter: Reporter = {
      emit(event) {
        if (event.type === 'stage' && event.stage === 'profile:run' && event.status === 'start') setTimeout(() => controller.abort(), 300);
      },
    };
    // the command would run for ten minutes: the test's own timeout fails it unless the abort stops it
    const e = await run({ run: 'echo started; exec sleep 600', durationMs: 900_000, signal: controller.signal, reporter }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toMatchObject({ code: 'E_CANCELLED' });
  }, 120_000);

  it('kills a workload that ignores SIGTERM once the grace period is over', async () => {
    const t0 = Date.now();
    // listening proves the trap is set (an ignored signal stays ignored across exec)
    const result = await run({ run: 'trap "" TERM; echo stubborn; exec nc -l -p 7000', readyPort: 7000, durationMs: 200, graceMs: 500 });
    expect(result.stopped).toBe(true);
    expect(result.outputTail).toBe('stubborn');
    expect(Date.now() - t0).toBeLessThan(10_000);
  }, 30_000);

  it('takes the whole sandbox down when its tracer dies, and refuses the cut trace', async () => {
    image = await makeImage();
    let namespaces: string[] = [];
    const reporter: Reporter = {
      emit(event) {
        if (event.type !== 'info') return;
        const inside = chrootedInto(image.root);
        namespaces = [...new Set(inside.map((p) => readlinkSync(`/proc/${p}/ns/pid`)))];
        pins.push(openSync(`/proc/${inside[0]}/ns/pid`, 'r'));
        // strace runs in the sandbox's pid namespace, outside the chroot
        const strace = inPidNamespace(namespaces[0]!).filter((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'strace');
        expect(strace).toHaveLength(1);
        process.kill(strace[0]!, 'SIGKILL');
      },
    };
    const t0 = Date.now();
    const e = await expectProfileError(
      runSandboxed({ root: image.root, workDir: image.work, run: 'httpd -f -p 80 -h /www', readyPort: 80, durationMs: 20_000, reporter }),
      'E_PROFILE_TRACE',
    );
    expect(e.message).toContain('the trace is incomplete');
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(namespaces).toHaveLength(1);
    expect(inPidNamespace(namespaces[0]!).filter((p) => !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z '))).toEqual([]);
  }, 30_000);
});

/**
 * Faults of profiling: each gives a clear error with the tail of the workload's output, and
 * leaves no process, mount, namespace or file behind (checked from /proc after every run).
 */
import { readFile, readdir, readlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { goldTar } from '../helpers/gold.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);
type Err = {
  error: { code: string; message: string; exitCode: number; hint: string; probe?: string; tries?: number; unmet?: string; outputTail?: string; last?: Record<string, unknown> };
  result: unknown;
};
const host = hostname();

/** Processes whose command line, root or working directory lies in the test's directory. */
async function leftovers(): Promise<string[]> {
  const out: string[] = [];
  for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const root = await readlink(`/proc/${pid}/root`).catch(() => '');
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '');
    if ([cmd, root, cwd].some((s) => s.includes(tmp.dir))) out.push(`${pid}: ${cmd.replaceAll('\0', ' ')}`);
  }
  return out;
}

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  await run('repo', 'init');
  expect((await run('image', 'import', await goldTar('nginx'), '--tag', 'gold/nginx:1')).exitCode).toBe(0);
}, 900_000);
afterAll(async () => tmp?.cleanup());

afterEach(async () => {
  expect(await leftovers()).toEqual([]);
  expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(tmp.dir);
  expect(await readdir(join(repo, 'tmp'))).toEqual([]);
  expect(await readdir(tmp.dir)).toEqual(['repo']);
  expect(hostname()).toBe(host);
  expect((await run<{ profiles: unknown[] }>('profile', 'list')).json.profiles).toEqual([]);
});

describe('profiling faults', () => {
  it('a workload that fails to start: its exit and its own error message', async () => {
    const res = await run<Err>('profile', 'run', 'gold/nginx:1', '--run', "nginx -c /etc/nginx/missing.conf -g 'daemon off;'", '--ready-port', '80', '--name', 'broken', '--duration', '5s');
    expect(res.exitCode).toBe(6);
    expect(res.json.error.code).toBe('E_PROFILE_EXITED');
    expect(res.json.error.message).toMatch(/workload exited before port 80 was ready \(exit 1\)/);
    expect(res.json.error.message).toMatch(/--- last output of the workload ---\n.*missing\.conf/s);
  });

  it('a command that does not exist in the image', async () => {
    const res = await run<Err>('profile', 'run', 'gold/nginx:1', '--run', 'no-such-daemon --foreground', '--ready-port', '80', '--name', 'missing', '--duration', '5s');
    expect(res.exitCode).toBe(6);
    expect(res.json.error.code).toBe('E_PROFILE_NOT_FOUND');
    expect(res.json.error.message).toMatch(/not found in the image/);
    expect(res.json.error.message).toMatch(/no-such-daemon: not found/);
    expect(res.json.error.hint).toMatch(/--run/);
  });

  it('an HTTP probe that times out: a server that listens and never answers', async () => {
    const silent = "perl -MIO::Socket::INET -e 'print qq(listening\\n); $|=1; my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die $!; sleep 60'";
    // the ready timeout is shorter than one try: one try, which times out
    const res = await run<Err>('profile', 'run', 'gold/nginx:1', '--run', silent, '--ready-port', '8080', '--probe', 'http://127.0.0.1:8080/', '--probe-timeout', '1s', '--ready-timeout', '1s', '--name', 'slow', '--duration', '30s');
    expect(res.exitCode).toBe(11);
    expect(res.json.error.code).toBe('E_PROBE_FAILED');
    expect(res.json.error.message).toMatch(/last: ETIMEDOUT \(timed out after 1000 ms\)/);
    expect(res.json.error.message).toMatch(/--- last output of the workload ---\nlistening/);
    expect(res.json.error).toMatchObject({ tries: 1, outputTail: 'listening' });
    expect(res.json.result).toBeNull();
  });

  it('an exec probe that times out', async () => {
    const res = await run<Err>('profile', 'run', 'gold/nginx:1', '--run', "nginx -g 'daemon off;'", '--ready-port', '80', '--probe-exec', 'echo waiting; sleep 60', '--probe-timeout', '1s', '--ready-timeout', '1s', '--name', 'hang', '--duration', '30s');
    expect(res.exitCode).toBe(11);
    expect(res.json.error.code).toBe('E_PROBE_FAILED');
    expect(res.json.error.message).toMatch(/probe exec: echo waiting; sleep 60 did not meet its expectation \(exit 0\) in 1 try .*last: timed out after 1000 ms/);
    expect(res.json.error.last).toMatchObject({ kind: 'exec', error: 'timed out after 1000 ms', outputTail: 'waiting' });
  });

  it('a probe whose expectation is never met: refused, with its last answer, and no profile stored', async () => {
    const res = await run<Err>('profile', 'run', 'gold/nginx:1', '--run', "nginx -g 'daemon off;'", '--probe', 'http://127.0.0.1:80/no-such-page', '--ready-timeout', '3s', '--name', 'wrong', '--duration', '2s');
    expect(res.exitCode).toBe(11);
    expect(res.json.error).toMatchObject({ code: 'E_PROBE_FAILED', probe: 'http://127.0.0.1:80/no-such-page', unmet: 'HTTP 404, expected 2xx', last: { status: 404 } });
    expect(res.json.error.last!.bodyTail).toMatch(/404 Not Found/);
    expect(res.json.error.tries).toBeGreaterThan(1); // tried again until the ready timeout
    expect(res.json.error.hint).toMatch(/--ready-timeout/);
    expect(res.json.result).toBeNull();
    // (afterEach: no profile in the catalog, nothing left behind)
  });

  it('a ready-log line that never comes', async () => {
    const res = await run<Err>('profile', 'run', 'gold/nginx:1', '--run', "echo starting; exec nginx -g 'daemon off;'", '--ready-log', '^ready$', '--ready-timeout', '1s', '--name', 'mute', '--duration', '5s');
    expect(res.exitCode).toBe(6);
    expect(res.json.error.code).toBe('E_PROFILE_NOT_READY');
    expect(res.json.error.message).toMatch(/wrote no line matching \/\^ready\$\/ within 1000 ms\n--- last output of the workload ---\nstarting/);
  });

  it('a ready-log that is no regular expression is a usage error before anything runs', async () => {
    const res = await run<Err>('profile', 'run', 'gold/nginx:1', '--run', 'true', '--name', 'x', '--ready-log', '([');
    expect(res.exitCode).toBe(2);
    expect(res.json.error.message).toMatch(/--ready-log "\(\[": not a regular expression/);
  });

  it('a bad probe timeout is a usage error before anything runs', async () => {
    const res = await run<Err>('profile', 'run', 'gold/nginx:1', '--run', 'true', '--name', 'x', '--probe-timeout', 'soon');
    expect(res.exitCode).toBe(2);
    expect(res.json.error.message).toMatch(/--probe-timeout/);
  });
});

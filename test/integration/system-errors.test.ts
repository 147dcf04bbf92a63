import { execa } from 'execa';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim, projectRoot, runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

interface ErrorJson {
  error: { code: string; message: string; exitCode: number; hint?: string };
  result: unknown;
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let source: string;

/** `aim …` inside a private mount namespace set up by `setup` (sh): its mounts vanish with it, whatever happens. */
async function aimInMountNamespace(setup: string, args: string[], json = true) {
  const r = await execa('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-ec', `${setup}\nexec "$@"`, 'sh', process.execPath, runJs, ...args, ...(json ? ['--json'] : [])], { reject: false, timeout: 300_000 });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** One JSON document on stdout and nothing of Node's raw error anywhere. */
function expectOneAimError(r: { stdout: string; stderr: string }): ErrorJson['error'] {
  const doc = JSON.parse(r.stdout) as ErrorJson;
  // the base command's failure shape: the error, and what the command had produced (none here)
  expect(Object.keys(doc).sort()).toEqual(['error', 'result']);
  expect(doc.result).toBeNull();
  expect(Object.keys(doc.error).sort()).toEqual(['code', 'exitCode', 'hint', 'message']);
  expect(`${r.stdout}\n${r.stderr}`).not.toMatch(/\n\s+at |errno|syscall:|\[Error|ENOSPC: no space left on device, /);
  return doc.error;
}

beforeAll(async () => {
  tmp = await tempDir('aim-syserr-');
  source = join(tmp.dir, 'src');
  await mkdir(source);
  // 4 MiB that do not compress or dedupe: more than the 1 MiB filesystem below holds
  await writeFile(join(source, 'big'), (await execa('head', ['-c', String(4 << 20), '/dev/urandom'], { encoding: 'buffer' })).stdout);
  await writeFile(join(source, 'small'), 'hello\n');
});
afterAll(async () => tmp.cleanup());

describe('system errors are aim errors with a code and a hint', () => {
  it('a full disk (tmpfs of 1 MiB): E_NO_SPACE, exit 12', async () => {
    // an export onto a full filesystem: imports stop earlier, at the space guard (test/e2e/space-guard.test.ts),
    // so the export's write is where Node's own ENOSPC reaches aim
    const full = join(tmp.dir, 'full');
    const repo = join(tmp.dir, 'full-repo');
    await mkdir(full);
    expect((await aim(['repo', 'init', '--repo', repo])).exitCode).toBe(0);
    expect((await aim(['image', 'import', source, '--tag', 'a:1', '--repo', repo])).exitCode).toBe(0);
    const setup = `mount -t tmpfs -o size=1m tmpfs ${full}`;
    const exportArgs = ['image', 'export', 'a:1', '--format', 'tar', '-o', `${full}/a.tar`, '--repo', repo];
    const r = await aimInMountNamespace(setup, exportArgs);
    expect(r.exitCode, r.stderr).toBe(12);
    const error = expectOneAimError(r);
    expect(error).toMatchObject({ code: 'E_NO_SPACE', exitCode: 12 });
    expect(error.message).toMatch(/no space left on the device \[ENOSPC\]/);
    // the failed write names no path: the hint names the command's repository and output
    expect(error.hint).toContain(repo);
    expect(error.hint).toContain('df -h');
    // without --json: the message and the hint on stderr, no stack
    const plain = await aimInMountNamespace(setup, exportArgs, false);
    expect(plain.exitCode).toBe(12);
    expect(plain.stderr).toMatch(/^aim: no space left on the device \[ENOSPC\].*\nhint: free space on the filesystem of /m);
    expect(plain.stderr).not.toMatch(/\n\s+at /);
  });

  it('a read-only filesystem (read-only bind mount): E_READ_ONLY, exit 7', async () => {
    const ro = join(tmp.dir, 'ro');
    await mkdir(ro);
    expect((await aim(['repo', 'init', '--repo', join(ro, 'repo')])).exitCode).toBe(0);
    const r = await aimInMountNamespace(`mount --bind ${ro} ${ro}\nmount -o remount,bind,ro ${ro}`, ['image', 'import', source, '--tag', 'a:1', '--repo', join(ro, 'repo')]);
    expect(r.exitCode, r.stderr).toBe(7);
    const error = expectOneAimError(r);
    expect(error).toMatchObject({ code: 'E_READ_ONLY', message: expect.stringContaining('[EROFS]'), hint: expect.stringContaining('read-only filesystem') });
  });

  it('a directory the user may not write: E_ACCESS_DENIED, exit 7', async () => {
    const locked = join(tmp.dir, 'locked');
    await mkdir(locked);
    await chmod(locked, 0o555);
    const r = await aim<ErrorJson>(['repo', 'init', '--repo', join(locked, 'repo')], { unprivileged: true });
    expect(r.exitCode, r.stderr).toBe(7);
    expect(expectOneAimError(r)).toMatchObject({ code: 'E_ACCESS_DENIED', message: expect.stringContaining(`[EACCES] (mkdir ${locked}/repo)`), hint: expect.stringContaining('ls -ld') });
  });

  it('a path through a file: E_NOT_A_DIRECTORY, exit 2', async () => {
    await writeFile(join(tmp.dir, 'a-file'), 'x');
    const r = await aim<ErrorJson>(['repo', 'init', '--repo', join(tmp.dir, 'a-file', 'repo')]);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(expectOneAimError(r)).toMatchObject({ code: 'E_NOT_A_DIRECTORY', message: expect.stringContaining('[ENOTDIR]') });
  });

  it('too many open files (ulimit -n in a child): E_TOO_MANY_OPEN_FILES, exit 12', async () => {
    // aim's own error mapping, in a Node process whose descriptors run out for real
    const lib = pathToFileURL(join(projectRoot, 'dist', 'src', 'lib', 'system-errors.js')).href;
    const script = `import { openSync } from 'node:fs'; import { toAimError } from '${lib}';
      try { for (;;) openSync('/dev/null', 'r'); } catch (e) { process.stdout.write(JSON.stringify({ raw: e.code, aim: toAimError(e).toJSON() })); }`;
    const r = await execa('sh', ['-c', 'ulimit -n 64 && exec "$@"', 'sh', process.execPath, '--input-type=module', '-e', script]);
    const out = JSON.parse(r.stdout) as { raw: string; aim: ErrorJson['error'] };
    expect(out.raw).toBe('EMFILE');
    expect(out.aim).toMatchObject({ code: 'E_TOO_MANY_OPEN_FILES', exitCode: 12, message: 'too many open files [EMFILE] (open /dev/null)', hint: expect.stringContaining('ulimit -n') });
  });
});

describe('an error no command caught', () => {
  it('is reported as one aim error document, redacted, with exit 1 (not a raw stack)', async () => {
    const crash = pathToFileURL(join(projectRoot, 'dist', 'src', 'cli', 'crash.js')).href;
    // what an 'error' event without a listener looks like: thrown from the event loop
    const script = `import { installCrashHandler } from '${crash}'; installCrashHandler();
      setImmediate(() => { throw Object.assign(new Error('write after end to https://u:crash-pw-123@h/x'), { code: 'ERR_STREAM_DESTROYED' }); });`;
    for (const json of [true, false]) {
      const r = await execa(process.execPath, ['--input-type=module', '-e', script, '--', ...(json ? ['--json'] : [])], { reject: false });
      expect(r.exitCode).toBe(1);
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/crash-pw-123|\n\s+at /);
      if (json) expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'E_INTERNAL', message: '[ERR_STREAM_DESTROYED] write after end to https://***@h/x', exitCode: 1, hint: expect.stringMatching(/bug in aim/) } });
      else expect(r.stderr).toMatch(/^aim: \[ERR_STREAM_DESTROYED\] write after end to https:\/\/\*\*\*@h\/x\nhint: this is a bug in aim/);
    }
  });
});

import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRepository } from '../../src/core/repository/repository.js';
import { aim, runJs } from '../helpers/cli.js';
import { writeFakeKernelTree } from '../helpers/fake-kernel.js';
import { tempDir } from '../helpers/tmp.js';

interface Kernel {
  source: string;
  ref?: string;
  choices?: string[];
}
interface ErrorJson {
  error: { code: string; message: string; hint?: string };
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);
const buildPxe = <T>(out: string, ...more: string[]) => run<T>('build', 'slim/app:1', '--format', 'pxe', '--entrypoint', '/app', '--out', join(tmp.dir, out), ...more);
const importKernel = async (version: string, tag: string) => {
  const r = await run('image', 'import', await writeFakeKernelTree(join(tmp.dir, version), version), '--tag', tag);
  expect(r.exitCode, r.stderr).toBe(0);
};

beforeAll(async () => {
  tmp = await tempDir('aim-kernel-default-');
  repo = join(tmp.dir, 'repo');
  await mkdir(join(tmp.dir, 'app'));
  await writeFile(join(tmp.dir, 'app', 'app'), '#!/bin/sh\n', { mode: 0o755 });
  expect((await run('repo', 'init')).exitCode).toBe(0);
  const app = await run<{ id: string }>('image', 'import', join(tmp.dir, 'app'), '--tag', 'slim/app:1');
  expect(app.exitCode).toBe(0);
  // ship takes the entrypoint a slim image records (it has no --entrypoint): record one as aim slim does
  const r = await openRepository(repo);
  await r.catalog.putSlimReport(app.json.id, { entrypoint: ['/app'] });
  await r.close();
});
afterAll(async () => tmp.cleanup());

describe('the kernel core is the default kernel of build and ship', () => {
  it('without any kernel core, build fails before work and says how to make one', async () => {
    const r = await buildPxe<ErrorJson>('none');
    expect(r.exitCode).toBe(4);
    expect(r.json.error).toMatchObject({ code: 'E_NO_KERNEL', hint: expect.stringMatching(/aim core kernel/) });
    expect(existsSync(join(tmp.dir, 'none'))).toBe(false);
  });

  it('build and ship take the only kernel core without --kernel', async () => {
    await importKernel('6.1.0-1-amd64', 'core/kernel:bookworm');
    const built = await buildPxe<{ kernel: Kernel }>('one');
    expect(built.exitCode, built.stderr).toBe(0);
    expect(built.json.kernel).toEqual({ source: 'default', ref: 'core/kernel:bookworm', choices: ['core/kernel:bookworm'] });

    const shipped = await run<{ kernel: Kernel; artifacts: { path: string }[] }>('ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 'ship'));
    expect(shipped.exitCode, shipped.stderr).toBe(0);
    expect(shipped.json.kernel).toEqual({ source: 'default', ref: 'core/kernel:bookworm', choices: ['core/kernel:bookworm'] });
    expect(shipped.json.artifacts.map((a) => a.path.split('.').at(-1))).toEqual(expect.arrayContaining(['vmdk', 'ova']));
  });

  it('with several, picks the newest, says which on stderr and lists the choices', async () => {
    await importKernel('6.12.0-1-amd64', 'core/kernel:trixie');
    const built = await buildPxe<{ kernel: Kernel }>('two');
    expect(built.exitCode, built.stderr).toBe(0);
    expect(built.json.kernel).toEqual({ source: 'default', ref: 'core/kernel:trixie', choices: ['core/kernel:trixie', 'core/kernel:bookworm'] });
    // without --json the choice is a line on stderr
    const plain = await execa(process.execPath, [runJs, 'build', 'slim/app:1', '--format', 'pxe', '--entrypoint', '/app', '--out', join(tmp.dir, 'plain'), '--repo', repo], { reject: false });
    expect(plain.exitCode, plain.stderr).toBe(0);
    expect(plain.stderr).toMatch(/warning: no --kernel given and the image has none: using core\/kernel:trixie, the newest of 2 kernel cores \(core\/kernel:trixie, core\/kernel:bookworm\); pass --kernel to choose/);

    const chosen = await buildPxe<{ kernel: Kernel }>('chosen', '--kernel', 'core/kernel:bookworm');
    expect(chosen.exitCode, chosen.stderr).toBe(0);
    expect(chosen.json.kernel).toEqual({ source: 'flag', ref: 'core/kernel:bookworm' });
  });
});

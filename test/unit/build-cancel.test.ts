import { existsSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage } from '../../src/core/build/build-image.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { CancelledError, InterruptedError } from '../../src/lib/errors.js';
import { runTool } from '../../src/lib/exec.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { addBootableImage, putFile } from '../helpers/fake-kernel.js';
import { alive, childProcesses, pollFor } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: Repository;
let imageId: string;
/** The largest file newc holds: zstd takes many seconds over its zeros, so a build is surely caught mid-way. */
const BIG = 2 ** 32 - 4096;

beforeAll(async () => {
  tmp = await tempDir('aim-build-cancel-');
  await initRepository(join(tmp.dir, 'repo'));
  repo = await openRepository(join(tmp.dir, 'repo'));
  // an image with its own (fake) kernel and a huge file of zeros (a hole but for its last block)
  imageId = await addBootableImage(repo, [await putFile(repo, '/zeros', Buffer.alloc(4096, 1), { size: BIG, sparse: [[BIG - 4096, 4096]], mode: 0o644 })]);
  process.env.AIM_TMPDIR = join(tmp.dir, 'scratch');
  await mkdir(process.env.AIM_TMPDIR);
});
afterAll(async () => {
  delete process.env.AIM_TMPDIR;
  await repo.close();
  await tmp.cleanup();
});

describe('cancelling through an AbortSignal', () => {
  it('runTool kills the tool and rejects with the signal\'s error once it has exited', async () => {
    for (const reason of [undefined, new InterruptedError('Ctrl-C')]) {
      const stop = new AbortController();
      const running = runTool('sleep', ['600'], { cancelSignal: stop.signal });
      running.catch(() => {});
      const sleep = await pollFor('sleep to start', () => childProcesses(process.pid).find((p) => p.comm === 'sleep'), 30_000);
      stop.abort(reason);
      const e = await running.catch((x: unknown) => x);
      // a server aborts with no reason: E_CANCELLED; the CLI's Ctrl-C reason is kept
      expect(e).toBeInstanceOf(reason ? InterruptedError : CancelledError);
      expect(e).toMatchObject({ code: reason ? 'E_INTERRUPTED' : 'E_CANCELLED', exitCode: 130 });
      expect(alive(sleep.pid)).toBe(false);
    }
  });

  it('a PXE build stopped mid-way kills its zstd, leaves no output and no scratch, and says it was cancelled', async () => {
    const out = join(tmp.dir, 'out');
    const stop = new AbortController();
    const building = buildImage(repo, { imageId, format: 'pxe', outDir: out, platform: 'qemu', modules: [], entrypoint: ['/app'], init: 'aim', headroomMiB: 0, signal: stop.signal }, new RecordingReporter());
    building.catch(() => {});
    // mid-way: the initrd is being written and zstd compresses the root
    const zstd = await pollFor('zstd compressing the root while initrd.img is written', () => (existsSync(join(out, 'initrd.img')) ? childProcesses(process.pid).find((p) => p.comm === 'zstd') : undefined), 120_000);
    expect((await readdir(process.env.AIM_TMPDIR!)).length).toBe(1);
    stop.abort();
    const e = await building.catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'E_CANCELLED', exitCode: 130 });
    expect(alive(zstd.pid)).toBe(false);
    expect(childProcesses(process.pid).filter((p) => p.comm !== 'vitest')).toEqual([]);
    expect(existsSync(out)).toBe(false);
    expect(await readdir(process.env.AIM_TMPDIR!)).toEqual([]);
  });

  it('a build whose signal is aborted before it starts writes nothing', async () => {
    const out = join(tmp.dir, 'never');
    const e = await buildImage(repo, { imageId, format: 'pxe', outDir: out, platform: 'qemu', modules: [], entrypoint: ['/app'], init: 'aim', headroomMiB: 0, signal: AbortSignal.abort() }, new RecordingReporter()).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'E_CANCELLED' });
    expect(existsSync(out)).toBe(false);
  });
});

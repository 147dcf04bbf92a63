/**
 * Two of the service examples, slimmed from their templates, boot as raw UEFI disks in QEMU
 * (TCG) with aim's init and answer through a forwarded port: memcached stores and returns a
 * value, HAProxy routes to its two backends. (Slim redis, whose unit wants a runtime directory,
 * boots in test/boot/rollout.test.ts and pxe-serve.test.ts; slim nginx in several others.)
 */
import { connect } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { goldRecipe, templatePath } from '../helpers/examples.js';
import { httpGet } from '../../src/run/qemu.js';
import { kernelDebDir } from '../helpers/kernel.js';
import { servicesGoldTar } from '../helpers/service-examples.js';
import { tempDir } from '../helpers/tmp.js';
import { startVm, withConsole, type Vm } from './helpers/qemu.js';

interface BuildJson {
  artifacts: { path: string; kind: string }[];
}

const BOOTED = ['memcached', 'haproxy'] as const;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
const run = async <T = Record<string, unknown>>(...args: string[]) => {
  const r = await aim<T>([...args, '--repo', repo]);
  expect(r.exitCode, `aim ${args.join(' ')}: ${r.stderr}${r.stdout.slice(-2000)}`).toBe(0);
  return r;
};

beforeAll(async () => {
  tmp = await tempDir('aim-boot-examples-');
  repo = join(tmp.dir, 'repo');
  await run('repo', 'init');
  const tar = await servicesGoldTar('light');
  const first = (await goldRecipe(BOOTED[0])).tag;
  await run('image', 'import', tar, '--tag', first);
  for (const dir of BOOTED.slice(1)) await run('image', 'tag', first, (await goldRecipe(dir)).tag);
  for (const dir of BOOTED) {
    await run('profile', 'run', '--template', templatePath(dir));
    await run('slim', '--template', templatePath(dir));
  }
  await run('core', 'kernel', '--deb-dir', kernelDebDir);
}, 1_800_000);
afterAll(async () => tmp?.cleanup());

/** Builds the example's slim image as a raw disk and boots it; `answer` polls the service until it responds. */
async function bootSlim(dir: (typeof BOOTED)[number], guestPort: number, answer: (vm: Vm) => Promise<void>): Promise<void> {
  const slimTag = `slim/${dir}:1`;
  const built = await run<BuildJson>('build', slimTag, '--format', 'raw', '--kernel', 'core/kernel:bookworm', '--out', join(tmp.dir, `raw-${dir}`));
  const disk = built.json.artifacts[0]!;
  const vmDir = join(tmp.dir, `vm-${dir}`);
  await mkdir(vmDir);
  const vm = await startVm({ dir: vmDir, disk: { path: disk.path, format: 'raw' }, guestPort, maxSeconds: 170 });
  try {
    await withConsole(vm, () => answer(vm));
  } finally {
    await vm.stop();
  }
}

/** One memcached text-protocol exchange: store a value, read it back. */
function memcachedSetGet(port: number, key: string, value: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let got = '';
    socket.setTimeout(3000, () => socket.destroy(new Error('timed out')));
    socket.on('connect', () => socket.write(`set ${key} 0 0 ${value.length}\r\n${value}\r\nget ${key}\r\n`));
    socket.on('data', (c) => {
      got += c.toString('latin1');
      if (got.endsWith('END\r\n')) socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => (got.endsWith('END\r\n') ? resolve(got) : reject(new Error(`incomplete answer: ${JSON.stringify(got)}`))));
  });
}

async function pollUntil<T>(what: string, deadlineMs: number, attempt: () => Promise<T>): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      return await attempt();
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  throw new Error(`${what}: no answer within ${deadlineMs / 1000} s (last: ${(last as Error)?.message})`);
}

describe('service examples boot as raw disks and answer', () => {
  it('memcached stores a value and returns it', async () => {
    await bootSlim('memcached', 11211, async (vm) => {
      const t0 = Date.now();
      const answer = await pollUntil('memcached', 120_000, () => memcachedSetGet(vm.port, 'greeting', 'hello-from-aim'));
      expect(answer).toBe('STORED\r\nVALUE greeting 0 14\r\nhello-from-aim\r\nEND\r\n');
      console.log(`memcached: answered ${((Date.now() - t0) / 1000).toFixed(1)} s after the disk was started`);
    });
  }, 240_000);

  it('HAProxy routes to both backends', async () => {
    await bootSlim('haproxy', 80, async (vm) => {
      const page = await vm.waitForHttp('/', 120_000);
      expect(page.status).toBe(200);
      expect(page.body).toContain('<h1>app backend</h1>');
      const css = await httpGet(vm.port, '/static/site.css');
      expect(css.body.toString()).toContain('font-family');
      expect((await httpGet(vm.port, '/down')).status).toBe(503);
      console.log(`haproxy: page ${page.seconds.toFixed(1)} s after QEMU started`);
    });
  }, 240_000);
});

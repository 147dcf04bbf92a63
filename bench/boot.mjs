// QEMU boot measurements shared by the build and PXE benchmarks: aim's own runner from dist/,
// TCG with a fixed translation-cache size (or the cache dominates QEMU's memory).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cache, devCache, goldTar, root } from './lib.mjs';

export const TB_SIZE_MIB = 64;

/** Runs `aim … --repo REPO --json` and returns the parsed result; throws with the output on failure. */
export function aim(repo, ...args) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'run.js'), ...args, '--repo', repo, '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`aim ${args.join(' ')} failed (${r.status}): ${r.stdout.slice(-1500)}${r.stderr.slice(-1500)}`);
  return JSON.parse(r.stdout);
}

/** The images the boot benchmarks build: gold nginx (booted with nginx as its entrypoint) and its slim image. */
export const NGINX_IMAGES = { gold: ['gold/nginx:1', '--entrypoint', "nginx -g 'daemon off;'"], slim: ['slim/nginx:1'] };

/** A fresh repository in `work` with gold/nginx:1, its slim image slim/nginx:1 and the kernel core; returns its path. */
export async function prepareNginxRepo(work) {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const repo = join(work, 'repo');
  aim(repo, 'repo', 'init');
  aim(repo, 'image', 'import', await goldTar('nginx', ['nginx']), '--tag', 'gold/nginx:1');
  aim(repo, 'profile', 'run', 'gold/nginx:1', '--run', "nginx -g 'daemon off;'", '--ready-port', '80', '--probe', 'http://127.0.0.1:80/', '--name', 'web', '--duration', '3s');
  aim(repo, 'slim', 'gold/nginx:1', '--profile', 'web', '--tag', 'slim/nginx:1');
  aim(repo, 'core', 'kernel', '--deb-dir', join(devCache, 'kernel'));
  return repo;
}

/** aim's QEMU runner and PXE boot server, from the built dist/. */
export async function loadBootModules() {
  const dist = (p) => import(join(root, 'dist', 'src', ...p));
  return { qemu: await dist(['run', 'qemu.js']), pxeHttp: await dist(['run', 'pxe-http.js']) };
}

function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) / 1024;
}

/**
 * Boots an artifact once (UEFI) and waits for nginx's page: { seconds from QEMU's start, QEMU's
 * RSS then }, or undefined when nginx never answered (too little memory, or the budget ran out).
 * A PXE bundle is fetched by TFTP, or with pxeVia 'http' from aim's boot server.
 */
export async function bootOnce({ qemu, pxeHttp }, artifactPath, memoryMiB, timeoutMs, pxeVia = 'tftp') {
  const dir = mkdtempSync(join(cache, 'bench', 'vm-'));
  let server;
  let vm;
  try {
    let artifact = await qemu.findBootArtifact(artifactPath);
    server = pxeVia === 'http' ? await pxeHttp.servePxeBundle(artifact.dir) : undefined;
    if (server) artifact = { ...artifact, httpPort: server.port };
    const port = await qemu.freePort();
    const started = Date.now();
    vm = await qemu.startVm({ artifact, dir, memoryMiB, forwards: [{ host: port, guest: 80 }], accel: 'tcg', tbSizeMiB: TB_SIZE_MIB, console: 'file' });
    // no answer in time (too little memory, a stuck boot) is a result; failing to start QEMU is not
    const answer = await qemu.waitForHttp(vm, port, '/', timeoutMs, started).catch(() => undefined);
    if (answer?.status !== 200) return undefined;
    return { seconds: answer.seconds, rssMiB: rssMiB(vm.pid) };
  } finally {
    await vm?.stop();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// PXE benchmark: the same gold and slim nginx PXE bundles network-booted in QEMU (TCG, UEFI),
// fetched by TFTP from QEMU's built-in server (what PXE setups use by default) and by HTTP from
// `aim boot --pxe-via http`'s server, side by side: the time from QEMU's start to nginx's page.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { aim, bootOnce, loadBootModules, TB_SIZE_MIB } from './boot.mjs';
import { cache, goldTar, machine, median, writeResults } from './lib.mjs';

const RUNS = 3;
const MEMORY_MIB = 1024;
const TIMEOUT_MS = 180_000;
const MiB = 1024 * 1024;

export default async function pxeBench() {
  const boot = await loadBootModules();
  const work = join(cache, 'bench', 'pxe');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const repo = join(work, 'repo');
  aim(repo, 'repo', 'init');
  aim(repo, 'image', 'import', await goldTar('nginx', ['nginx']), '--tag', 'gold/nginx:1');
  aim(repo, 'profile', 'run', 'gold/nginx:1', '--run', "nginx -g 'daemon off;'", '--ready-port', '80', '--probe', 'http://127.0.0.1:80/', '--name', 'web', '--duration', '3s');
  aim(repo, 'slim', 'gold/nginx:1', '--profile', 'web', '--tag', 'slim/nginx:1');
  aim(repo, 'core', 'kernel', '--deb-dir', join(cache, 'kernel'));

  const images = { gold: ['gold/nginx:1', '--entrypoint', "nginx -g 'daemon off;'"], slim: ['slim/nginx:1'] };
  const rows = [];
  for (const [which, [ref, ...extra]] of Object.entries(images)) {
    const out = join(work, which);
    const built = aim(repo, 'build', ref, '--format', 'pxe', '--kernel', 'core/kernel:bookworm', ...extra, '--out', out);
    const initrd = built.artifacts.find((a) => a.path.endsWith('initrd.img')).bytes;
    const row = { image: which, initrdBytes: initrd };
    for (const via of ['tftp', 'http']) {
      const runs = [];
      for (let i = 0; i < RUNS; i++) {
        console.error(`bench pxe: ${which} by ${via}, boot ${i + 1}/${RUNS}`);
        const run = await bootOnce(boot, out, MEMORY_MIB, TIMEOUT_MS, via);
        if (!run) throw new Error(`${which} by ${via} did not boot to nginx within ${TIMEOUT_MS / 1000} s`);
        runs.push(run.seconds);
      }
      row[via] = { seconds: median(runs), runs };
    }
    rows.push(row);
  }
  rmSync(work, { recursive: true, force: true });

  const md =
    `### PXE benchmark (${machine().cores} cores; QEMU TCG, tb-size ${TB_SIZE_MIB} MiB, OVMF, -m ${MEMORY_MIB}; median of ${RUNS} boots)\n\n` +
    '| bundle | initrd MiB | TFTP (QEMU\'s server): start → nginx s | HTTP (aim boot --pxe-via http): start → nginx s | TFTP / HTTP |\n|---|---:|---:|---:|---:|\n' +
    rows.map((r) => `| ${r.image} nginx | ${(r.initrdBytes / MiB).toFixed(1)} | ${r.tftp.seconds.toFixed(1)} | ${r.http.seconds.toFixed(1)} | ${(r.tftp.seconds / r.http.seconds).toFixed(2)}x |`).join('\n') +
    '\n';
  writeResults('pxe', { machine: machine(), tbSizeMiB: TB_SIZE_MIB, memoryMiB: MEMORY_MIB, rows }, md);
}

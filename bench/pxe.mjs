// PXE benchmark: the same gold and slim nginx PXE bundles network-booted in QEMU (TCG, UEFI),
// fetched by TFTP from QEMU's built-in server (what PXE setups use by default) and by HTTP from
// `aim boot --pxe-via http`'s server, side by side: the time from QEMU's start to nginx's page.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { aim, bootOnce, loadBootModules, NGINX_IMAGES, prepareNginxRepo, TB_SIZE_MIB } from './boot.mjs';
import { cache, machine, median, writeResults } from './lib.mjs';

const RUNS = 3;
const MEMORY_MIB = 1024;
const TIMEOUT_MS = 180_000;
const MiB = 1024 * 1024;

export default async function pxeBench() {
  const boot = await loadBootModules();
  const work = join(cache, 'bench', 'pxe');
  const repo = await prepareNginxRepo(work);
  const images = NGINX_IMAGES;
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

// Build benchmark (issue "Build"): for every artifact format aim builds, the artifact size gold vs
// slim and the build time; for each bootable kind (the raw disk; the PXE bundle once aim boots
// it), the time from QEMU's start to nginx's first answer, QEMU's resident memory at that moment
// (TCG with a fixed translation-cache size, or the cache dominates) and the smallest guest memory
// (-m) at which nginx still boots and answers: how many VMs fit on a host.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { aim, bootOnce, loadBootModules, NGINX_IMAGES, prepareNginxRepo, TB_SIZE_MIB } from './boot.mjs';
import { cache, duBytes, machine, median, root, writeResults } from './lib.mjs';

const MiB = 1024 * 1024;
const BOOT_TIMEOUT_MS = 150_000;
const BOOT_RUNS = 3;
/** Guest memory of the timed boots; enough for a gold PXE boot, whose whole root lives in RAM. */
const BOOT_MEMORY_MIB = 1024;

/** The smallest -m (to 16 MiB) at which nginx answers, by bisection between lo (fails or floor) and hi (boots). */
async function minMemory(boot, artifactPath, hi) {
  let lo = 32;
  while (hi - lo > 16) {
    const mid = Math.round((lo + hi) / 2 / 16) * 16;
    const ok = await bootOnce(boot, artifactPath, mid, 120_000);
    console.error(`bench build:   -m ${mid}: ${ok ? `answered in ${ok.seconds.toFixed(1)} s` : 'no answer'}`);
    if (ok) hi = mid;
    else lo = mid;
  }
  return hi;
}

export default async function buildBench() {
  const { FORMAT_BUILDERS } = await import(join(root, 'dist', 'src', 'core', 'build', 'formats.js'));
  const boot = await loadBootModules();
  const { qemu } = boot;
  const work = join(cache, 'bench', 'build');
  const repo = await prepareNginxRepo(work);
  const images = NGINX_IMAGES;
  const formats = ['raw', 'qcow2', 'vmdk', 'ova', 'pxe', 'tar', 'oci'].filter((f) => FORMAT_BUILDERS[f]);
  const builds = [];
  for (const format of formats) {
    const row = { format };
    for (const [which, [ref, ...extra]] of Object.entries(images)) {
      const out = join(work, `${format}-${which}`);
      console.error(`bench build: ${format} of ${ref}`);
      const kernel = ['tar', 'oci'].includes(format) ? [] : ['--kernel', 'core/kernel:bookworm', ...extra];
      const built = aim(repo, 'build', ref, '--format', format, '--out', out, ...kernel);
      row[which] = { bytes: built.artifacts.reduce((n, a) => n + a.bytes, 0), allocated: duBytes(out, false), seconds: built.seconds, out };
    }
    builds.push(row);
  }

  const boots = [];
  for (const kind of ['raw', 'pxe'].filter((f) => formats.includes(f))) {
    const row = { kind };
    for (const which of Object.keys(images)) {
      const out = builds.find((b) => b.format === kind)[which].out;
      const artifact = out;
      try {
        await qemu.findBootArtifact(out);
      } catch (e) {
        console.error(`bench build: ${kind} is not bootable by aim boot yet (${e.message}); skipped`);
        break;
      }
      console.error(`bench build: booting ${kind} ${which}`);
      const runs = [];
      for (let i = 0; i < BOOT_RUNS; i++) {
        const run = await bootOnce(boot, artifact, BOOT_MEMORY_MIB, BOOT_TIMEOUT_MS);
        if (!run) throw new Error(`${kind} ${which} did not boot to nginx with -m ${BOOT_MEMORY_MIB}`);
        runs.push(run);
      }
      row[which] = { seconds: median(runs.map((r) => r.seconds)), rssMiB: median(runs.map((r) => r.rssMiB)), runs, minMemoryMiB: await minMemory(boot, artifact, BOOT_MEMORY_MIB) };
    }
    if (row.gold && row.slim) boots.push(row);
  }
  rmSync(work, { recursive: true, force: true });

  const mib = (b) => (b / MiB).toFixed(1);
  const md =
    `### Build benchmark (${machine().cores} cores; nginx: gold = Debian bookworm minbase + nginx, slim = its slim image; kernel from core/kernel:bookworm)\n\n` +
    '| format | gold MiB | slim MiB | gold allocated MiB | slim allocated MiB | gold build s | slim build s |\n|---|---:|---:|---:|---:|---:|---:|\n' +
    builds.map((b) => `| ${b.format} | ${mib(b.gold.bytes)} | ${mib(b.slim.bytes)} | ${mib(b.gold.allocated)} | ${mib(b.slim.allocated)} | ${b.gold.seconds.toFixed(1)} | ${b.slim.seconds.toFixed(1)} |`).join('\n') +
    '\n\n' +
    `| boot (QEMU TCG, tb-size ${TB_SIZE_MIB} MiB, -m ${BOOT_MEMORY_MIB}) | gold: start → nginx s | slim: start → nginx s | gold QEMU RSS MiB | slim QEMU RSS MiB | gold smallest -m MiB | slim smallest -m MiB |\n|---|---:|---:|---:|---:|---:|---:|\n` +
    boots.map((b) => `| ${b.kind} | ${b.gold.seconds.toFixed(1)} | ${b.slim.seconds.toFixed(1)} | ${b.gold.rssMiB.toFixed(0)} | ${b.slim.rssMiB.toFixed(0)} | ${b.gold.minMemoryMiB} | ${b.slim.minMemoryMiB} |`).join('\n') +
    `\n\nMiB: apparent size of the artifacts; allocated: blocks on disk (raw disks are sparse). Boot time and RSS: median of ${BOOT_RUNS} boots under software emulation; ` +
    `smallest -m: bisection to 16 MiB, nginx must answer within 60 s. PXE boots run under UEFI (OVMF), as aim boot does by default.\n`;
  writeResults('build', { machine: machine(), tbSizeMiB: TB_SIZE_MIB, bootMemoryMiB: BOOT_MEMORY_MIB, builds: builds.map(({ format, gold, slim }) => ({ format, gold: { ...gold, out: undefined }, slim: { ...slim, out: undefined } })), boots }, md);
}

// Slim benchmark (issue "Slim"): for each example, gold vs slim files, bytes and packages, the
// physical limit (bytes of the gold files the trace actually opened), how close the slim image
// comes to it, the reduction from gold, and whether every probe gives the same answer as gold.
// Runs the examples exactly as a user would: template → gold → profile → slim → verify.
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { cache, goldTar, machine, root, writeResults } from './lib.mjs';

const EXAMPLES = ['nginx', 'redis', 'python-http'];
/**
 * The gold images carry a kernel (minbase + the application + linux-image-amd64); its
 * target is against their root filesystem with the kernel excluded. Same cache names as the
 * import benchmark, so one build serves both.
 */
const KERNEL_GOLD = { nginx: ['nginx-kernel', ['nginx', 'linux-image-amd64']], redis: ['redis-kernel', ['redis-server', 'linux-image-amd64']] };
/** What "the kernel" is in a Debian root: vmlinuz, initrd and System.map under /boot, the modules, the firmware. */
const KERNEL_PATHS = /^\.?\/?(boot|usr\/lib\/modules|lib\/modules|usr\/lib\/firmware|lib\/firmware)\//;

/** Bytes of the regular files in a tar, all of them and those outside the kernel's paths. */
function tarBytes(tar) {
  let all = 0;
  let kernel = 0;
  for (const line of execFileSync('tar', ['-tvf', tar], { encoding: 'utf8', maxBuffer: 1 << 28 }).split('\n')) {
    const f = line.split(/\s+/);
    if (!line.startsWith('-') || f.length < 6) continue;
    const size = Number(f[2]);
    all += size;
    if (KERNEL_PATHS.test(f.slice(5).join(' '))) kernel += size;
  }
  return { all, withoutKernel: all - kernel };
}
const MiB = 1024 * 1024;

function aim(repo, ...args) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'run.js'), ...args, '--repo', repo, '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const json = (() => {
    try {
      return JSON.parse(r.stdout.includes('\n{\n  "error"') ? r.stdout.split('\n{\n  "error"')[0] : r.stdout);
    } catch {
      return undefined;
    }
  })();
  if (r.status !== 0 && r.status !== 11) throw new Error(`aim ${args.join(' ')} failed (${r.status}): ${r.stdout.slice(-1500)}${r.stderr.slice(-1500)}`);
  return { status: r.status, json };
}

export default async function slimBench() {
  const dist = (p) => import(join(root, 'dist', 'src', ...p));
  const { cachedGoldTar } = await dist(['core', 'import', 'gold-cache.js']);
  const { resolveCopyIns } = await dist(['core', 'import', 'gold-debian.js']);
  const { loadTemplate, templateCopyIns } = await dist(['core', 'template', 'index.js']);
  const work = join(cache, 'bench', 'slim');
  const rows = [];
  for (const name of EXAMPLES) {
    const template = join(root, 'examples', name, 'template.yaml');
    const loaded = await loadTemplate(template);
    console.error(`bench slim: ${name}`);
    const tar = await cachedGoldTar(join(cache, 'gold'), { packages: loaded.template.gold.include, copyIns: await resolveCopyIns(templateCopyIns(loaded)) });
    const repo = join(work, name);
    rmSync(repo, { recursive: true, force: true });
    aim(repo, 'repo', 'init');
    aim(repo, 'image', 'import', tar, '--tag', loaded.template.gold.tag);
    const profiled = aim(repo, 'profile', 'run', '--template', template).json;
    const t0 = Date.now();
    const slim = aim(repo, 'slim', '--template', template).json;
    const slimSeconds = (Date.now() - t0) / 1000;
    const verify = aim(repo, 'verify', '--template', template);
    const r = slim.report;
    const kernelGold = KERNEL_GOLD[name] ? tarBytes(await goldTar(...KERNEL_GOLD[name])) : undefined;
    rows.push({
      example: name,
      gold: r.gold,
      slim: r.slim,
      limit: r.limit,
      packagesTouched: r.packagesTouched.length,
      slimOverLimit: r.slim.bytes / r.limit.bytes,
      reduction: r.gold.bytes / r.slim.bytes,
      kernelGold,
      reductionVsKernelGoldKernelExcluded: kernelGold ? kernelGold.withoutKernel / r.slim.bytes : undefined,
      probes: verify.json.probes.length,
      probesIdentical: verify.status === 0 && verify.json.ok === true,
      profiledPaths: profiled.profile.paths.length,
      slimSeconds,
    });
    rmSync(repo, { recursive: true, force: true });
  }
  execFileSync('rm', ['-rf', work]);
  const mib = (b) => (b / MiB).toFixed(1);
  const md =
    `### Slim benchmark (${machine().cores} cores; gold = Debian bookworm minbase + the example's packages, no kernel package)\n\n` +
    '| example | gold files | gold MiB | gold pkgs | slim files | slim MiB | slim pkgs | limit files | limit MiB | pkgs touched | slim / limit | gold / slim | gold+kernel, kernel excluded: MiB | gold+kernel (kernel excl.) / slim | probes identical |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n' +
    rows
      .map((x) =>
        [
          x.example, x.gold.files, mib(x.gold.bytes), x.gold.packages, x.slim.files, mib(x.slim.bytes), x.slim.packages, x.limit.files, mib(x.limit.bytes),
          x.packagesTouched, `${x.slimOverLimit.toFixed(2)}x`, `${x.reduction.toFixed(1)}x`,
          x.kernelGold ? mib(x.kernelGold.withoutKernel) : '-', x.kernelGold ? `${x.reductionVsKernelGoldKernelExcluded.toFixed(1)}x` : '-',
          `${x.probesIdentical ? 'yes' : 'NO'} (${x.probes})`,
        ].join(' | ').replace(/^/, '| ').replace(/$/, ' |'),
      )
      .join('\n') +
    '\n\nlimit: bytes of the gold files the trace actually opened or executed (the smallest image that can run the traced workload).\n' +
    'gold+kernel: the issue\'s gold image (minbase + the application + linux-image-amd64); kernel excluded = without /boot, the modules and firmware (what the kernel package brings besides, e.g. initramfs-tools and kmod, stays counted).\n' +
    'Targets: slim / limit ≤ 1.2x and at least 10x smaller than the gold root filesystem (kernel excluded) for nginx and redis; every probe identical to gold.\n';
  writeResults('slim', { machine: machine(), rows }, md);
}

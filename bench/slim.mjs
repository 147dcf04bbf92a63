// Slim benchmark (issue "Slim"): for each example, gold vs slim files, bytes and packages, the
// physical limit (bytes of the gold files the trace actually opened), how close the slim image
// comes to it, the reduction from gold, and whether every probe gives the same answer as gold.
// Runs the examples exactly as a user would: template → gold → profile → slim → verify.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cache, machine, root, writeResults } from './lib.mjs';

const EXAMPLES = ['nginx', 'redis', 'python-http'];
/** Gold trees with a kernel that the import benchmark builds; used when already cached. */
const KERNEL_GOLD = { nginx: 'nginx-kernel.tar', redis: 'redis-kernel.tar' };
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
    let kernelGoldBytes;
    const kernelTar = KERNEL_GOLD[name] && join(cache, 'gold', KERNEL_GOLD[name]);
    if (kernelTar && existsSync(kernelTar)) {
      kernelGoldBytes = aim(repo, 'image', 'import', kernelTar, '--tag', 'gold/kernel:1').json.totalSize;
    }
    rows.push({
      example: name,
      gold: r.gold,
      slim: r.slim,
      limit: r.limit,
      packagesTouched: r.packagesTouched.length,
      slimOverLimit: r.slim.bytes / r.limit.bytes,
      reduction: r.gold.bytes / r.slim.bytes,
      kernelGoldBytes,
      reductionVsKernelGold: kernelGoldBytes ? kernelGoldBytes / r.slim.bytes : undefined,
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
    `### Slim benchmark (${machine().cores} cores; gold = Debian bookworm minbase + the example's packages, kernel excluded)\n\n` +
    '| example | gold files | gold MiB | gold pkgs | slim files | slim MiB | slim pkgs | limit files | limit MiB | pkgs touched | slim / limit | gold / slim | vs gold with kernel | probes identical |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n' +
    rows
      .map((x) =>
        [
          x.example, x.gold.files, mib(x.gold.bytes), x.gold.packages, x.slim.files, mib(x.slim.bytes), x.slim.packages, x.limit.files, mib(x.limit.bytes),
          x.packagesTouched, `${x.slimOverLimit.toFixed(2)}x`, `${x.reduction.toFixed(1)}x`, x.reductionVsKernelGold ? `${x.reductionVsKernelGold.toFixed(1)}x` : '-',
          `${x.probesIdentical ? 'yes' : 'NO'} (${x.probes})`,
        ].join(' | ').replace(/^/, '| ').replace(/$/, ' |'),
      )
      .join('\n') +
    '\n\nlimit: bytes of the gold files the trace actually opened or executed (the smallest image that can run the traced workload).\n' +
    'Targets: slim / limit ≤ 1.2x and gold / slim ≥ 10x for nginx and redis; every probe identical to gold.\n';
  writeResults('slim', { machine: machine(), rows }, md);
}

// Slim benchmark (issue "Slim", issue 9): for every example in examples/, gold vs slim files,
// bytes and packages, the physical limit (bytes of the gold files the trace actually opened),
// how close the slim image comes to it, the reduction from gold, the time to ready, and whether
// aim verify finds every probe answering as in gold. Runs each example exactly as a user would:
// template → gold (its own recipe) → profile → slim → verify. An example that fails at any step
// is still reported, with the step and the error, so the table always covers every workload.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cache, goldTar, machine, resultsDir, root, writeResults } from './lib.mjs';

/** Every example with a template, or those named in AIM_BENCH_EXAMPLES (comma-separated). */
function examples() {
  const all = readdirSync(join(root, 'examples')).filter((d) => existsSync(join(root, 'examples', d, 'template.yaml'))).sort();
  const only = process.env.AIM_BENCH_EXAMPLES?.split(',').filter(Boolean);
  return only ? all.filter((d) => only.includes(d)) : all;
}
/**
 * The issue's gold images carry a kernel (minbase + the application + linux-image-amd64); its
 * target is against their root filesystem with the kernel excluded. Same cache names as the
 * import benchmark, so one build serves both.
 */
const KERNEL_GOLD = { nginx: ['nginx-kernel', ['nginx', 'linux-image-amd64']], redis: ['redis-kernel', ['redis-server', 'linux-image-amd64']] };
/** What "the kernel" is in a Debian root: vmlinuz, initrd and System.map under /boot, the modules, the firmware. */
const KERNEL_PATHS = /^\.?\/?(boot|usr\/lib\/modules|lib\/modules|usr\/lib\/firmware|lib\/firmware)\//;
/** Per step: a step that takes longer has failed (a hung workload must not hang the bench). */
const STEP_TIMEOUT_MS = 15 * 60_000;

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

/** Runs aim with --json; returns exit status, the parsed document and the wall time. */
function aim(repo, ...args) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(root, 'bin', 'run.js'), ...args, '--repo', repo, '--json'], { encoding: 'utf8', maxBuffer: 1 << 28, timeout: STEP_TIMEOUT_MS });
  let json;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, seconds: (Date.now() - t0) / 1000, tail: `${r.stdout.slice(-600)}${r.stderr.slice(-600)}`.trim() };
}

/** The error of a failed step, in one line. */
function failure(step, r) {
  const e = r.json?.error;
  return `${step}: ${e ? `${e.code} ${e.message.split('\n')[0]}` : r.status === null ? 'timed out' : `exit ${r.status} ${r.tail.split('\n').pop()}`}`.slice(0, 200);
}

async function benchOne(name, work, dist) {
  const template = join(root, 'examples', name, 'template.yaml');
  const loaded = await dist.loadTemplate(template);
  const t0 = Date.now();
  const tar = await dist.cachedGoldTar(join(cache, 'gold'), { packages: loaded.template.gold.include, copyIns: await dist.resolveCopyIns(dist.templateCopyIns(loaded)) });
  const goldSeconds = (Date.now() - t0) / 1000;
  const repo = join(work, name);
  rmSync(repo, { recursive: true, force: true });
  const row = { example: name, packages: loaded.template.gold.include, goldTarSeconds: goldSeconds };
  try {
    for (const [step, args] of [['init', ['repo', 'init']], ['import', ['image', 'import', tar, '--tag', loaded.template.gold.tag]]]) {
      const r = aim(repo, ...args);
      if (r.status !== 0) return { ...row, error: failure(step, r) };
    }
    const profiled = aim(repo, 'profile', 'run', '--template', template);
    if (profiled.status !== 0) return { ...row, error: failure('profile', profiled) };
    const run = profiled.json.run;
    Object.assign(row, { readyMs: run.ready?.ms ?? run.readyMs, readyTries: run.ready?.tries, profileSeconds: profiled.seconds, profiledPaths: profiled.json.profile.paths.length });
    const slim = aim(repo, 'slim', '--template', template);
    if (slim.status !== 0) return { ...row, error: failure('slim', slim) };
    const r = slim.json.report;
    Object.assign(row, {
      gold: r.gold,
      slim: r.slim,
      limit: r.limit,
      packagesTouched: r.packagesTouched.length,
      slimOverLimit: r.slim.bytes / r.limit.bytes,
      reduction: r.gold.bytes / r.slim.bytes,
      slimSeconds: slim.seconds,
    });
    // --allow-flaky: a probe whose answer varies in gold itself (metrics) is reported as flaky in
    // the table, not failed; slim must still meet its expectation in every round
    const verify = aim(repo, 'verify', '--template', template, '--allow-flaky');
    const probes = verify.json?.probes ?? verify.json?.result?.probes;
    Object.assign(row, {
      probes: probes?.length,
      flakyProbes: (probes ?? []).filter((p) => p.verdict === 'flaky').map((p) => p.probe),
      probesIdentical: verify.status === 0 && verify.json?.ok === true,
      verifySeconds: verify.seconds,
      ...(verify.status === 0 || verify.status === 11 ? {} : { error: failure('verify', verify) }),
    });
    if (verify.status === 11) row.verifyDifferences = (probes ?? []).filter((p) => !p.same).map((p) => p.probe);
    if (KERNEL_GOLD[name]) {
      row.kernelGold = tarBytes(await goldTar(...KERNEL_GOLD[name]));
      row.reductionVsKernelGoldKernelExcluded = row.kernelGold.withoutKernel / r.slim.bytes;
    }
    return row;
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
}

export default async function slimBench() {
  const dist = {
    ...(await import(join(root, 'dist', 'src', 'core', 'import', 'gold-cache.js'))),
    ...(await import(join(root, 'dist', 'src', 'core', 'import', 'gold-debian.js'))),
    ...(await import(join(root, 'dist', 'src', 'core', 'template', 'index.js'))),
  };
  const work = join(cache, 'bench', 'slim');
  const rows = [];
  for (const name of examples()) {
    console.error(`bench slim: ${name}`);
    const row = await benchOne(name, work, dist);
    if (row.error) console.error(`bench slim: ${name} failed at ${row.error}`);
    rows.push(row);
  }
  execFileSync('rm', ['-rf', work]);
  // AIM_BENCH_EXAMPLES re-runs some workloads: their rows replace those of the last full run, the rest are kept
  if (process.env.AIM_BENCH_EXAMPLES) {
    const last = existsSync(join(resultsDir, 'slim.json')) ? JSON.parse(readFileSync(join(resultsDir, 'slim.json'), 'utf8')).rows : [];
    const fresh = new Set(rows.map((r) => r.example));
    rows.unshift(...last.filter((r) => !fresh.has(r.example)));
    rows.sort((a, b) => (a.example < b.example ? -1 : 1));
  }
  const mib = (b) => (b === undefined ? '-' : (b / MiB).toFixed(1));
  const cell = (x, f) => (x === undefined ? '-' : f(x));
  const verdict = (x) => (x.error ? `FAILED (${x.error})` : x.probesIdentical ? `same (${x.probes - (x.flakyProbes?.length ?? 0)})${x.flakyProbes?.length ? `, flaky in gold (${x.flakyProbes.length})` : ''}` : `DIFFERENT: ${(x.verifyDifferences ?? []).join(', ')}`);
  const md =
    `### Slim benchmark (${machine().cores} cores; gold = Debian bookworm minbase + the example's packages, no kernel package)\n\n` +
    '| example | gold files | gold MiB | gold pkgs | slim files | slim MiB | slim pkgs | limit MiB | slim / limit | gold / slim | ready s | gold+kernel (kernel excl.) / slim | verify (probes) |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n' +
    rows
      .map((x) =>
        [
          x.example, cell(x.gold, (g) => g.files), mib(x.gold?.bytes), cell(x.gold, (g) => g.packages), cell(x.slim, (s) => s.files), mib(x.slim?.bytes), cell(x.slim, (s) => s.packages),
          mib(x.limit?.bytes), cell(x.slimOverLimit, (v) => `${v.toFixed(2)}x`), cell(x.reduction, (v) => `${v.toFixed(1)}x`), cell(x.readyMs, (v) => (v / 1000).toFixed(1)),
          cell(x.reductionVsKernelGoldKernelExcluded, (v) => `${v.toFixed(1)}x`), verdict(x),
        ].join(' | ').replace(/^/, '| ').replace(/$/, ' |'),
      )
      .join('\n') +
    '\n\nlimit: bytes of the gold files the trace actually opened or executed (the smallest image that can run the traced workload).\n' +
    'ready: from the workload\'s start in the profiling sandbox (under strace) until it was ready (`readyMs` of aim profile run).\n' +
    'gold+kernel: the issue\'s gold image (minbase + the application + linux-image-amd64); kernel excluded = without /boot, the modules and firmware (what the kernel package brings besides, e.g. initramfs-tools and kmod, stays counted).\n' +
    'Targets: slim / limit ≤ 1.2x for every workload, nginx at least 10x smaller than gold; every probe answering as in gold.\n';
  writeResults('slim', { machine: machine(), rows }, md);
}

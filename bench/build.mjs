// Build benchmark (issue: Build): the kernel core, and raw / qcow2 / vmdk disks of the slim nginx
// image (median wall time and peak RSS of N runs, artifact sizes apparent and on disk).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cache, duBytes, goldTar, machine, median, root, timed, writeResults } from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);

export default async function buildBench() {
  const work = join(cache, 'bench', 'build');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const repo = join(work, 'repo');
  const aim = (...args) => timed(process.execPath, [join(root, 'bin', 'run.js'), ...args, '--repo', repo]);
  const quiet = (...args) => execFileSync(process.execPath, [join(root, 'bin', 'run.js'), ...args, '--repo', repo, '--json'], { stdio: ['ignore', 'ignore', 'inherit'] });
  quiet('repo', 'init');
  quiet('image', 'import', await goldTar('nginx', ['nginx']), '--tag', 'gold/nginx:1');
  quiet('profile', 'run', 'gold/nginx:1', '--run', "nginx -g 'daemon off;'", '--ready-port', '80', '--probe', 'http://127.0.0.1:80/', '--name', 'web', '--duration', '3s');
  quiet('slim', 'gold/nginx:1', '--profile', 'web', '--tag', 'slim/nginx:1');
  const rows = [];
  const kernelRuns = [];
  for (let i = 0; i < RUNS; i++) kernelRuns.push(aim('core', 'kernel', '--deb-dir', join(cache, 'kernel'), '--json'));
  rows.push({ step: 'aim core kernel (cached .deb)', seconds: median(kernelRuns.map((r) => r.seconds)), peakRssMB: median(kernelRuns.map((r) => r.peakRssMB)) });
  for (const format of ['raw', 'qcow2', 'vmdk']) {
    const runs = [];
    let artifact;
    for (let i = 0; i < RUNS; i++) {
      const out = join(work, `${format}-${i}`);
      const t = aim('build', 'slim/nginx:1', '--format', format, '--kernel', 'core/kernel:bookworm', '--out', out, '--json');
      artifact = JSON.parse(t.stdout).artifacts[0];
      runs.push(t);
    }
    rows.push({
      step: `aim build --format ${format}`,
      seconds: median(runs.map((r) => r.seconds)),
      peakRssMB: median(runs.map((r) => r.peakRssMB)),
      apparentMB: +(artifact.bytes / 1e6).toFixed(1),
      onDiskMB: +(duBytes(artifact.path, false) / 1e6).toFixed(1),
      sha256: artifact.sha256,
    });
  }
  const table = [
    `### Build benchmark (slim nginx; median of ${RUNS} runs; ${machine().cores} cores)`,
    '',
    '| step | wall s | peak RSS MB | artifact MB (apparent) | on disk MB |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.step} | ${r.seconds.toFixed(2)} | ${r.peakRssMB} | ${r.apparentMB ?? '-'} | ${r.onDiskMB ?? '-'} |`),
    '',
  ].join('\n');
  writeResults('build', { machine: machine(), runs: RUNS, rows }, table);
  rmSync(work, { recursive: true, force: true });
}

// OCI build benchmark (issue: build): `aim build --format oci` from the repository, side by side
// with umoci building the same layer from an extracted tree, and the lower bound of GNU tar piped
// into gzip -6 (what any layer build must at least do: read every file, tar it, deflate it).
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { cache, duBytes, extracted, goldTar, machine, median, root, timed, writeResults } from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);

export default async function ociBench() {
  const tar = await goldTar('nginx', ['nginx']);
  const work = join(cache, 'bench', 'oci');
  const dir = extracted(tar, join(work, 'rootfs'));
  const run = join(root, 'bin', 'run.js');
  const repo = join(work, 'repo');
  rmSync(repo, { recursive: true, force: true });
  execFileSync(process.execPath, [run, 'repo', 'init', '--repo', repo]);
  const imported = JSON.parse(execFileSync(process.execPath, [run, 'image', 'import', dir, '--repo', repo, '--tag', 'gold/nginx:1', '--json'], { encoding: 'utf8' }));
  const logical = imported.totalSize;
  const out = join(work, 'out');
  const layerOf = (layout) => {
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
    const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'));
    const layer = manifest.layers.at(-1);
    return { digest: layer.digest, bytes: layer.size };
  };

  const contenders = {
    'lower bound: GNU tar piped to gzip -6': () => ({ ...timed('sh', ['-c', `tar -C "${dir}" --xattrs --numeric-owner -cf - . | gzip -6 | wc -c`]), layer: undefined }),
    'aim build --format oci (from the repository)': () => {
      rmSync(out, { recursive: true, force: true });
      const t = timed(process.execPath, [run, 'build', 'gold/nginx:1', '--format', 'oci', '--out', out, '--repo', repo, '--json']);
      return { ...t, layer: layerOf(out) };
    },
    'umoci insert (from the extracted tree)': () => {
      rmSync(out, { recursive: true, force: true });
      execFileSync('umoci', ['init', '--layout', out]);
      execFileSync('umoci', ['new', '--image', `${out}:b`]);
      const t = timed('umoci', ['insert', '--image', `${out}:b`, dir, '/']);
      return { ...t, layer: layerOf(out) };
    },
  };

  timed('sh', ['-c', `find "${dir}" -type f -print0 | xargs -0 cat > /dev/null`]);
  const loadBefore = loadavg()[0];
  const samples = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let i = 0; i < RUNS; i++) for (const [name, fn] of Object.entries(contenders)) samples[name].push(fn());
  rmSync(out, { recursive: true, force: true });

  const rows = Object.entries(samples).map(([name, runs]) => {
    const seconds = median(runs.map((r) => r.seconds));
    const digests = new Set(runs.map((r) => r.layer?.digest).filter(Boolean));
    return {
      name,
      seconds,
      mbPerSecond: Math.round(logical / 1e6 / seconds),
      peakRssMB: Math.max(...runs.map((r) => r.peakRssMB)),
      layerBytes: runs[0].layer?.bytes ?? Number(runs[0].stdout.trim()),
      reproducible: runs[0].layer ? digests.size === 1 : undefined,
      runs: runs.map((r) => r.seconds),
    };
  });
  // Other work on the machine skews wall times: the 1-minute load average is recorded with them.
  const load = { before: Number(loadBefore.toFixed(2)), after: Number(loadavg()[0].toFixed(2)) };
  const data = { machine: machine(), load, input: { files: imported.fileCount, logicalBytes: logical, source: 'mmdebstrap bookworm minbase +nginx' }, runs: RUNS, results: rows, repoBytes: duBytes(join(repo, 'objects')) };
  const mb = (b) => (b / 1e6).toFixed(1);
  const md = [
    `### OCI build benchmark (${imported.fileCount} files, ${mb(logical)} MB; median of ${RUNS} runs; ${data.machine.cores} cores, load average ${load.before} → ${load.after})`,
    '',
    '| contender | wall s | MB/s | peak RSS MB | layer MB | same digest every run |',
    '|---|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.name} | ${r.seconds.toFixed(2)} | ${r.mbPerSecond} | ${r.peakRssMB} | ${mb(r.layerBytes)} | ${r.reproducible === undefined ? '-' : r.reproducible ? 'yes' : 'no'} |`),
    '',
  ].join('\n');
  writeResults('oci', data, md);
}

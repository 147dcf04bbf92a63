// Import benchmark (issue: foundation): aim import of a directory and of a tar, side by side with
// `ostree commit` into a bare-user repo and the hashing lower bound (read every file + sha256).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { cache, duBytes, extracted, goldTar, machine, median, root, timed, writeResults } from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);

export default async function importBench() {
  const tar = await goldTar('nginx-kernel', ['nginx', 'linux-image-amd64']);
  const tar2 = await goldTar('redis-kernel', ['redis-server', 'linux-image-amd64']);
  const work = join(cache, 'bench', 'import');
  // ostree cannot commit device nodes: every contender gets the tree without /dev's nodes.
  const dir = extracted(tar, join(work, 'rootfs'));
  execFileSync('find', [join(dir, 'dev'), '-mindepth', '1', '-delete']);
  const logical = Number(execFileSync('sh', ['-c', `find "${dir}" -type f -printf '%s\\n' | awk '{s+=$1} END {print s}'`], { encoding: 'utf8' }));
  const files = Number(execFileSync('sh', ['-c', `find "${dir}" -type f | wc -l`], { encoding: 'utf8' }));
  const aim = (args) => timed(process.execPath, [join(root, 'bin', 'run.js'), ...args]);
  const repo = join(work, 'repo');
  const ostreeRepo = join(work, 'ostree');
  const fresh = () => {
    rmSync(repo, { recursive: true, force: true });
    execFileSync(process.execPath, [join(root, 'bin', 'run.js'), 'repo', 'init', '--repo', repo]);
  };

  const contenders = {
    'lower bound: find, xargs cat, sha256sum': () => ({
      ...timed('sh', ['-c', `find "${dir}" -type f -print0 | xargs -0 cat | sha256sum`]),
      stored: 0,
    }),
    'lower bound: find, xargs cat, openssl sha256 (SHA-NI)': () => ({
      ...timed('sh', ['-c', `find "${dir}" -type f -print0 | xargs -0 cat | openssl sha256`]),
      stored: 0,
    }),
    'aim image import <dir>': () => {
      fresh();
      const t = aim(['image', 'import', dir, '--repo', repo, '--json']);
      return { ...t, stored: duBytes(join(repo, 'objects')) };
    },
    'aim image import <tar>': () => {
      fresh();
      const t = aim(['image', 'import', tar, '--repo', repo, '--json']);
      return { ...t, stored: duBytes(join(repo, 'objects')) };
    },
    'ostree commit (bare-user)': () => {
      rmSync(ostreeRepo, { recursive: true, force: true });
      execFileSync('ostree', ['init', '--mode=bare-user', `--repo=${ostreeRepo}`]);
      const t = timed('ostree', ['commit', `--repo=${ostreeRepo}`, '--branch=bench', `--tree=dir=${dir}`]);
      return { ...t, stored: duBytes(join(ostreeRepo, 'objects')) };
    },
  };

  // warm the page cache so every contender reads from memory
  timed('sh', ['-c', `find "${dir}" -type f -print0 | xargs -0 cat > /dev/null`]);
  const samples = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let i = 0; i < RUNS; i++) for (const [name, fn] of Object.entries(contenders)) samples[name].push(fn());

  const rows = Object.entries(samples).map(([name, runs]) => {
    const seconds = median(runs.map((r) => r.seconds));
    return {
      name,
      seconds,
      mbPerSecond: Math.round(logical / 1e6 / seconds),
      peakRssMB: Math.max(...runs.map((r) => r.peakRssMB)),
      storedBytes: runs[runs.length - 1].stored,
      runs: runs.map((r) => r.seconds),
    };
  });

  // dedup: the nginx image, then a second gold image with redis-server
  fresh();
  execFileSync(process.execPath, [join(root, 'bin', 'run.js'), 'image', 'import', tar, '--repo', repo, '--tag', 'gold/nginx:1']);
  const second = aim(['image', 'import', tar2, '--repo', repo, '--tag', 'gold/redis:1', '--json']);
  const stats = JSON.parse(execFileSync(process.execPath, [join(root, 'bin', 'run.js'), 'repo', 'stats', '--repo', repo, '--json'], { encoding: 'utf8' }));

  const data = { machine: machine(), input: { files, logicalBytes: logical, source: 'mmdebstrap bookworm minbase +nginx,linux-image-amd64' }, runs: RUNS, results: rows, dedup: { secondImage: 'minbase +redis-server,linux-image-amd64', secondImportSeconds: second.seconds, ...stats } };
  const mb = (b) => (b / 1e6).toFixed(1);
  const md = [
    `### Import benchmark (${files} files, ${mb(logical)} MB; median of ${RUNS} runs; ${data.machine.cores} cores)`,
    '',
    '| contender | wall s | MB/s | peak RSS MB | stored MB |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.name} | ${r.seconds.toFixed(2)} | ${r.mbPerSecond} | ${r.peakRssMB} | ${r.storedBytes ? mb(r.storedBytes) : '-'} |`),
    '',
    `Dedup after importing a second gold image (${data.dedup.secondImage}): ${stats.images} images, logical ${mb(stats.logicalBytes)} MB, unique ${mb(stats.uniqueBytes)} MB, **dedup ratio ${stats.dedupRatio.toFixed(2)}x** (second import took ${second.seconds.toFixed(2)} s).`,
    '',
  ].join('\n');
  writeResults('import', data, md);
}

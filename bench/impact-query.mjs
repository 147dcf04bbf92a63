// One size of the impact benchmark (bench/impact.mjs), timed in a process of its own, as the
// command runs: a fresh process holding the repository and the query, not the generator's
// fleet (hundreds of MB of live objects whose garbage collection would be charged to whichever
// side runs next). Both sides run here, under the same conditions: `aim impact` (runImpact, the
// core of the command) and the per-image scanners.
//   node bench/impact-query.mjs <job.json>   → one JSON document on stdout
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { median, root } from './lib.mjs';

const dist = (...p) => import(join(root, 'dist', 'src', ...p));

/** The per-image scanner: every image's package list (from the catalog), versions compared with each advisory. */
async function scanLists(repo, ids, advisories, evaluateAdvisory) {
  const hits = new Set();
  for (const id of ids) {
    for (const p of await repo.catalog.packages(id)) {
      for (const a of advisories) {
        for (const ap of a.packages) if (ap.name === (p.source ?? p.name) && evaluateAdvisory(ap, p.sourceVersion ?? p.version).affected) hits.add(id);
      }
    }
  }
  return hits;
}

/** The per-image scanner as scanners work on images: each image's dpkg status file read and parsed, versions compared. */
async function scanStatusFiles(repo, ids, advisories, statusBlobs, parseDpkgStatus, evaluateAdvisory) {
  const hits = new Set();
  for (const id of ids) {
    const blob = statusBlobs.get(id);
    if (!blob) continue; // a slim image has no dpkg database: a scanner finds nothing
    for (const p of parseDpkgStatus((await repo.blobs.read(blob)).toString('utf8'))) {
      for (const a of advisories) {
        for (const ap of a.packages) if (ap.name === p.source && evaluateAdvisory(ap, p.sourceVersion).affected) hits.add(id);
      }
    }
  }
  return hits;
}

/**
 * Wall and CPU milliseconds (median of `times` runs): on a shared machine CPU time is the steadier
 * figure. `warmup` runs first, at least that many and, with `warmupMs`, for at least that long: a
 * query of a few milliseconds needs many runs before its code is compiled, as a scan's is within
 * its first run over every image.
 */
async function timeIt(times, fn, warmup = 1, warmupMs = 0) {
  const start = performance.now();
  for (let i = 0; i < warmup || performance.now() - start < warmupMs; i++) await fn();
  const ms = [];
  const cpu = [];
  let result;
  for (let i = 0; i < times; i++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    result = await fn();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { ms: median(ms), cpu: median(cpu), runs: ms, result };
}

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { openRepository } = await dist('core', 'repository', 'repository.js');
const { runImpact } = await dist('core', 'lifecycle', 'run-impact.js');
const { evaluateAdvisory, readAdvisoryDir, readOsvFile } = await dist('core', 'lifecycle', 'osv.js');
const { parseDpkgStatus } = await dist('core', 'analyze', 'dpkg.js');
const { silentReporter } = await dist('lib', 'reporter.js');
const statusBlobs = new Map(Object.entries(JSON.parse(readFileSync(job.statusBlobs, 'utf8'))));
const repo = await openRepository(job.repo);
try {
  // V8 compiles a query's functions on a background thread after some tens of runs, and until that
  // lands (later still while other work shares the cores) a run takes 3 to 4 times as long
  const one = await timeIt(15, () => runImpact(repo, { update: job.single }, silentReporter), 50, 2000);
  const batch = await timeIt(9, () => runImpact(repo, { advisories: job.batch }, silentReporter), 20, 2000);
  // a scan of 10,000 images runs long enough to be compiled by the time it ends: one run, no warm-up
  const reps = job.size >= 10_000 ? 1 : 3;
  const warm = job.size >= 10_000 ? 0 : 1;
  // the scanners get the list of images for free, and read the advisories as aim impact does
  const ids = (await repo.catalog.listImages()).map((i) => i.id);
  const readOne = () => readOsvFile(job.single);
  const readBatch = async () => (await readAdvisoryDir(job.batch)).advisories;
  const scanOne = await timeIt(reps, async () => scanLists(repo, ids, await readOne(), evaluateAdvisory), warm);
  const scanBatch = await timeIt(reps, async () => scanLists(repo, ids, await readBatch(), evaluateAdvisory), warm);
  const fileOne = await timeIt(reps, async () => scanStatusFiles(repo, ids, await readOne(), statusBlobs, parseDpkgStatus, evaluateAdvisory), warm);
  const fileBatch = await timeIt(reps, async () => scanStatusFiles(repo, ids, await readBatch(), statusBlobs, parseDpkgStatus, evaluateAdvisory), warm);
  // the index answers the scanners' question too, and must give the same images
  const present = (r) => new Set(r.groups.filter((g) => g.kind === 'gold' && g.verdict !== 'not-affected').flatMap((g) => g.images.map((i) => i.id)));
  for (const [name, idx, scan] of [['one', one, scanOne], ['batch', batch, scanBatch], ['one (files)', one, fileOne], ['batch (files)', batch, fileBatch]]) {
    const a = present(idx.result);
    const b = scan.result;
    if (a.size !== b.size || [...a].some((x) => !b.has(x))) throw new Error(`bench impact: ${name} at ${job.size}: the index finds ${a.size} gold images, the scanner ${b.size}`);
  }
  process.stdout.write(
    JSON.stringify({
      one: { ms: one.ms, cpu: one.cpu, runs: one.runs, summary: one.result.summary, groups: one.result.groups.length },
      batch: { ms: batch.ms, cpu: batch.cpu, runs: batch.runs, summary: batch.result.summary, groups: batch.result.groups.length, advisories: batch.result.update.advisories.length },
      scanLists: { one: scanOne.ms, batch: scanBatch.ms, oneCpu: scanOne.cpu, batchCpu: scanBatch.cpu },
      scanFiles: { one: fileOne.ms, batch: fileBatch.ms, oneCpu: fileOne.cpu, batchCpu: fileBatch.cpu },
    }),
  );
} finally {
  await repo.close();
}

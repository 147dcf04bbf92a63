// PXE serving benchmark: `aim pxe serve` delivering the slim and the gold nginx initrd to 1, 10
// and 50 concurrent clients on 127.0.0.1, side by side with nginx (Debian's, sendfile on) serving
// the very same files: throughput (every client fetches the file a fixed number of times with
// curl, keep-alive, body to /dev/null), the server's CPU time per GiB sent (what a shared,
// loaded machine changes least) and its peak RSS (nginx: master and workers).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { aim, NGINX_IMAGES, prepareNginxRepo } from './boot.mjs';
import { cache, machine, median, root, writeResults } from './lib.mjs';

const CLIENTS = [1, 10, 50];
const RUNS = 3;
const MiB = 1024 * 1024;
/** Bytes each measurement moves, about: enough for a few seconds at loopback speed. */
const BYTES_PER_RUN = 1536 * MiB;
const MACS = { slim: '52:54:00:be:00:01', gold: '52:54:00:be:00:02' };

const sleep = (ms) => delay(ms);

function rssMiB(pids) {
  let kb = 0;
  for (const pid of pids) {
    try {
      kb += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
    } catch {
      // gone
    }
  }
  return kb / 1024;
}

/** CPU seconds (user + system) the processes have used so far. */
function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return ticks / 100;
}

/** The server's processes: the pid and its children (nginx's workers). */
function processTree(pid) {
  const out = [pid];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** `clients` curl processes, each fetching `url` `repeats` times over one connection; wall seconds, bytes, server CPU and RSS. */
async function load(url, clients, repeats, serverPid) {
  const args = ['-s', '--fail', '-w', '%{size_download}\\n'];
  for (let i = 0; i < repeats; i++) args.push('-o', '/dev/null', url);
  const pids = processTree(serverPid);
  const cpu0 = cpuSeconds(pids);
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, rssMiB(pids));
      await sleep(50);
    }
  })();
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(
    Array.from({ length: clients }, () =>
      new Promise((resolve, reject) => {
        const c = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.on('close', (code) => (code === 0 ? resolve(out.trim().split('\n').reduce((n, l) => n + Number(l), 0)) : reject(new Error(`curl ${url} exited ${code}`))));
      }),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  sampling = false;
  await sampler;
  const bytes = results.reduce((a, b) => a + b, 0);
  const cpuPerGiB = (cpuSeconds(pids) - cpu0) / (bytes / (1024 * MiB));
  return { seconds, bytes, mbPerSecond: bytes / MiB / seconds, cpuPerGiB, peakRssMiB: peak };
}

async function startAim(repo, cacheDir) {
  const child = spawn(process.execPath, [join(root, 'bin', 'run.js'), 'pxe', 'serve', '--repo', repo, '--json', '--listen', '127.0.0.1:0', '--cache-dir', cacheDir, '--max-connections-per-ip', '256', '--max-connections', '1024'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const events = [];
  createInterface({ input: child.stdout }).on('line', (l) => events.push(JSON.parse(l)));
  for (let i = 0; i < 600 && !events.some((e) => e.event === 'listening'); i++) await sleep(100);
  const listening = events.find((e) => e.event === 'listening');
  if (!listening) throw new Error('aim pxe serve did not start');
  return { child, url: listening.http, events };
}

function startNginx(dir, port) {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;\nworker_processes auto;\npid ${join(dir, 'nginx.pid')};\nerror_log ${join(dir, 'logs', 'error.log')};\nevents { worker_connections 1024; }\n` +
      `http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 10000;\n  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;\n` +
      `  server { listen 127.0.0.1:${port}; root ${join(dir, 'www')}; location / { } }\n}\n`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  return child;
}

function freePort() {
  const r = spawnSync(process.execPath, ['-e', "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

export default async function pxeServeBench() {
  const work = join(cache, 'bench', 'pxe-serve');
  const repo = await prepareNginxRepo(work);
  const [goldRef, ...goldExtra] = NGINX_IMAGES.gold;
  aim(repo, 'pxe', 'assign', MACS.slim, NGINX_IMAGES.slim[0], '--kernel', 'core/kernel:bookworm');
  aim(repo, 'pxe', 'assign', MACS.gold, goldRef, '--kernel', 'core/kernel:bookworm', ...goldExtra);
  const cacheDir = join(work, 'cache');
  const server = await startAim(repo, cacheDir);
  const www = join(work, 'nginx', 'www');
  mkdirSync(www, { recursive: true });
  const files = {};
  let nginx;
  try {
    for (const [which, mac] of Object.entries(MACS)) {
      const script = await (await globalThis.fetch(`${server.url}/boot.ipxe?mac=${mac}`)).text();
      const path = /^initrd (\S+?)(\?|\s|$)/m.exec(script)[1];
      // the first fetch fills the cache (compressing the initrd): timed on its own
      const t0 = Date.now();
      const res = await globalThis.fetch(`${server.url}${path}`);
      const size = (await res.arrayBuffer()).byteLength;
      const prepareSeconds = (Date.now() - t0) / 1000;
      const key = res.headers.get('etag').replace(/"/g, '');
      // nginx serves the same bytes: the file from aim's cache
      copyFileSync(join(cacheDir, `initrd-${key}`), join(www, `${which}.img`));
      execFileSync('cmp', [join(cacheDir, `initrd-${key}`), join(www, `${which}.img`)]);
      files[which] = { aimUrl: `${server.url}${path}`, size, prepareSeconds };
      console.error(`bench pxe-serve: ${which} initrd ${(size / MiB).toFixed(1)} MiB, first fetch (compressing into the cache) ${prepareSeconds.toFixed(1)} s`);
    }
    const idleRssMiB = rssMiB([server.child.pid]);
    const port = freePort();
    nginx = startNginx(join(work, 'nginx'), port);
    await sleep(1000);
    const rows = [];
    for (const [which, f] of Object.entries(files)) {
      for (const clients of CLIENTS) {
        const repeats = Math.max(1, Math.round(BYTES_PER_RUN / f.size / clients));
        const row = { initrd: which, mib: f.size / MiB, clients, repeats };
        for (const [name, url, pid] of [['aim', f.aimUrl, server.child.pid], ['nginx', `http://127.0.0.1:${port}/${which}.img`, nginx.pid]]) {
          const runs = [];
          for (let i = 0; i < RUNS; i++) {
            const r = await load(url, clients, repeats, pid);
            if (r.bytes !== clients * repeats * f.size) throw new Error(`${name}: ${r.bytes} bytes, expected ${clients * repeats * f.size}`);
            runs.push(r);
          }
          row[name] = { mbPerSecond: median(runs.map((r) => r.mbPerSecond)), cpuPerGiB: median(runs.map((r) => r.cpuPerGiB)), peakRssMiB: Math.max(...runs.map((r) => r.peakRssMiB)), runs: runs.map((r) => Math.round(r.mbPerSecond)) };
          console.error(`bench pxe-serve: ${which} × ${clients} clients, ${name}: ${row[name].mbPerSecond.toFixed(0)} MiB/s (${row[name].runs.join(', ')}), ${row[name].cpuPerGiB.toFixed(2)} CPU s/GiB, peak RSS ${row[name].peakRssMiB.toFixed(0)} MiB`);
        }
        rows.push(row);
      }
    }
    const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    const at50 = rows.filter((r) => r.clients === 50);
    const rssMB = Math.max(...at50.map((r) => r.aim.peakRssMiB)) * 1.048576;
    const worst = Math.min(...rows.map((r) => r.aim.mbPerSecond / r.nginx.mbPerSecond));
    const md =
      `### PXE serving benchmark (\`npm run bench -- pxe-serve\`) (${machine().cores} cores shared with other work, load ${load1} at the end; 127.0.0.1; curl clients, keep-alive; median of ${RUNS})\n\n` +
      '| initrd | MiB | clients | aim pxe serve MiB/s | nginx MiB/s | aim / nginx | aim CPU s/GiB | nginx CPU s/GiB | aim peak RSS MiB | nginx peak RSS MiB (all processes) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n' +
      rows.map((r) => `| ${r.initrd} nginx | ${r.mib.toFixed(1)} | ${r.clients} | ${r.aim.mbPerSecond.toFixed(0)} | ${r.nginx.mbPerSecond.toFixed(0)} | ${((100 * r.aim.mbPerSecond) / r.nginx.mbPerSecond).toFixed(0)}% | ${r.aim.cpuPerGiB.toFixed(2)} | ${r.nginx.cpuPerGiB.toFixed(2)} | ${r.aim.peakRssMiB.toFixed(0)} | ${r.nginx.peakRssMiB.toFixed(0)} |`).join('\n') +
      `\n\nTargets: throughput at least 80% of nginx's in every row (lowest here ${(100 * worst).toFixed(0)}%: ${worst >= 0.8 ? 'met' : '**not met**'}); RSS under 200 MB at 50 clients (here ${rssMB.toFixed(0)} MB: ${rssMB < 200 ? 'met' : '**not met**'}). ` +
      `aim's RSS was ${idleRssMiB.toFixed(0)} MiB before the load, with both images planned and cached. ` +
      `First fetch of each initrd (aim compresses it into its cache while the client reads): ${Object.entries(files).map(([w, f]) => `${w} ${f.prepareSeconds.toFixed(1)} s`).join(', ')}; every later fetch is served from the cached file. nginx: worker_processes auto (one per core), sendfile on, the same files.\n`;
    writeResults('pxe-serve', { machine: machine(), rows, files, idleRssMiB }, md);
  } finally {
    nginx?.kill('SIGTERM');
    server.child.kill('SIGTERM');
    await sleep(1000);
    rmSync(work, { recursive: true, force: true });
  }
}

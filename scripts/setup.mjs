#!/usr/bin/env node
// One idempotent set-up for a fresh Debian 12 machine with only Node.js and npm: the Debian
// packages aim and its tests use (installed as root with apt-get, skipped when present) and the
// npm dependencies. Uses only Node's standard library: it runs before node_modules exists.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
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
  make: 'building iPXE from source (build --ipxe-src)',
  'busybox-static': 'minimal init for slim images',
  'systemd-boot-efi': 'UEFI boot loader for raw disks',
  skopeo: 'OCI image checks',
  umoci: 'OCI image checks',
  strace: 'profiling workloads',
  'util-linux': 'unshare/nsenter/setpriv for the profiling sandbox',
  iproute2: 'loopback inside the profiling sandbox',
  binutils: 'readelf, used by tests to check the ELF parser',
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

function ensureNpmDependencies() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  const fresh = existsSync(marker) && existsSync(lock) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs;
  if (fresh && existsSync(join(root, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node'))) return;
  console.error('setup: installing npm dependencies');
  const npm = process.env.npm_execpath
    ? [process.execPath, [process.env.npm_execpath]]
    : ['npm', []];
  // `npm install`, not `npm ci`: vite's Windows-only optional dependency is missing from the
  // registry, so the lock file cannot list it and `npm ci` refuses the lock as out of sync.
  execFileSync(npm[0], [...npm[1], 'install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}

ensureDebianPackages();
ensureNpmDependencies();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
console.error(`setup: ready (${pkg.name} ${pkg.version}, node ${process.version})`);

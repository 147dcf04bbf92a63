import type { ElfFacts } from '../analyze/elf.js';
import { parentPath } from '../model/entry.js';
import { keepPath, wasDropped } from './context.js';
import type { ClosureContext } from './context.js';
import { BUILTIN_SERVICES, DNS_FILES, FILES_DATABASES, nssModuleSoname, parseNsswitch } from './nsswitch.js';
import { findUser, parsePasswd } from './passwd.js';
import type { Reason } from './types.js';

/**
 * What programs load or read without naming it in their ELF headers, decided from what is
 * already kept: ld.so.cache, NSS modules and files, gconv, CA certificates, time zone data, the
 * passwd/group databases of the workload's users.
 */

interface KeptElf {
  path: string;
  facts: ElfFacts;
  name: string;
}

/** nsswitch.conf as glibc assumes it when the file is absent. */
const DEFAULT_NSSWITCH = 'passwd: files\ngroup: files\nhosts: dns files\nnetworks: files\nprotocols: files\nservices: files\n';

const TLS_LIBRARY = /^lib(ssl|gnutls|nss3|mbedtls|wolfssl)\b/;
const OPENSSL_LIBRARY = /^lib(ssl|crypto)\.so/;
/** CA bundles of Debian/Ubuntu/Alpine, Red Hat/Fedora, SUSE. */
const CA_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ssl/cert.pem',
];
/** OpenSSL's OPENSSLDIR on Debian (/usr/lib/ssl) and elsewhere (/etc/ssl, /etc/pki/tls). */
const OPENSSL_DIRS = ['/usr/lib/ssl', '/etc/ssl', '/etc/pki/tls'];

export async function applyEssentials(ctx: ClosureContext): Promise<void> {
  const elfs = keptElfs(ctx);
  const glibcs = elfs.filter((e) => e.name === 'libc.so.6');
  keepLdCache(ctx, elfs);
  for (const libc of glibcs) await keepNss(ctx, libc);
  for (const libc of glibcs) keepGconv(ctx, libc);
  keepTls(ctx, elfs);
  keepTzdata(ctx);
  await keepUsers(ctx);
}

function keptElfs(ctx: ClosureContext): KeptElf[] {
  const out: KeptElf[] = [];
  for (const path of ctx.keep.kept.keys()) {
    const e = ctx.image.get(path);
    if (e?.type !== 'file' || e.blob === undefined) continue;
    const facts = ctx.input.elf(e.blob);
    if (facts) out.push({ path, facts, name: facts.soname ?? path.slice(path.lastIndexOf('/') + 1) });
  }
  return out;
}

/** Keeps an optional file: no warning when the image lacks it. */
function keepIfPresent(ctx: ClosureContext, path: string, reason: Reason): string | undefined {
  if (ctx.image.resolveNoFollow(path) === undefined) return undefined;
  return keepPath(ctx, path, reason);
}

function keepLdCache(ctx: ClosureContext, elfs: KeptElf[]): void {
  const interps = new Set<string>();
  for (const e of elfs) {
    if (e.facts.interp === undefined) continue;
    const canonical = ctx.image.resolve(e.facts.interp);
    if (canonical !== undefined) interps.add(canonical);
  }
  for (const ldso of interps) keepIfPresent(ctx, '/etc/ld.so.cache', { kind: 'ld-cache', of: ldso });
}

async function keepNss(ctx: ClosureContext, libc: KeptElf): Promise<void> {
  const conf = keepIfPresent(ctx, '/etc/nsswitch.conf', { kind: 'config', file: '/etc/nsswitch.conf', of: libc.path });
  const text = conf !== undefined ? await ctx.image.readText(conf) : ctx.image.resolve('/etc/nsswitch.conf') ? undefined : DEFAULT_NSSWITCH;
  if (text === undefined) return;
  const dbs = parseNsswitch(text);
  const services = new Set<string>();
  for (const list of dbs.values()) for (const s of list) services.add(s);
  const obj = { path: libc.path, facts: libc.facts, inheritedRpath: [] };
  for (const service of services) {
    const soname = nssModuleSoname(service);
    const found = ctx.search.find(soname, obj);
    if (!found) {
      if (!BUILTIN_SERVICES.has(service)) ctx.warn(`/etc/nsswitch.conf names service ${service} but ${soname} is not in the image`);
      continue;
    }
    for (const p of found.paths) keepPath(ctx, p, { kind: 'nss', module: service, of: libc.path });
  }
  for (const [db, list] of dbs) {
    if (FILES_DATABASES.has(db) && (list.includes('files') || list.includes('compat'))) {
      keepIfPresent(ctx, `/etc/${db}`, { kind: 'nss', module: list.includes('files') ? 'files' : 'compat', db, of: libc.path });
    }
    if (db === 'hosts' && list.includes('dns')) {
      for (const f of DNS_FILES) keepIfPresent(ctx, f, { kind: 'nss', module: 'dns', db, of: libc.path });
    }
  }
}

/**
 * gconv modules are dlopen()ed by iconv; their configuration tells which. With "auto", only when
 * the trace shows the workload reading a gconv directory.
 */
function keepGconv(ctx: ClosureContext, libc: KeptElf): void {
  const mode = ctx.input.rules?.gconv ?? 'auto';
  if (mode === 'none') return;
  const dirs = new Set<string>();
  for (const d of [`${parentPath(libc.path)}/gconv`, '/usr/lib/gconv', '/usr/lib64/gconv']) {
    const canonical = ctx.image.resolve(d);
    if (canonical !== undefined && ctx.image.get(canonical)?.type === 'dir') dirs.add(canonical);
  }
  for (const dir of dirs) {
    if (mode === 'auto' && !ctx.input.seeds.some((s) => s.reason.kind === 'traced' && tracedInto(ctx, s.path, dir))) continue;
    const reason = { kind: 'gconv', of: libc.path } as const;
    if (mode === 'all') {
      for (const p of ctx.image.below(dir)) keepPath(ctx, p, reason);
      continue;
    }
    keepIfPresent(ctx, `${dir}/gconv-modules`, reason);
    keepIfPresent(ctx, `${dir}/gconv-modules.cache`, reason);
    const confDir = ctx.image.resolve(`${dir}/gconv-modules.d`);
    if (confDir !== undefined) for (const p of ctx.image.below(confDir)) keepPath(ctx, p, reason);
  }
}

function tracedInto(ctx: ClosureContext, path: string, dir: string): boolean {
  const canonical = ctx.image.resolve(path) ?? ctx.image.resolve(parentPath(path));
  return path.includes('/gconv/') || path.includes('/gconv-modules') || (canonical !== undefined && (canonical === dir || canonical.startsWith(`${dir}/`)));
}

function keepTls(ctx: ClosureContext, elfs: KeptElf[]): void {
  const tls = elfs.find((e) => TLS_LIBRARY.test(e.name));
  if (tls) {
    let any = false;
    for (const bundle of CA_BUNDLES) if (keepIfPresent(ctx, bundle, { kind: 'tls-ca', of: tls.path }) !== undefined) any = true;
    if (!any && !CA_BUNDLES.some((b) => wasDropped(ctx, b))) ctx.warn(`${tls.path} is kept but the image has no CA certificate bundle (${CA_BUNDLES[0]})`);
  }
  const openssl = elfs.find((e) => OPENSSL_LIBRARY.test(e.name));
  if (!openssl) return;
  // OpenSSL reads OPENSSLDIR/openssl.cnf at start, and default verify paths use OPENSSLDIR/certs (hashed links).
  for (const dir of OPENSSL_DIRS) {
    keepIfPresent(ctx, `${dir}/openssl.cnf`, { kind: 'config', file: `${dir}/openssl.cnf`, of: openssl.path });
    if (!tls) continue;
    keepIfPresent(ctx, `${dir}/cert.pem`, { kind: 'tls-ca', of: tls.path });
    const certs = ctx.image.resolve(`${dir}/certs`);
    if (certs === undefined || ctx.image.get(certs)?.type !== 'dir') continue;
    keepPath(ctx, `${dir}/certs`, { kind: 'tls-ca', of: tls.path });
    for (const p of ctx.image.below(certs)) keepPath(ctx, p, { kind: 'tls-ca', of: tls.path });
  }
}

function keepTzdata(ctx: ClosureContext): void {
  const mode = ctx.input.rules?.tzdata ?? 'localtime';
  if (mode === 'none') return;
  keepIfPresent(ctx, '/etc/localtime', { kind: 'tzdata' });
  keepIfPresent(ctx, '/etc/timezone', { kind: 'tzdata' });
  if (mode !== 'all') return;
  const zoneinfo = ctx.image.resolve('/usr/share/zoneinfo');
  if (zoneinfo === undefined) {
    ctx.warn('tzdata "all": the image has no /usr/share/zoneinfo');
    return;
  }
  keepPath(ctx, '/usr/share/zoneinfo', { kind: 'tzdata' });
  for (const p of ctx.image.below(zoneinfo)) keepPath(ctx, p, { kind: 'tzdata' });
}

async function keepUsers(ctx: ClosureContext): Promise<void> {
  const users = ctx.input.users ?? [];
  if (users.length === 0) return;
  const passwd = parsePasswd((await ctx.image.readText('/etc/passwd')) ?? '');
  for (const who of users) {
    const user = findUser(passwd, who);
    if (!user) ctx.warn(`user ${who} is not in the image's /etc/passwd`);
    const reason = { kind: 'user', name: user?.name ?? who } as const;
    for (const f of ['/etc/passwd', '/etc/group']) {
      if (keepIfPresent(ctx, f, reason) === undefined && !wasDropped(ctx, f)) ctx.warn(`user ${who}: ${f} is not in the image`);
    }
  }
}

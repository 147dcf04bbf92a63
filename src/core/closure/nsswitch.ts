/**
 * /etc/nsswitch.conf: which services back each database, and the libraries and files the
 * services need.
 */

/** Database → services in order ("hosts: files [NOTFOUND=return] dns" → hosts: [files, dns]). */
export function parseNsswitch(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const hash = raw.indexOf('#');
    const line = (hash === -1 ? raw : raw.slice(0, hash)).trim();
    const m = /^([A-Za-z0-9_]+)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    // Action lists ("[NOTFOUND=return]", "[!UNAVAIL=return]") may contain spaces inside brackets.
    const services = m[2]!
      .replace(/\[[^\]]*\]/g, ' ')
      .split(/\s+/)
      .filter((s) => /^[A-Za-z0-9_.-]+$/.test(s));
    out.set(m[1]!, services);
  }
  return out;
}

/** The module library glibc loads for a service. */
export function nssModuleSoname(service: string): string {
  return `libnss_${service}.so.2`;
}

/** Services compiled into glibc ≥ 2.34 (libnss_files/libnss_dns are empty stubs or absent). */
export const BUILTIN_SERVICES = new Set(['files', 'dns']);

/** Databases the "files" service reads from /etc/<db>. shadow and gshadow are left out: secrets. */
export const FILES_DATABASES = new Set(['passwd', 'group', 'hosts', 'networks', 'protocols', 'services', 'ethers', 'rpc', 'netgroup', 'aliases', 'initgroups']);

/** Files the resolver reads when the "dns" service (or getaddrinfo) is used. */
export const DNS_FILES = ['/etc/resolv.conf', '/etc/host.conf', '/etc/gai.conf'];

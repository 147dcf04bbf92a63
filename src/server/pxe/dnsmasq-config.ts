import { ConfigError } from '../../lib/errors.js';
import type { PxeAssignment } from '../../core/model/pxe.js';

/** The iPXE binaries dnsmasq's TFTP hands to PXE clients that are not iPXE yet. */
export const IPXE_BOOT_FILES = { bios: 'undionly.kpxe', uefi: 'ipxe.efi' } as const;

export interface DnsmasqSettings {
  interface: string;
  /** proxy: answer PXE clients next to the site's DHCP server; range: hand out addresses too. */
  dhcp?: 'proxy' | 'range';
  /** The interface's IPv4 network. */
  network: Ipv4Network;
  /** range mode: the addresses handed out. */
  range?: { start: string; end: string };
  /** http://…/boot.ipxe: what iPXE clients are told to boot. */
  bootUrl: string;
  /** TFTP for PXE clients to fetch iPXE (tftpRoot holds the binaries). */
  tftp: boolean;
  tftpRoot: string;
  hostsFile: string;
  leaseFile: string;
  pidFile: string;
}

export interface Ipv4Network {
  address: string;
  netmask: string;
  /** The network's first address (address & netmask). */
  network: string;
  prefix: number;
}

const toInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const toIp = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

export function isIpv4(text: string): boolean {
  return /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(text) && text.split('.').every((o) => Number(o) <= 255 && String(Number(o)) === o);
}

/** An interface address with its netmask → the network. */
export function ipv4Network(address: string, netmask: string): Ipv4Network {
  const mask = toInt(netmask);
  const prefix = mask.toString(2).replace(/0+$/, '').length;
  const network = toIp((toInt(address) & mask) >>> 0);
  return { address, netmask, network, prefix };
}

function inNetwork(ip: string, n: Ipv4Network): boolean {
  return ((toInt(ip) & toInt(n.netmask)) >>> 0) === toInt(n.network);
}

/** `--dhcp-range A,B`: two addresses of the interface's network, the first not after the second. */
export function parseDhcpRange(text: string, n: Ipv4Network): { start: string; end: string } {
  const bad = (why: string) => new ConfigError(`--dhcp-range ${text}: ${why}`, { hint: `give two addresses of ${n.network}/${n.prefix}, e.g. --dhcp-range ${toIp(toInt(n.network) + 100)},${toIp(toInt(n.network) + 150)}` });
  const parts = text.split(',');
  if (parts.length !== 2 || !parts.every(isIpv4)) throw bad('not two IPv4 addresses separated by a comma');
  const [start, end] = parts as [string, string];
  if (!inNetwork(start, n) || !inNetwork(end, n)) throw bad(`not in the network of the interface (${n.network}/${n.prefix})`);
  if (toInt(start) > toInt(end)) throw bad('the first address is after the second');
  if (toInt(start) <= toInt(n.address) && toInt(n.address) <= toInt(end)) throw bad(`it holds the server's own address ${n.address}`);
  return { start, end };
}

/**
 * dnsmasq's configuration (pure). No DNS (port=0). The machines aim boots are the hosts file's
 * (hostsFileText), which dnsmasq tags `known`: only known machines get boot information, and in
 * proxy mode the others get no answer at all (dhcp-ignore), so on a site network they boot as
 * they always did. iPXE (user class "iPXE") is told the boot script's URL; PXE clients that are
 * not iPXE yet get the iPXE binary for their architecture by TFTP (DHCP option 93: 0 BIOS →
 * undionly.kpxe; 7 and 9 x86-64 UEFI → ipxe.efi), and ask again once they run iPXE.
 * proxy mode answers next to the site's DHCP server without handing out addresses: boot file
 * names through PXE boot service discovery (dnsmasq's pxe-service, also on port 4011), which is
 * what PXE ROMs and UEFI firmware expect from a proxyDHCP server. iPXE takes a proxyDHCP answer
 * only with a next server (siaddr) next to the file name (its dhcp_has_pxeopts), hence the
 * server's address on the iPXE line.
 */
export function renderDnsmasqConfig(s: DnsmasqSettings): string {
  if (s.dhcp === 'proxy' && !s.tftp) {
    throw new ConfigError('--dhcp proxy needs TFTP: PXE clients chainload iPXE through it', { hint: 'leave out --no-tftp; machines that run iPXE with aim\'s embedded script (aim pxe ipxe build) need no DHCP options at all: then drop --dhcp' });
  }
  const lines = [
    '# written by aim pxe serve; regenerated at every start',
    'port=0',
    `interface=${s.interface}`,
    'bind-dynamic',
    `pid-file=${s.pidFile}`,
  ];
  if (s.dhcp) {
    lines.push('log-dhcp', `dhcp-leasefile=${s.leaseFile}`, `dhcp-hostsfile=${s.hostsFile}`, 'dhcp-userclass=set:ipxe,iPXE');
    const ipxeBoot = `dhcp-boot=tag:known,tag:ipxe,${s.bootUrl},,${s.network.address}`;
    if (s.dhcp === 'proxy') {
      lines.push(
        'dhcp-ignore=tag:!known',
        `dhcp-range=${s.network.network},proxy,${s.network.netmask}`,
        ipxeBoot,
        `pxe-service=tag:known,tag:!ipxe,x86PC,"aim: iPXE for BIOS",${IPXE_BOOT_FILES.bios}`,
        `pxe-service=tag:known,tag:!ipxe,BC_EFI,"aim: iPXE for UEFI",${IPXE_BOOT_FILES.uefi}`,
        `pxe-service=tag:known,tag:!ipxe,X86-64_EFI,"aim: iPXE for UEFI",${IPXE_BOOT_FILES.uefi}`,
      );
    } else {
      const r = s.range!;
      lines.push(
        `dhcp-range=${r.start},${r.end},${s.network.netmask},1h`,
        'dhcp-authoritative',
        'dhcp-match=set:bios,option:client-arch,0',
        'dhcp-match=set:efi64,option:client-arch,7',
        'dhcp-match=set:efi64,option:client-arch,9',
        ipxeBoot,
        ...(s.tftp
          ? [`dhcp-boot=tag:known,tag:!ipxe,tag:efi64,${IPXE_BOOT_FILES.uefi},,${s.network.address}`, `dhcp-boot=tag:known,tag:!ipxe,tag:bios,${IPXE_BOOT_FILES.bios},,${s.network.address}`]
          : []),
      );
    }
  }
  if (s.tftp) lines.push('enable-tftp', `tftp-root=${s.tftpRoot}`, 'tftp-no-fail');
  return `${lines.join('\n')}\n`;
}

/**
 * dnsmasq's hosts file: the machines it gives boot information to, one MAC a line, which makes
 * them `known`. The MAC of every MAC assignment; every machine (a wildcard MAC) as soon as a UUID,
 * label or default assignment exists, since those are matched only when iPXE asks for its script.
 * dnsmasq rereads it on SIGHUP, so assignments change without a restart. No `set:` tags here:
 * dnsmasq 2.90 frees a host's tag list on that reread while a request it answered still links
 * into it, and aborts or crashes (found by the boot test; the plain `known` tag has no such list).
 */
export function hostsFileText(assignments: readonly Pick<PxeAssignment, 'selector'>[]): string {
  const everyone = assignments.some((a) => a.selector.kind !== 'mac');
  const macs = [...new Set(assignments.filter((a) => a.selector.kind === 'mac').map((a) => a.selector.value!))].sort();
  const lines = everyone ? ['*:*:*:*:*:*'] : macs;
  return `${lines.join('\n')}${lines.length ? '\n' : ''}`;
}

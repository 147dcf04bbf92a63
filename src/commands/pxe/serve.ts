import { Flags } from '@oclif/core';
import { join } from 'node:path';
import { AimCommand } from '../../cli/base-command.js';
import { serveEventLine } from '../../cli/pxe-output.js';
import { DEBIAN_IPXE_DIR } from '../../core/build/pxe.js';
import { parseDuration } from '../../core/profile/profile-run.js';
import { redactDeep } from '../../lib/redact.js';
import type { ServeEvent } from '../../server/pxe/events.js';
import { DEFAULT_LIMITS } from '../../server/pxe/http-server.js';
import { servePxe } from '../../server/pxe/serve.js';

export default class PxeServe extends AimCommand {
  static override summary = 'Boot machines over the network into assigned images, served straight from the repository (HTTP, and proxyDHCP/DHCP and TFTP through dnsmasq).';
  static override description = `A long-running server. HTTP: /boot.ipxe?mac=…&uuid=… is the iPXE script of the machine, rendered from
templates/pxe/boot.ipxe for its assignment (aim pxe assign) or a message when it has none; the
kernel and initrd of assigned images (nothing else) are streamed with Content-Length, ranges and
ETags from a content-addressed cache (--cache-dir) that the server fills from the repository:
the initrd is byte for byte what aim build --format pxe writes. Only GET and HEAD, a fixed set of
names, and limits on connections, header time and idle time.
It listens on 127.0.0.1 unless told otherwise. On a real network give --interface: the server
then listens on that interface's address and, with --dhcp proxy, runs dnsmasq as proxyDHCP next
to the site's DHCP server (which keeps handing out addresses), answering BIOS and UEFI PXE
clients (DHCP option 93) with iPXE by TFTP and iPXE with the boot script's URL. --dhcp range
hands out addresses too, for a lab network of its own. dnsmasq runs as a child and stops with
the server. Assignments made while it runs take effect within a second (SIGHUP rereads at once).
With --json, serve prints a stream of events, one JSON object per line (event, at, …), not a
single document: the one aim command that does; the last line is the "stopped" event.`;
  static override examples = [
    '<%= config.bin %> pxe serve                      # 127.0.0.1:8080: try it with aim boot or QEMU on this machine',
    '<%= config.bin %> pxe serve --interface eth1 --dhcp proxy   # a site network: the site\'s DHCP server keeps addresses',
    '<%= config.bin %> pxe serve --interface lab0 --dhcp range --dhcp-range 198.18.0.100,198.18.0.200',
    '<%= config.bin %> pxe serve --listen 0.0.0.0:8080 --json | jq -c \'select(.event=="request")\'',
  ];
  static override flags = {
    listen: Flags.string({ description: `ADDRESS:PORT for HTTP [default: 127.0.0.1:8080; with --interface, its address:8080]` }),
    interface: Flags.string({ description: 'network interface the machines boot on (needed for --dhcp and --tftp)' }),
    dhcp: Flags.string({ description: 'answer DHCP through dnsmasq: proxy (next to the site\'s DHCP server) or range (hand out addresses too)', options: ['proxy', 'range'] }),
    'dhcp-range': Flags.string({ description: 'with --dhcp range: first and last address to hand out, A,B' }),
    tftp: Flags.boolean({ description: 'serve iPXE (undionly.kpxe, ipxe.efi) by TFTP for PXE clients [default: on with --dhcp]', allowNo: true }),
    'ipxe-dir': Flags.string({ description: 'directory holding the undionly.kpxe and ipxe.efi to hand out', default: DEBIAN_IPXE_DIR }),
    'cache-dir': Flags.string({ description: 'where kernels and compressed initrds are cached [default: <repo>/cache/pxe]' }),
    'max-connections': Flags.integer({ description: 'open connections in all', default: DEFAULT_LIMITS.maxConnections, min: 1 }),
    'max-connections-per-ip': Flags.integer({ description: 'open connections from one address', default: DEFAULT_LIMITS.maxConnectionsPerIp, min: 1 }),
    'header-timeout': Flags.string({ description: 'time a client has to send its request headers', default: `${DEFAULT_LIMITS.headersTimeoutMs / 1000}s` }),
    'idle-timeout': Flags.string({ description: 'a connection silent this long is closed', default: `${DEFAULT_LIMITS.idleTimeoutMs / 1000}s` }),
  };

  private jsonLines = false;

  // serve's --json is a stream: every document (events, the final one, an error) on one line
  override logJson(json: unknown): void {
    process.stdout.write(`${JSON.stringify(redactDeep(json))}\n`);
  }

  async run(): Promise<ServeEvent> {
    const { flags } = await this.parse(PxeServe);
    this.jsonLines = this.jsonEnabled();
    const repo = await this.repository(flags.repo);
    const signal = this.abortSignal();
    let reload: (() => void) | undefined;
    let stopped: ServeEvent | undefined;
    const onHup = () => reload?.();
    process.on('SIGHUP', onHup);
    try {
      const summary = await servePxe({
        repo,
        ...(flags.listen === undefined ? {} : { listen: flags.listen }),
        ...(flags.interface === undefined ? {} : { interface: flags.interface }),
        ...(flags.dhcp === undefined ? {} : { dhcp: flags.dhcp as 'proxy' | 'range' }),
        ...(flags['dhcp-range'] === undefined ? {} : { dhcpRange: flags['dhcp-range'] }),
        ...(flags.tftp === undefined ? {} : { tftp: flags.tftp }),
        ipxeDir: flags['ipxe-dir'],
        cacheDir: flags['cache-dir'] ?? join(repo.root, 'cache', 'pxe'),
        limits: {
          maxConnections: flags['max-connections'],
          maxConnectionsPerIp: flags['max-connections-per-ip'],
          headersTimeoutMs: parseDuration(flags['header-timeout']),
          idleTimeoutMs: parseDuration(flags['idle-timeout']),
        },
        emit: (e) => {
          if (e.event !== 'stopped') return this.event(e);
          // how it was stopped, said plainly (the signal's reason is written for commands that clean up)
          stopped = { ...e, reason: /\((Ctrl-C|SIGTERM)\)/.exec(e.reason)?.[1] ?? e.reason };
        },
        reporter: this.reporter(),
        signal,
        onReloadHook: (r) => (reload = r),
      });
      // the stopped event is the result: with --json the stream's last line
      if (!this.jsonLines) this.event(stopped!);
      return stopped ?? { event: 'stopped', at: new Date().toISOString(), reason: summary.reason, requests: summary.requests, bytes: summary.bytes };
    } finally {
      process.off('SIGHUP', onHup);
    }
  }

  private event(e: ServeEvent): void {
    if (this.jsonLines) this.logJson(e);
    else this.log(serveEventLine(e));
  }
}

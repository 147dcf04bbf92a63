import { Flags } from '@oclif/core';
import { AimCommand } from '../../../cli/base-command.js';
import { formatBytes, table } from '../../../cli/format.js';
import { buildIpxe, DEFAULT_IPXE_JOBS, type IpxeBuildResult } from '../../../core/pxe/ipxe-build.js';
import { defaultCacheDir } from '../../../core/pxe/ipxe-cache.js';
import { resolveEmbeddedScript } from '../../../core/pxe/ipxe-script.js';
import { IPXE_TARGETS, type IpxeTarget } from '../../../core/pxe/ipxe-targets.js';

export default class PxeIpxeBuild extends AimCommand {
  static override summary = 'Build iPXE from source with a script embedded (by default: DHCP, then chain to aim pxe serve).';
  static override description = [
    'Runs iPXE\'s own build (make in src/, EMBED=the script, -j2) in a private copy of --ipxe-src (a source tree or a tarball of one) kept in aim\'s cache, and caches the binaries by (source hash, script, target): the same build again takes no time. Tools are checked first (gcc, binutils, make, perl, liblzma-dev; mtools, syslinux, isolinux and xorriso for usb and iso).',
    'The default script (templates/ipxe/embedded.ipxe) runs DHCP and chains to <chain>/boot.ipxe?mac=${net0/mac}&uuid=${uuid}&buildarch=${buildarch}&platform=${platform}, retrying every 10 s with a message when DHCP or the server fails. So machines need no DHCP options: chainloaded by PXE, or booted from a USB stick or an ISO (BMC virtual media), they reach aim pxe serve.',
    'Targets: efi → snponly.efi (chainload from UEFI PXE: drives the NIC it was loaded from, through the firmware) and ipxe.efi (all of iPXE\'s drivers, for media); bios → undionly.kpxe (chainload from legacy PXE over TFTP), ipxe.lkrn (for boot loaders) and 1af41000.rom (a virtio-net NIC ROM, QEMU\'s romfile=); usb → ipxe.usb and iso → ipxe.iso, each booting BIOS and UEFI machines.',
  ].join('\n\n');
  static override examples = [
    '<%= config.bin %> pxe ipxe build --ipxe-src ~/src/ipxe --chain http://192.0.2.10:8080 --out /srv/tftp   # efi + bios: snponly.efi, undionly.kpxe, …',
    '<%= config.bin %> pxe ipxe build --ipxe-src ipxe.tar.gz --chain http://192.0.2.10:8080 --target iso --out media   # for BMC virtual media',
    'AIM_IPXE_SRC=~/src/ipxe <%= config.bin %> pxe ipxe build --embed site.ipxe --target efi --json',
  ];
  static override flags = {
    'ipxe-src': Flags.string({ description: 'iPXE source tree (the directory holding src/) or a tarball of one [default: $AIM_IPXE_SRC]' }),
    chain: Flags.string({ description: 'URL of aim pxe serve as the machines reach it (http(s)://host[:port]); embeds the default script', exclusive: ['embed'] }),
    embed: Flags.string({ description: 'your own iPXE script to embed instead (starts with #!ipxe)', exclusive: ['chain'] }),
    target: Flags.string({ char: 't', description: 'what to build (repeatable)', options: [...IPXE_TARGETS], multiple: true, default: ['efi', 'bios'] }),
    out: Flags.string({ char: 'o', description: 'also copy the binaries into this directory (created if absent)' }),
    'cache-dir': Flags.string({ description: 'aim\'s cache directory [default: $AIM_CACHE_DIR, else $XDG_CACHE_HOME/aim or ~/.cache/aim]' }),
    jobs: Flags.integer({ char: 'j', description: 'parallel make jobs', default: DEFAULT_IPXE_JOBS, min: 1 }),
  };

  async run(): Promise<IpxeBuildResult> {
    const { flags } = await this.parse(PxeIpxeBuild);
    const { script, origin } = await resolveEmbeddedScript({ embed: flags.embed, chain: flags.chain });
    const result = await buildIpxe(
      {
        source: flags['ipxe-src'] ?? process.env.AIM_IPXE_SRC,
        script,
        scriptOrigin: origin,
        targets: flags.target as IpxeTarget[],
        cacheDir: flags['cache-dir'] ?? defaultCacheDir(),
        outDir: flags.out,
        jobs: flags.jobs,
        signal: this.abortSignal(),
      },
      this.reporter(),
    );
    const rows = result.targets.flatMap((t) => t.files.map((f) => [t.target, f.name, formatBytes(f.bytes), t.cached ? 'cached' : 'built', f.outPath ?? f.path]));
    this.log(table(['TARGET', 'FILE', 'SIZE', 'FROM', 'PATH'], rows));
    this.log(result.build ? `built in ${result.build.seconds.toFixed(0)} s (make -j${result.build.jobs}; log: ${result.build.log})` : `from the cache in ${result.seconds.toFixed(1)} s`);
    return result;
  }
}

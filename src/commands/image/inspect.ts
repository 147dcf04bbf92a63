import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { formatBytes, formatCount, table } from '../../cli/format.js';
import { inspectImage, type ImageInspection } from '../../core/query/inspect.js';
import { resolveImage } from '../../core/query/resolve.js';
import type { SlimReport } from '../../core/slim/compose.js';

export default class ImageInspect extends AimCommand {
  static override summary = 'Show what an image holds: size, file counts, packages, biggest directories, licenses.';
  static override examples = [
    '<%= config.bin %> image inspect gold/nginx:1',
    '<%= config.bin %> image inspect gold/nginx:1 --packages 50',
    '<%= config.bin %> image inspect 3f2a9c1d --json',
  ];
  static override args = { ref: Args.string({ description: 'image (name:tag or id)', required: true }) };
  static override flags = {
    packages: Flags.integer({ description: 'how many packages to list (largest first)', default: 10, min: 0 }),
  };

  async run(): Promise<ImageInspection> {
    const { args, flags } = await this.parse(ImageInspect);
    const repo = await this.repository(flags.repo);
    const info = await inspectImage(repo, await resolveImage(repo, args.ref));
    const c = info.counts;
    this.log(`image    ${info.id}`);
    this.log(`tags     ${info.tags.join(', ') || '-'}`);
    this.log(`source   ${info.source} (${info.sourceKind}), ${info.createdAt}`);
    if (info.osRelease?.PRETTY_NAME) this.log(`os       ${info.osRelease.PRETTY_NAME}`);
    this.log(`size     ${formatBytes(info.totalSize)} in ${formatCount(c.file)} files`);
    this.log(`entries  ${formatCount(info.entryCount)}: ${c.dir} dirs, ${c.symlink} symlinks, ${c.hardlink} hardlinks, ${c.char + c.block} devices, ${c.fifo} fifos`);
    this.log(`packages ${info.packageCount}; ELF objects ${info.elfObjects}`);
    this.log('\nbiggest directories');
    this.log(table(['PATH', 'SIZE', 'FILES'], info.biggestDirs.map((d) => [d.path, formatBytes(d.bytes), formatCount(d.files)])));
    if (flags.packages > 0 && info.packages.length > 0) {
      this.log(`\nlargest packages (${Math.min(flags.packages, info.packages.length)} of ${info.packageCount})`);
      this.log(table(['PACKAGE', 'VERSION', 'SIZE', 'FILES'], info.packages.slice(0, flags.packages).map((p) => [p.name, p.version, formatBytes(p.bytes), formatCount(p.files)])));
    }
    if (info.licenses.length > 0) {
      this.log(`\nlicenses (SPDX, by package count; ${info.unlicensedPackages} packages without a machine-readable copyright)`);
      this.log(info.licenses.slice(0, 12).map((l) => `${l.spdx} (${l.packages})`).join(', '));
    }
    if (info.slimReport) {
      const r = info.slimReport as SlimReport;
      this.log(`\nslim of ${r.gold.id.slice(0, 12)} by profile ${r.profile}: ${formatCount(r.slim.files)} of ${formatCount(r.gold.files)} files, ${formatBytes(r.slim.bytes)} of ${formatBytes(r.gold.bytes)}`);
      // Reports of images slimmed before the limit was recorded lack it.
      if (r.limit) this.log(`traced limit ${formatBytes(r.limit.bytes)} in ${formatCount(r.limit.files)} files (${r.packagesTouched.length} packages touched)`);
      if (r.entrypoint) this.log(`entrypoint ${JSON.stringify(r.entrypoint)}`);
      this.log(table(['REMOVED FROM PACKAGE', 'SIZE', 'FILES'], r.removedByPackage.slice(0, 10).map((p) => [p.package, formatBytes(p.bytes), formatCount(p.files)])));
    }
    return info;
  }
}

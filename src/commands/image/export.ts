import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { formatBytes, shortId } from '../../cli/format.js';
import { EXPORT_FORMATS, exportImage, type ExportFormat, type ExportResult } from '../../core/export/export-image.js';
import { resolveImage } from '../../core/query/resolve.js';

export default class ImageExport extends AimCommand {
  static override summary = 'Write an image back out exactly, as a tar archive or a directory tree.';
  static override description = 'A directory export restores owners, devices and capabilities only as root; a tar export needs no privileges.';
  static override examples = [
    '<%= config.bin %> image export gold/nginx:1 --format tar --out nginx.tar',
    'sudo <%= config.bin %> image export gold/nginx:1 --format dir --out /srv/rootfs',
  ];
  static override args = { ref: Args.string({ description: 'image (name:tag or id)', required: true }) };
  static override flags = {
    format: Flags.string({ description: 'output format', options: [...EXPORT_FORMATS], default: 'tar' }),
    out: Flags.string({ char: 'o', description: 'output file (tar) or new/empty directory (dir)', required: true }),
  };

  async run(): Promise<ExportResult> {
    const { args, flags } = await this.parse(ImageExport);
    const repo = await this.repository(flags.repo);
    const id = await resolveImage(repo, args.ref);
    const result = await exportImage(repo, id, { format: flags.format as ExportFormat, out: flags.out }, this.reporter());
    this.log(`exported ${shortId(id)} as ${result.format} to ${result.out} (${result.entries} entries, ${formatBytes(result.bytes)})`);
    return result;
  }
}

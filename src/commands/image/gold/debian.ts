import { Flags } from '@oclif/core';
import { AimCommand } from '../../../cli/base-command.js';
import { formatBytes, shortId } from '../../../cli/format.js';
import { buildGoldDebian, mmdebstrapArgs, type GoldDebianRequest } from '../../../core/import/gold-debian.js';
import type { ImportResult } from '../../../core/import/import-image.js';

const VARIANTS = ['minbase', 'essential', 'apt', 'required', 'important', 'standard'] as const;

export default class GoldDebian extends AimCommand {
  static override summary = "Build a Debian gold image with mmdebstrap from the machine's apt sources and import it.";
  static override description = `mmdebstrap's tar is streamed straight into the repository: no intermediate tree is written.
The image's apt sources are removed (they name this machine's mirror) unless --keep-apt-sources.`;
  static override examples = [
    '<%= config.bin %> image gold debian --suite bookworm --variant minbase --include nginx --tag gold/nginx:1',
    '<%= config.bin %> image gold debian --include nginx,linux-image-amd64 --tag gold/nginx-kernel:1 --json',
    '<%= config.bin %> image gold debian --include redis-server --tag gold/redis:1 --dry-run',
  ];
  static override flags = {
    suite: Flags.string({ description: 'Debian suite', default: 'bookworm' }),
    variant: Flags.string({ description: 'mmdebstrap variant', options: [...VARIANTS], default: 'minbase' }),
    include: Flags.string({ description: 'extra packages, comma separated', default: '' }),
    arch: Flags.string({ description: 'architecture (default: the host’s)' }),
    tag: Flags.string({ char: 't', description: 'name:tag (repeatable)', multiple: true, default: [] }),
    sources: Flags.string({ description: 'file of deb lines to use instead of the machine’s apt sources' }),
    'keep-apt-sources': Flags.boolean({ description: 'keep apt sources inside the image' }),
    'dry-run': Flags.boolean({ description: 'print the mmdebstrap command and stop' }),
  };

  async run(): Promise<ImportResult | { dryRun: true; command: string[] }> {
    const { flags } = await this.parse(GoldDebian);
    const req: GoldDebianRequest = {
      suite: flags.suite,
      variant: flags.variant as GoldDebianRequest['variant'],
      include: flags.include.split(',').map((s) => s.trim()).filter(Boolean),
      arch: flags.arch,
      tags: flags.tag,
      sourcesFile: flags.sources,
      keepAptSources: flags['keep-apt-sources'],
    };
    if (flags['dry-run']) {
      const command = ['mmdebstrap', ...mmdebstrapArgs(req)];
      this.log(command.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' '));
      return { dryRun: true, command };
    }
    const result = await buildGoldDebian(await this.repository(flags.repo), req, this.reporter());
    this.log(
      `built ${shortId(result.id)} ${result.tags.join(' ')}: ${result.fileCount} files, ${formatBytes(result.totalSize)}, ` +
        `${result.packageCount} packages (${(result.durationMs / 1000).toFixed(1)} s)`,
    );
    return result;
  }
}

import { Flags } from '@oclif/core';
import { AimCommand } from '../../../cli/base-command.js';
import { formatBytes, shortId } from '../../../cli/format.js';
import { buildGoldDebian, mmdebstrapArgs, resolveCopyIns, type GoldDebianRequest } from '../../../core/import/gold-debian.js';
import type { ImportResult } from '../../../core/import/import-image.js';
import { parseByteSize } from '../../../core/repository/space-guard.js';
import { loadTemplate, templateCopyIns } from '../../../core/template/index.js';

const VARIANTS = ['minbase', 'essential', 'apt', 'required', 'important', 'standard'] as const;

export default class GoldDebian extends AimCommand {
  static override summary = "Build a Debian gold image with mmdebstrap from the machine's apt sources and import it.";
  static override description = `mmdebstrap's tar is streamed straight into the repository: no intermediate tree is written.
The image's apt sources are removed (they name this machine's mirror) unless --keep-apt-sources.
--copy-in SRC:DEST puts host content into the tree after the packages are installed: a
directory's contents land in the image directory DEST (created), a file lands in DEST.
With --template, the template's gold section gives the defaults (flags win; packages and
copy-ins add up).`;
  static override examples = [
    '<%= config.bin %> image gold debian --suite bookworm --variant minbase --include nginx --tag gold/nginx:1',
    '<%= config.bin %> image gold debian --include nginx --copy-in examples/nginx/site:/var/www/html --tag gold/site:1',
    '<%= config.bin %> image gold debian --include nginx,linux-image-amd64 --tag gold/nginx-kernel:1 --json',
    '<%= config.bin %> image gold debian --template examples/redis/template.yaml',
    '<%= config.bin %> image gold debian --include redis-server --tag gold/redis:1 --dry-run',
  ];
  static override flags = {
    template: Flags.string({ description: 'image template (YAML) whose gold section to build' }),
    suite: Flags.string({ description: 'Debian suite [default: bookworm]' }),
    variant: Flags.string({ description: 'mmdebstrap variant [default: minbase]', options: [...VARIANTS] }),
    include: Flags.string({ description: 'extra packages, comma separated', default: '' }),
    'copy-in': Flags.string({ description: 'SRC:DEST, host content to put into the image (repeatable)', multiple: true, default: [] }),
    arch: Flags.string({ description: 'architecture (default: the host’s)' }),
    tag: Flags.string({ char: 't', description: 'name:tag (repeatable) [default: the template’s gold.tag]', multiple: true, default: [] }),
    sources: Flags.string({ description: 'file of deb lines to use instead of the machine’s apt sources' }),
    'keep-apt-sources': Flags.boolean({ description: 'keep apt sources inside the image' }),
    'max-size': Flags.string({ description: 'most new content the build may add to the repository (512M, 20G); it fails with E_MAX_SIZE beyond' }),
    'dry-run': Flags.boolean({ description: 'print the mmdebstrap command and stop' }),
  };

  async run(): Promise<ImportResult | { dryRun: true; command: string[] }> {
    const { flags } = await this.parse(GoldDebian);
    const loaded = flags.template ? await loadTemplate(flags.template) : undefined;
    const g = loaded?.template.gold;
    const req: GoldDebianRequest = {
      suite: flags.suite ?? g?.suite ?? 'bookworm',
      variant: (flags.variant ?? g?.variant ?? 'minbase') as GoldDebianRequest['variant'],
      include: [...new Set([...(g?.include ?? []), ...flags.include.split(',').map((s) => s.trim()).filter(Boolean)])],
      arch: flags.arch,
      tags: flags.tag.length > 0 ? flags.tag : g?.tag ? [g.tag] : [],
      sourcesFile: flags.sources,
      keepAptSources: flags['keep-apt-sources'],
      copyIns: await resolveCopyIns([...(loaded ? templateCopyIns(loaded) : []), ...flags['copy-in']]),
      maxBytes: flags['max-size'] === undefined ? undefined : parseByteSize(flags['max-size'], '--max-size'),
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

import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { formatBytes, shortId } from '../../cli/format.js';
import { importImage, SOURCE_KINDS, type ImportResult } from '../../core/import/import-image.js';
import { parseByteSize } from '../../core/repository/space-guard.js';

export default class ImageImport extends AimCommand {
  static override summary = 'Import a gold image: directory, tar(.gz|.xz|.zst), OCI layout, docker-save archive, or raw/qcow2 disk.';
  static override description = `The source kind is detected from the content, not the name. Every file becomes a content-addressed
blob (stored once across all images); owners, modes, times, xattrs, devices and hardlinks are kept
exactly. An import that fails or is killed leaves the repository as it was.
It stops with E_NO_SPACE before the repository's filesystem runs out, and with E_MAX_SIZE beyond --max-size.`;
  static override examples = [
    '<%= config.bin %> image import ./rootfs --tag gold/web:1',
    '<%= config.bin %> image import rootfs.tar.zst --tag gold/web:2',
    '<%= config.bin %> image import nginx-oci.tar --tag gold/nginx:oci',
    '<%= config.bin %> image import disk.qcow2 --partition 2 --tag gold/vm:1 --json',
  ];
  static override args = { source: Args.string({ description: 'path of the source', required: true }) };
  static override flags = {
    tag: Flags.string({ char: 't', description: 'name:tag to point at the image (repeatable)', multiple: true, default: [] }),
    kind: Flags.string({ description: 'source kind (default: detected)', options: [...SOURCE_KINDS], default: 'auto' }),
    partition: Flags.integer({ description: 'disk images: partition number of the root filesystem', min: 1 }),
    ref: Flags.string({ description: 'OCI layouts / docker archives with several images: the image name[:tag]' }),
    platform: Flags.string({ description: 'OCI image indexes: os/arch[/variant] to pick (default linux/amd64)' }),
    'max-size': Flags.string({ description: 'most new content the import may add to the repository (512M, 20G); it fails with E_MAX_SIZE beyond' }),
  };

  async run(): Promise<ImportResult> {
    const { args, flags } = await this.parse(ImageImport);
    const repo = await this.repository(flags.repo);
    const result = await importImage(
      repo,
      {
        source: args.source,
        kind: flags.kind as (typeof SOURCE_KINDS)[number],
        tags: flags.tag,
        partition: flags.partition,
        ref: flags.ref,
        platform: flags.platform,
        maxBytes: flags['max-size'] === undefined ? undefined : parseByteSize(flags['max-size'], '--max-size'),
      },
      this.reporter(),
    );
    this.log(
      `${result.created ? 'imported' : 'already present:'} ${shortId(result.id)} ${result.tags.join(' ')}\n` +
        `  ${result.entryCount} entries, ${result.fileCount} files, ${formatBytes(result.totalSize)}; ` +
        `${result.packageCount} packages, ${result.elfCount} ELF objects (${(result.durationMs / 1000).toFixed(1)} s)`,
    );
    return result;
  }
}

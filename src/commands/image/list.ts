import { AimCommand } from '../../cli/base-command.js';
import { formatBytes, formatCount, shortId, table } from '../../cli/format.js';
import type { ImageRecord } from '../../core/repository/types.js';

export default class ImageList extends AimCommand {
  static override summary = 'List the images in the repository.';
  static override examples = ['<%= config.bin %> image list', '<%= config.bin %> image list --json'];

  async run(): Promise<{ images: (ImageRecord & { tags: string[] })[] }> {
    const { flags } = await this.parse(ImageList);
    const images = await (await this.repository(flags.repo)).catalog.listImages();
    this.log(
      table(
        ['ID', 'TAGS', 'FILES', 'SIZE', 'SOURCE', 'CREATED'],
        images.map((i) => [shortId(i.id), i.tags.join(',') || '-', formatCount(i.fileCount), formatBytes(i.totalSize), i.source, i.createdAt.slice(0, 19)]),
      ),
    );
    return { images };
  }
}

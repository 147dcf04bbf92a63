import { Args } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { parseTag } from '../../core/import/tags.js';
import { resolveImage } from '../../core/query/resolve.js';

export default class ImageTag extends AimCommand {
  static override summary = 'Point a name:tag at an image.';
  static override examples = ['<%= config.bin %> image tag gold/nginx:1 gold/nginx:stable'];
  static override args = {
    ref: Args.string({ description: 'existing image (name:tag or id)', required: true }),
    tag: Args.string({ description: 'new name:tag', required: true }),
  };

  async run(): Promise<{ id: string; tag: string }> {
    const { args, flags } = await this.parse(ImageTag);
    const repo = await this.repository(flags.repo);
    const id = await resolveImage(repo, args.ref);
    const tag = parseTag(args.tag);
    await repo.catalog.setTag(tag, id);
    this.log(`${tag} → ${id.slice(0, 12)}`);
    return { id, tag };
  }
}

import { Args } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { removeImageRef, type RemoveResult } from '../../core/query/remove.js';

export default class ImageRm extends AimCommand {
  static override summary = 'Remove a tag, or an image with all its tags.';
  static override description = 'Removing a tag removes the image too when no other tag points at it. Blobs are freed by aim repo gc.';
  static override examples = ['<%= config.bin %> image rm gold/nginx:1', '<%= config.bin %> image rm 3f2a9c1d0b7e'];
  static override args = { ref: Args.string({ description: 'name:tag or image id', required: true }) };

  async run(): Promise<RemoveResult> {
    const { args, flags } = await this.parse(ImageRm);
    const result = await removeImageRef(await this.repository(flags.repo), args.ref);
    this.log(`${result.untagged.length ? `untagged ${result.untagged.join(', ')}; ` : ''}${result.removedImage ? `removed image ${result.removedImage.slice(0, 12)}` : 'image kept (other tags point at it)'}`);
    return result;
  }
}

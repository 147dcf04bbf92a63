import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { removeImageRef, type RemoveResult } from '../../core/query/remove.js';
import { danglingEffect } from '../../core/repository/holds.js';

export default class ImageRm extends AimCommand {
  static override summary = 'Remove a tag, or an image with all its tags.';
  static override description = `Removing a tag removes the image too when no other tag points at it. Blobs are freed by aim repo gc.
An image in use is refused (E_IMAGE_IN_USE, exit 2): one a channel serves or would roll back to (its
last good version), one a channel's AMI pointer, a PXE assignment or a live publication (aim ship list)
names. --force removes it anyway and lists what it leaves dangling; aim repo gc keeps its objects
as long as anything still names it.`;
  static override examples = ['<%= config.bin %> image rm gold/nginx:1', '<%= config.bin %> image rm 3f2a9c1d0b7e', '<%= config.bin %> image rm slim/nginx:1 --force'];
  static override args = { ref: Args.string({ description: 'name:tag or image id', required: true }) };
  static override flags = {
    force: Flags.boolean({ description: 'remove an image in use (a channel, PXE assignment or publication names it), leaving those references dangling' }),
  };

  async run(): Promise<RemoveResult> {
    const { args, flags } = await this.parse(ImageRm);
    const result = await removeImageRef(await this.repository(flags.repo), args.ref, { force: flags.force });
    this.log(`${result.untagged.length ? `untagged ${result.untagged.join(', ')}; ` : ''}${result.removedImage ? `removed image ${result.removedImage.slice(0, 12)}` : 'image kept (other tags point at it)'}`);
    const reporter = this.reporter();
    for (const h of result.dangling ?? []) reporter.emit({ type: 'warn', code: 'W_IMAGE_DANGLING', message: `left dangling: ${danglingEffect(h)}` });
    return result;
  }
}

import { Args } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import type { PxeAssignment } from '../../core/model/pxe.js';
import { unassignMachine } from '../../core/pxe/assignments.js';

export default class PxeUnassign extends AimCommand {
  static override summary = 'Remove the assignment of a MAC, UUID, label or default: those machines boot something else, or nothing.';
  static override description = 'A running aim pxe serve stops serving the image within a second (unless another assignment boots it) and removes its cached files.';
  static override examples = ['<%= config.bin %> pxe unassign 52:54:00:12:34:56', '<%= config.bin %> pxe unassign default --json'];
  static override args = { machines: Args.string({ description: 'the selector, as given to aim pxe assign', required: true }) };

  async run(): Promise<{ removed: PxeAssignment }> {
    const { args, flags } = await this.parse(PxeUnassign);
    const removed = await unassignMachine(await this.repository(flags.repo), args.machines);
    this.log(`${removed.selector.key} no longer boots ${removed.imageRef} (${removed.imageId.slice(0, 12)})`);
    return { removed };
  }
}

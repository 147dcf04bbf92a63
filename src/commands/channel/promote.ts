import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { historyTable } from '../../cli/channel-output.js';
import { promoteImage, type PromoteResult } from '../../core/lifecycle/channels.js';

export default class ChannelPromote extends AimCommand {
  static override summary = 'Point a channel (dev, qual, prod: names are yours) at an image, and with it what follows the channel.';
  static override description = `Creates the channel on its first promotion. What follows the channel moves with it in the same
catalog transaction: every PXE assignment made with --channel NAME (aim pxe assign) boots the
image from its next boot (the boot is planned first: an image that cannot boot is refused and
nothing moves), and the channel's AMI pointers become the AMIs that publications of the image hold
(aim ship aws), one per region; a region without one loses its pointer. Each move is a history
entry with who, when, why (--reason) and what followed (aim channel history). Promoting the image a
channel already holds refreshes its pointers (after a ship) and records nothing when nothing
changed. --qualified refuses an image whose latest qualification (aim qualify) did not pass.`;
  static override examples = [
    '<%= config.bin %> channel promote slim/redis:1 prod',
    '<%= config.bin %> channel promote slim/redis:2 qual --reason "CVE-2025-0001 fixed"',
    '<%= config.bin %> channel promote slim/redis:2 prod --qualified --json',
  ];
  static override args = {
    image: Args.string({ description: 'image to promote (name:tag or id)', required: true }),
    channel: Args.string({ description: 'channel name: lower-case letters, digits, . _ - (e.g. prod)', required: true }),
  };
  static override flags = {
    reason: Flags.string({ description: 'why, recorded in the channel history' }),
    qualified: Flags.boolean({ description: 'refuse an image whose latest qualification did not pass (E_NOT_QUALIFIED)' }),
  };

  async run(): Promise<PromoteResult> {
    const { args, flags } = await this.parse(ChannelPromote);
    const repo = await this.repository(flags.repo);
    const result = await promoteImage(repo, { image: args.image, channel: args.channel, ...(flags.reason === undefined ? {} : { reason: flags.reason }), requireQualified: flags.qualified }, this.reporter());
    this.log(result.entry ? historyTable([result.entry]) : `channel ${args.channel} already holds ${result.channel.imageRef}; nothing changed`);
    return result;
  }
}

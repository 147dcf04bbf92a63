import { AimCommand } from '../../cli/base-command.js';
import { channelsTable } from '../../cli/channel-output.js';
import { listChannels, type ChannelView } from '../../core/lifecycle/channels.js';

export default class ChannelList extends AimCommand {
  static override summary = 'List channels: the image each serves, its state and qualification, its AMI pointers.';
  static override description = `STATE is ready, qualifying (a rollout qualifies the image it promoted) or interrupted (that rollout
is gone: roll back or promote by hand). AMIS are the channel's AMI pointers, one per region: the
AMI a publication of the channel's image holds there, set when the channel moved. With --json each
channel's "amis" is [{region, amiId, imageId, publication, updatedAt}], what Pulumi programs read
to launch the channel's image. MISSING marks a channel whose image was removed from the repository.`;
  static override examples = ['<%= config.bin %> channel list', '<%= config.bin %> channel list --json'];

  async run(): Promise<{ channels: ChannelView[] }> {
    const { flags } = await this.parse(ChannelList);
    const channels = await listChannels(await this.repository(flags.repo));
    this.log(channelsTable(channels));
    return { channels };
  }
}

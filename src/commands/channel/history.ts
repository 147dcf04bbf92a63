import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { historyTable } from '../../cli/channel-output.js';
import { channelHistory } from '../../core/lifecycle/channels.js';
import type { ChannelHistoryEntry } from '../../core/model/channel.js';

export default class ChannelHistory extends AimCommand {
  static override summary = 'Show how a channel moved: promotions, rollbacks and qualifications, who, when, why and what followed.';
  static override description = `Oldest first. ACTION is promote, rollback, or qualified (a rollout's candidate passed and stays).
FOLLOWED lists the PXE assignments switched and the AMI pointers set or removed by the move.`;
  static override examples = ['<%= config.bin %> channel history prod', '<%= config.bin %> channel history prod --limit 5 --json'];
  static override args = { channel: Args.string({ description: 'channel name', required: true }) };
  static override flags = { limit: Flags.integer({ description: 'only the newest this many entries', min: 1 }) };

  async run(): Promise<{ channel: string; history: ChannelHistoryEntry[] }> {
    const { args, flags } = await this.parse(ChannelHistory);
    const history = await channelHistory(await this.repository(flags.repo), args.channel, flags.limit);
    this.log(historyTable(history));
    return { channel: args.channel, history };
  }
}

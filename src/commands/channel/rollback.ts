import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { historyTable } from '../../cli/channel-output.js';
import { rollbackChannel } from '../../core/lifecycle/channels.js';
import type { ChannelHistoryEntry, ChannelRecord } from '../../core/model/channel.js';

export default class ChannelRollback extends AimCommand {
  static override summary = 'Move a channel back to its last good version, and with it what follows the channel.';
  static override description = `The last good version is the newest image the channel held before its current one that it was
never rolled back from (since last promoted by hand), whose latest qualification did not fail, and
that is still in the repository. PXE assignments that follow the channel and its AMI pointers move
back with it, in the same transaction; the history records why (--reason). The image left is not
gone back to by later rollbacks. aim rollout does the same by itself when qualification fails.
Exits 3 (E_NO_GOOD_VERSION) when there is no such version.`;
  static override examples = [
    '<%= config.bin %> channel rollback prod',
    '<%= config.bin %> channel rollback prod --reason "latency doubled after slim/redis:3" --json',
  ];
  static override args = { channel: Args.string({ description: 'channel name', required: true }) };
  static override flags = { reason: Flags.string({ description: 'why, recorded in the channel history [default: rolled back by hand]' }) };

  async run(): Promise<{ channel: ChannelRecord; entry: ChannelHistoryEntry }> {
    const { args, flags } = await this.parse(ChannelRollback);
    const repo = await this.repository(flags.repo);
    const result = await rollbackChannel(repo, { channel: args.channel, ...(flags.reason === undefined ? {} : { reason: flags.reason }) }, this.reporter());
    this.log(historyTable([result.entry]));
    return result;
  }
}

import { AimCommand } from '../../cli/base-command.js';
import { formatBytes, formatCount, table } from '../../cli/format.js';
import { repoStats, type RepoStats } from '../../core/repository/maintenance.js';

export default class RepoStatsCommand extends AimCommand {
  static override summary = 'Show how much the repository stores and how much deduplication saves.';
  static override examples = ['<%= config.bin %> repo stats', '<%= config.bin %> repo stats --json'];

  async run(): Promise<RepoStats> {
    const { flags } = await this.parse(RepoStatsCommand);
    const stats = await repoStats(await this.repository(flags.repo));
    this.log(
      table(
        ['', 'value'],
        [
          ['images', formatCount(stats.images)],
          ['tags', formatCount(stats.tags)],
          ['files in images', formatCount(stats.logicalFiles)],
          ['logical bytes', formatBytes(stats.logicalBytes)],
          ['unique blobs', formatCount(stats.uniqueBlobs)],
          ['unique bytes', formatBytes(stats.uniqueBytes)],
          ['stored bytes (all blobs)', formatBytes(stats.storedBytes)],
          ['on disk', formatBytes(stats.diskBytes)],
          ['dedup ratio', `${stats.dedupRatio.toFixed(2)}x`],
        ],
      ),
    );
    return stats;
  }
}

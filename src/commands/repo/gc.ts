import { Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { formatBytes } from '../../cli/format.js';
import { gcRepository, type GcReport } from '../../core/repository/maintenance.js';

export default class RepoGc extends AimCommand {
  static override summary = 'Remove blobs that no image references, scratch left by killed runs, and impact index rows of removed images.';
  static override description = `Safe against concurrent imports: gc refuses to run (exit code 9) while an import holds the repository, unless --wait lets it wait.
Also removes scratch directories of dead processes and ship builds (ship-builds/<publication>) that no publication needs; the build of a pending or interrupted publication stays for aim ship resume or aim ship rm.
Never collects the objects of an image a channel, PXE assignment or live publication names, even one removed with aim image rm --force.`;
  static override examples = ['<%= config.bin %> repo gc', '<%= config.bin %> repo gc --dry-run', '<%= config.bin %> repo gc --wait 600 --json'];
  static override flags = {
    'dry-run': Flags.boolean({ description: 'only report what would be removed' }),
    wait: Flags.integer({ description: 'seconds to wait for running imports to finish', default: 0, min: 0 }),
  };

  async run(): Promise<GcReport> {
    const { flags } = await this.parse(RepoGc);
    const report = await gcRepository(await this.repository(flags.repo), this.reporter(), { dryRun: flags['dry-run'], waitMs: flags.wait * 1000 });
    const rows = Object.values(report.impactRows).reduce((n, c) => n + c, 0);
    this.log(`${report.dryRun ? 'would remove' : 'removed'} ${report.removedBlobs} blobs (${formatBytes(report.removedBytes)}) and ${rows} stale impact index rows, kept ${report.keptBlobs} blobs; ${report.removedScratchDirs} scratch dir(s), ${report.removedTrees} cached image tree(s), ${report.removedShipBuilds} orphaned ship build(s)`);
    return report;
  }
}

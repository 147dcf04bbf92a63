import { Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { IntegrityError } from '../../lib/errors.js';
import { fsckRepository, type FsckReport } from '../../core/repository/maintenance.js';

export default class RepoFsck extends AimCommand {
  static override summary = 'Check the repository: re-hash every blob and check every reference.';
  static override description = `Exits with code 8 when a blob is corrupt or missing or a manifest does not match its image id.
Unreferenced blobs and scratch files of killed imports are not errors: aim repo gc removes them.`;
  static override examples = ['<%= config.bin %> repo fsck', '<%= config.bin %> repo fsck --no-rehash --json'];
  static override flags = {
    rehash: Flags.boolean({ description: 're-hash blob contents (off: check sizes and references only)', default: true, allowNo: true }),
  };

  async run(): Promise<FsckReport> {
    const { flags } = await this.parse(RepoFsck);
    const report = await fsckRepository(await this.repository(flags.repo), this.reporter(), { rehash: flags.rehash });
    for (const p of report.problems) this.logToStderr(`problem: ${p.message}`);
    this.log(
      `${report.ok ? 'ok' : `${report.problems.length} problem(s)`}: ${report.imagesChecked} images, ${report.blobsChecked} blobs` +
        `${flags.rehash ? ` (${report.bytesHashed} bytes re-hashed)` : ''}; ${report.unreferencedBlobs} unreferenced blobs, ${report.staleScratchDirs} stale scratch dirs (aim repo gc removes them)`,
    );
    if (!report.ok) {
      if (this.jsonEnabled()) this.logJson(report);
      throw new IntegrityError(`${report.problems.length} integrity problem(s) found`, { hint: 're-import the affected images; their ids are listed above' });
    }
    return report;
  }
}

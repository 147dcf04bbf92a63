import { Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { shortId } from '../../cli/format.js';
import { ConfigError } from '../../lib/errors.js';
import { storeSourceBlobs } from '../../core/import/import-image.js';
import { fsckRepository, RepositoryDamagedError, type FsckReport } from '../../core/repository/maintenance.js';
import { repairRepository } from '../../core/repository/repair.js';

export default class RepoFsck extends AimCommand {
  static override summary = 'Check the repository: re-hash every blob and check every reference.';
  static override description = `Exits with code 8 when a blob is corrupt or missing or a manifest does not match its image id.
Unreferenced blobs, scratch files of killed imports, ship builds no publication needs (ship-builds/) and impact index rows that outlived their images are not errors: aim repo gc removes them.
Images removed with aim image rm --force that a channel, PXE assignment or publication still names are listed as dangling.
--repair removes corrupt copies (so that an import of the same content writes them anew), rebuilds damaged manifests from the catalog, restores blobs from the sources given with --source, and lists the images still lacking content with the source each came from.`;
  static override examples = [
    '<%= config.bin %> repo fsck',
    '<%= config.bin %> repo fsck --no-rehash --json',
    '<%= config.bin %> repo fsck --repair --source ./rootfs.tar.zst',
  ];
  static override flags = {
    rehash: Flags.boolean({ description: 're-hash blob contents (off: check sizes and references only)', default: true, allowNo: true }),
    repair: Flags.boolean({ description: 'repair what is found (waits for running imports; excludes them meanwhile)' }),
    source: Flags.string({ description: 'with --repair: a source (any kind aim image import reads) to restore damaged blobs from (repeatable)', multiple: true, default: [] }),
  };

  async run(): Promise<FsckReport> {
    const { flags } = await this.parse(RepoFsck);
    if (flags.source.length > 0 && !flags.repair) throw new ConfigError('--source is used by --repair only', { hint: 'add --repair' });
    const repo = await this.repository(flags.repo);
    const reporter = this.reporter();
    const report = await fsckRepository(repo, reporter, { rehash: flags.rehash });
    for (const p of report.problems) this.logToStderr(`problem: ${p.message}`);
    for (const id of report.danglingImages) this.logToStderr(`dangling: image ${id} was removed but is still named by a channel, PXE assignment or publication (aim channel list, aim pxe list, aim ship list)`);
    const staleRows = Object.entries(report.staleImpactRows).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`);
    this.log(
      `${report.ok ? 'ok' : `${report.problems.length} problem(s)`}: ${report.imagesChecked} images, ${report.blobsChecked} blobs` +
        `${flags.rehash ? ` (${report.bytesHashed} bytes re-hashed)` : ''}; ${report.unreferencedBlobs} unreferenced blobs, ${report.staleScratchDirs} stale scratch dirs, ${report.orphanShipBuilds} orphaned ship builds, ` +
        `${staleRows.length ? `stale impact index rows (${staleRows.join(', ')})` : 'no stale impact index rows'} (aim repo gc removes them)`,
    );
    if (flags.repair && !report.ok) {
      const restore = async () => {
        for (const source of flags.source) await storeSourceBlobs(repo, { source }, reporter);
      };
      report.repair = await repairRepository(repo, report, reporter, { restore: flags.source.length > 0 ? restore : undefined });
      report.ok = report.repair.ok;
      const r = report.repair;
      this.log(`repair: removed ${r.removedCorrupt.length} corrupt blob(s), restored ${r.restored.length}, ${r.unrepaired.length} still missing`);
      for (const a of r.affectedImages) {
        this.log(`  image ${shortId(a.id)}${a.tags.length ? ` (${a.tags.join(', ')})` : ''} from ${a.source}: ${a.blobs} blob(s), used by ${a.paths.slice(0, 3).join(', ')}${a.paths.length > 3 ? ', …' : ''}`);
      }
    }
    if (!report.ok) throw new RepositoryDamagedError(report);
    return report;
  }
}

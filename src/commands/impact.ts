import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { renderImpact } from '../cli/impact-table.js';
import { AimError, ExitCode } from '../lib/errors.js';
import type { ImpactReport } from '../core/lifecycle/impact.js';
import { parseSince, runImpact } from '../core/lifecycle/run-impact.js';

export default class Impact extends AimCommand {
  static override summary = 'Which images an update or advisory affects: present, kept by the slim image, used by its profile.';
  static override description = `The update is a .deb, a folder of .debs, an apt Packages index (plain, .gz, .xz), an OSV advisory
(Debian ecosystem: source packages and version ranges) or PACKAGE=VERSION (src:SOURCE=VERSION for a
source package). For every image one verdict: kept-and-used (a slim image keeps a changed file and
its profile traced it), kept-not-used, not-in-slim (the gold has the package, the slim image keeps
none of the changed files), present (a gold image holds an affected version) or not-affected.
A .deb's files are compared by content with what each image holds; without contents every file of
the package counts as changed. Answered from the catalog's impact index, which import, slim and
profile fill (a repository from an older aim is indexed on first use).
Exits 13 (E_IMPACT_IN_USE, the report as "result" with --json) when an image uses a changed file:
a slim image keeps it and its profile traced it, or a profile recorded on a gold image traced it.`;
  static override examples = [
    '<%= config.bin %> impact ./libssl3_3.0.15-1~deb12u1_amd64.deb',
    '<%= config.bin %> impact ./debs/',
    '<%= config.bin %> impact DSA-5764-1.json --json',
    '<%= config.bin %> impact libssl3=3.0.15-1~deb12u1',
    '<%= config.bin %> impact src:openssl=3.0.15-1~deb12u1',
    '<%= config.bin %> impact --advisories ./osv/ --since 2024-09-01',
  ];
  static override args = { update: Args.string({ description: '.deb, folder of .debs, Packages index, OSV advisory, or PACKAGE=VERSION' }) };
  static override flags = {
    advisories: Flags.string({ description: 'folder of OSV advisories (.json, subfolders included) instead of an UPDATE' }),
    since: Flags.string({ description: 'with --advisories: only advisories modified or published at or after this date (2024-09-01 or RFC 3339)' }),
    limit: Flags.integer({ description: 'paths to print per package (--json has all)', default: 5, min: 0 }),
    all: Flags.boolean({ description: 'list every image not affected too' }),
  };

  async run(): Promise<ImpactReport> {
    const { args, flags } = await this.parse(Impact);
    const since = flags.since === undefined ? undefined : parseSince(flags.since);
    const repo = await this.repository(flags.repo);
    const report = await runImpact(repo, { update: args.update, advisories: flags.advisories, since }, this.reporter());
    if (!this.jsonEnabled()) this.log(renderImpact(report, { limit: flags.limit, all: flags.all }));
    if (report.summary.inUse > 0) {
      throw new AimError('E_IMPACT_IN_USE', `${report.summary.inUse} image(s) use files this update changes`, ExitCode.impactInUse, {
        result: report,
        hint: 'update and re-qualify those images first (the KEPT AND USED group, and gold images whose profile traced a changed file)',
      });
    }
    return report;
  }
}

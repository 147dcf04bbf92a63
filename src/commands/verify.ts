import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { AimError, ExitCode } from '../lib/errors.js';
import { resolveImage } from '../core/query/resolve.js';
import { verifySlim, type VerifyReport } from '../core/slim/verify.js';

export default class Verify extends AimCommand {
  static override summary = "Check that a slim image behaves like its gold image: re-run the profile's probes in both and compare.";
  static override description = `Exits with code 11 when any probe differs (HTTP status or body hash, exit status or output
hash), listing the files the slim run looked for in vain that the gold run found. Needs root.`;
  static override examples = ['<%= config.bin %> verify slim/nginx:1 --against gold/nginx:1 --profile web', '<%= config.bin %> verify slim/nginx:1 --against gold/nginx:1 --profile web --json'];
  static override args = { slim: Args.string({ description: 'slim image', required: true }) };
  static override flags = {
    against: Flags.string({ description: 'the gold image', required: true }),
    profile: Flags.string({ description: 'profile whose workload and probes to replay', required: true }),
  };

  async run(): Promise<VerifyReport> {
    const { args, flags } = await this.parse(Verify);
    const repo = await this.repository(flags.repo);
    const report = await verifySlim(repo, await resolveImage(repo, args.slim), await resolveImage(repo, flags.against), flags.profile, this.reporter());
    for (const p of report.probes) this.log(`${p.same ? 'same' : 'DIFFERENT'}  ${p.probe}  gold ${JSON.stringify(p.gold)}  slim ${JSON.stringify(p.slim)}`);
    for (const m of report.missing) this.log(`missing in slim: ${m.path} (${m.syscalls.join(',')}: ${m.errors.join(',')})`);
    if (!report.ok) {
      if (this.jsonEnabled()) this.logJson(report);
      throw new AimError('E_VERIFY_FAILED', `${report.probes.filter((p) => !p.same).length} probe(s) differ between slim and gold`, ExitCode.verifyFailed, {
        hint: report.missing.length ? 'keep the missing paths with aim slim --keep GLOB, or profile more of the workload' : 'profile more of the workload',
      });
    }
    this.log('verified: every probe gives the same result in the slim image');
    return report;
  }
}

import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { AimError, ConfigError, ExitCode } from '../lib/errors.js';
import { resolveImage } from '../core/query/resolve.js';
import { verifySlim, type VerifyReport } from '../core/slim/verify.js';
import { loadTemplate, requireSetting, resolveSettings } from '../core/template/index.js';

export default class Verify extends AimCommand {
  static override summary = "Check that a slim image behaves like its gold image: re-run the profile's probes in both and compare.";
  static override description = `Exits with code 11 when any probe differs (HTTP status or body hash, exit status or output
hash), listing the files the slim run looked for in vain that the gold run found. Needs root.
With --template, the slim image defaults to the template's first slim tag, --against to its
gold.tag and --profile to its name.`;
  static override examples = [
    '<%= config.bin %> verify slim/nginx:1 --against gold/nginx:1 --profile web',
    '<%= config.bin %> verify slim/nginx:1 --against gold/nginx:1 --profile web --probe-timeout 30s --json',
    '<%= config.bin %> verify --template examples/redis/template.yaml',
  ];
  static override args = { slim: Args.string({ description: 'slim image [default: the template’s first slim tag]' }) };
  static override flags = {
    template: Flags.string({ description: 'image template (YAML) naming the images and the profile' }),
    against: Flags.string({ description: 'the gold image [default: $AIM_GOLD, else the template’s gold.tag]' }),
    profile: Flags.string({ description: 'profile whose workload and probes to replay [default: $AIM_PROFILE, else the template’s name]' }),
    'probe-timeout': Flags.string({ description: 'how long one probe may take [default: as profiled, else 10s]' }),
  };

  async run(): Promise<VerifyReport> {
    const { args, flags } = await this.parse(Verify);
    const template = flags.template ? await loadTemplate(flags.template) : undefined;
    const s = resolveSettings({ gold: flags.against, profile: flags.profile, probeTimeout: flags['probe-timeout'] }, process.env, template);
    const slim = args.slim ?? template?.template.slim?.tags[0];
    if (slim === undefined) throw new ConfigError('no slim image: give a SLIM argument, or use a --template with slim.tags');
    const gold = requireSetting(s.gold, 'gold image', '--against', 'AIM_GOLD', 'gold.tag');
    const profile = requireSetting(s.profile, 'profile', '--profile', 'AIM_PROFILE', 'name');
    const explicitTimeout = flags['probe-timeout'] !== undefined || process.env.AIM_PROBE_TIMEOUT || template?.template.profile?.['probe-timeout'];
    const repo = await this.repository(flags.repo);
    const report = await verifySlim(repo, await resolveImage(repo, slim), await resolveImage(repo, gold), profile, this.reporter(), {
      probeTimeoutMs: explicitTimeout ? s.probeTimeoutMs : undefined,
    });
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

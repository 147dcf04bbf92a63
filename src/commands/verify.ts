import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { ConfigError } from '../lib/errors.js';
import { resolveImage } from '../core/query/resolve.js';
import { DEFAULT_REPEAT, slimOrigin, verifyFailure, verifySlim, type VerifyReport } from '../core/slim/verify.js';
import { loadTemplate, requireSetting, resolveSettings } from '../core/template/index.js';

export default class Verify extends AimCommand {
  static override summary = "Check that a slim image behaves like its gold image: re-run the profile's probes in both and compare.";
  static override description = `Runs the profile's workload in the gold and in the slim image, with the same readiness rules as
aim profile run, and each probe --repeat times in each. Verdict per probe: "same" (gold answered
the same every time, slim exactly that every time), "different" (slim answered otherwise, or
missed an expectation gold always met) or "flaky" (gold itself answered differently from one try
to the next, so the comparison proves nothing). Exits 11 with E_VERIFY_FAILED when a probe is
different, listing the files the slim run looked for in vain that the gold run found; with
E_VERIFY_FLAKY when a probe is flaky (with --allow-flaky a flaky probe only has to meet its
expectation in slim every time); with E_PROBE_FAILED when a probe never meets its expectation in
gold. The gold image and the profile default to those the slim image was made from. Needs root.`;
  static override examples = [
    '<%= config.bin %> verify slim/nginx:1',
    '<%= config.bin %> verify slim/nginx:1 --against gold/nginx:1 --profile web --repeat 5 --json',
    '<%= config.bin %> verify --template examples/redis/template.yaml',
  ];
  static override args = { slim: Args.string({ description: 'slim image [default: the template’s first slim tag]' }) };
  static override flags = {
    template: Flags.string({ description: 'image template (YAML) naming the slim image' }),
    against: Flags.string({ description: 'the gold image [default: $AIM_GOLD, else the one the slim image was made from, else the template’s gold.tag]' }),
    profile: Flags.string({ description: 'profile whose workload and probes to replay [default: $AIM_PROFILE, else the one the slim image was made with, else the template’s name]' }),
    repeat: Flags.integer({ description: 'rounds of probes in each image', default: DEFAULT_REPEAT, min: 1, max: 100 }),
    'allow-flaky': Flags.boolean({ description: 'a probe that varies in gold passes when slim meets its expectation every time' }),
    'ready-timeout': Flags.string({ description: 'how long after its start the workload may take to be ready [default: as profiled, else 60s]' }),
    'probe-timeout': Flags.string({ description: 'how long one probe try may take [default: as profiled, else 10s]' }),
  };

  async run(): Promise<VerifyReport> {
    const { args, flags } = await this.parse(Verify);
    const template = flags.template ? await loadTemplate(flags.template) : undefined;
    const slim = args.slim ?? template?.template.slim?.tags[0];
    if (slim === undefined) throw new ConfigError('no slim image: give a SLIM argument, or use a --template with slim.tags');
    const repo = await this.repository(flags.repo);
    const slimId = await resolveImage(repo, slim);
    const timeouts = { probeTimeout: flags['probe-timeout'], readyTimeout: flags['ready-timeout'] };
    const s = resolveSettings({ gold: flags.against, profile: flags.profile, ...timeouts }, process.env, template, await slimOrigin(repo, slimId));
    const gold = requireSetting(s.gold, 'gold image', '--against', 'AIM_GOLD', 'gold.tag');
    const profile = requireSetting(s.profile, 'profile', '--profile', 'AIM_PROFILE', 'name');
    // timeouts given anywhere override the profiled ones; the defaults do not
    const given = (flag: string | undefined, env: string, key: 'probe-timeout' | 'ready-timeout') => flag !== undefined || !!process.env[env] || template?.template.profile?.[key] !== undefined;
    const report = await verifySlim(
      repo,
      {
        slimId,
        goldId: await resolveImage(repo, gold),
        profile,
        repeat: flags.repeat,
        allowFlaky: flags['allow-flaky'],
        probeTimeoutMs: given(flags['probe-timeout'], 'AIM_PROBE_TIMEOUT', 'probe-timeout') ? s.probeTimeoutMs : undefined,
        readyTimeoutMs: given(flags['ready-timeout'], 'AIM_READY_TIMEOUT', 'ready-timeout') ? s.readyTimeoutMs : undefined,
      },
      this.reporter(),
    );
    for (const p of report.probes) this.log(`${p.verdict === 'same' ? 'same     ' : p.verdict.toUpperCase().padEnd(9)}  ${p.probe} (${p.expectation}): ${p.why}`);
    for (const m of report.missing) this.log(`missing in slim: ${m.path} (${m.syscalls.join(',')}: ${m.errors.join(',')})`);
    const failure = verifyFailure(report, flags['allow-flaky']);
    if (failure) throw failure;
    const flaky = report.probes.filter((p) => p.verdict === 'flaky').length;
    this.log(
      flaky > 0
        ? `verified on expectations only for ${flaky} flaky probe(s) (--allow-flaky); every other probe gives the same result in the slim image, ${report.repeat} times`
        : `verified: every probe gives the same result in the slim image, ${report.repeat} times`,
    );
    return report;
  }
}

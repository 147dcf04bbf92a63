import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { rolloutText } from '../cli/channel-output.js';
import { qualifyFlags, qualifySettings } from '../cli/qualify-flags.js';
import { runRollout, type RolloutReport } from '../core/lifecycle/rollout.js';
import { isAimError } from '../lib/errors.js';
import { planQualification, prepareQualification } from '../run/qualify.js';

export default class Rollout extends AimCommand {
  static override summary = 'Update an image, qualify the new version and keep it in a channel, or roll the channel back by itself.';
  static override description = `Runs aim update on NAME with --with, builds the new version's artifact, promotes it into the
channel (--to, default: the one channel holding a version of NAME) as a candidate, then qualifies
it as aim qualify does (boot in QEMU, the profile's probes with their expectations), as the channel
ships it: a PXE boot when a PXE assignment follows the channel, else a raw disk (or --format). While the
candidate is qualified the channel serves it: the PXE assignments that follow the channel and its
AMI pointers move with it, so what is qualified is what the channel's providers serve.
Passed: the candidate stays ("qualified" in the channel history). Failed, or stopped for any
reason (a tool failed, Ctrl-C): the channel, its PXE assignments and AMI pointers roll back to the
last good version by themselves, the history records why (the failed probe, its last answer), and
the command exits 11 (E_ROLLED_BACK, the report as "result" with --json; 130 after Ctrl-C). A
candidate whose artifact cannot be built is rejected before the channel moves (E_ROLLOUT_REJECTED).
A killed rollout leaves the channel "interrupted": roll it back or promote by hand.
Needs root (the update's sandbox, qualification).`;
  static override examples = [
    '<%= config.bin %> rollout gold/redis:1 --with ./redis-server_7.0.15-1~deb12u2_amd64.deb --to prod',
    '<%= config.bin %> rollout slim/nginx:3 --with ./debs/ --ready-timeout 90s --json',
    '<%= config.bin %> rollout gold/app:2 --with /srv/mirror/dists/bookworm-security/main/binary-amd64/Packages.xz --to qual --accept-scripts',
  ];
  static override args = { name: Args.string({ description: 'image to update (gold or slim, name:tag or id)', required: true }) };
  static override flags = {
    with: Flags.string({ char: 'w', description: '.deb, folder of .debs, or Packages index (repeatable)', multiple: true, required: true }),
    to: Flags.string({ description: 'channel to roll out to [default: the one channel holding a version of NAME]' }),
    'accept-scripts': Flags.boolean({ description: 'run the maintainer scripts through dpkg in the sandbox and keep what they change' }),
    reprofile: Flags.boolean({ description: 'trace the profiles\' workloads again on the new gold before slimming' }),
    out: Flags.string({ char: 'o', description: 'also build the new version\'s artifacts (those built of the previous version) into this directory' }),
    ...qualifyFlags,
  };

  async run(): Promise<RolloutReport> {
    const { args, flags } = await this.parse(Rollout);
    const repo = await this.repository(flags.repo);
    const signal = this.abortSignal();
    const reporter = this.reporter();
    const settings = qualifySettings(flags);
    const report = await runRollout(
      repo,
      {
        name: args.name,
        with: flags.with,
        ...(flags.to === undefined ? {} : { channel: flags.to }),
        acceptScripts: flags['accept-scripts'],
        reprofile: flags.reprofile,
        ...(flags.out === undefined ? {} : { out: flags.out }),
        signal,
      },
      {
        async prepareQualification(image, s) {
          const plan = await planQualification(repo, { image: image.ref, ports: settings.ports, ...(settings.profile === undefined ? {} : { profile: settings.profile }) });
          return prepareQualification(repo, plan, { image: image.ref, channel: image.channel, ...settings, ...(s ? { signal: s } : {}) }, reporter);
        },
      },
      reporter,
    ).catch((e: unknown) => {
      // the report on stdout, then the error and its hint on stderr
      const result = isAimError(e) ? (e.result as RolloutReport | undefined) : undefined;
      if (result?.outcome && !this.jsonEnabled()) this.log(rolloutText(result));
      throw e;
    });
    this.log(rolloutText(report));
    return report;
  }
}

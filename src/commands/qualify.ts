import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { qualificationText } from '../cli/channel-output.js';
import type { QualificationRecord } from '../core/model/channel.js';
import { qualifyFlags, qualifySettings } from '../cli/qualify-flags.js';
import { QualificationFailedError, qualifyImage } from '../run/qualify.js';

export default class Qualify extends AimCommand {
  static override summary = 'Boot an image\'s artifact in QEMU and run its profile\'s probes with their expectations; record the result and timings.';
  static override description = `Builds the artifact the channel ships into scratch space, boots it under QEMU and runs
every probe of the profile (the one the slim image was made with, or --profile) as the profile
ran them: exec probes inside the image's own tree (its own redis-cli), HTTP probes by URL, each
reaching the guest's service on 127.0.0.1 of a private network namespace where QEMU forwards the
ports the profile saw the workload listen on (and --port). Each probe is tried (100 ms doubling to
1 s) until it meets its expectation, within --ready-timeout of QEMU's start; the profile's
ready-log line is awaited on the guest console first. A service that exits more than
--max-restarts times (aim's init restarts it) fails at once. The result (passed or failed, the
probes, build and ready times) is recorded in the catalog: aim channel list shows each channel's,
aim channel rollback never returns to an image whose latest qualification failed, and
aim channel promote --qualified requires a pass. Exits 11 (E_QUALIFY_FAILED, the record as
"result" with --json) when the image fails. The artifact: --format, else a PXE boot when a PXE assignment follows the channel (--channel, else
the channels that hold the image), built with that assignment's platform, modules, entrypoint and
kernel as aim pxe serve would boot it; else a raw disk. The record says how it was chosen.
Needs root (namespaces, chroot, building disks).`;
  static override examples = [
    '<%= config.bin %> qualify slim/redis:1',
    '<%= config.bin %> qualify slim/nginx:2 --ready-timeout 90s --json',
    '<%= config.bin %> qualify gold/app:3 --profile app --port 8080 --format pxe --firmware bios --memory 256',
  ];
  static override args = { image: Args.string({ description: 'image to qualify (name:tag or id)', required: true }) };
  static override flags = {
    ...qualifyFlags,
    channel: Flags.string({ description: 'qualify the image as this channel ships it [default: the channels that hold it]' }),
  };

  async run(): Promise<QualificationRecord> {
    const { args, flags } = await this.parse(Qualify);
    const repo = await this.repository(flags.repo);
    const record = await qualifyImage(
      repo,
      { image: args.image, ...qualifySettings(flags), ...(flags.channel === undefined ? {} : { channel: flags.channel }), signal: this.abortSignal() },
      this.reporter(),
    ).catch((e: unknown) => {
      // the probes and timings on stdout, then the error and its hint on stderr
      if (e instanceof QualificationFailedError && !this.jsonEnabled()) this.log(qualificationText(e.record));
      throw e;
    });
    this.log(qualificationText(record));
    return record;
  }
}

import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { qualificationText } from '../cli/channel-output.js';
import type { QualificationRecord } from '../core/model/channel.js';
import { parseDuration } from '../core/profile/profile-run.js';
import { QUALIFY_FORMATS, QualificationFailedError, qualifyImage, type QualifyFormat } from '../run/qualify.js';

export default class Qualify extends AimCommand {
  static override summary = 'Boot an image\'s artifact in QEMU and run its profile\'s probes with their expectations; record the result and timings.';
  static override description = `Builds the artifact (--format, raw by default) into scratch space, boots it under QEMU and runs
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
"result" with --json) when the image fails. Needs root (namespaces, chroot, building disks).`;
  static override examples = [
    '<%= config.bin %> qualify slim/redis:1',
    '<%= config.bin %> qualify slim/nginx:2 --ready-timeout 90s --json',
    '<%= config.bin %> qualify gold/app:3 --profile app --port 8080 --format pxe --firmware bios --memory 256',
  ];
  static override args = { image: Args.string({ description: 'image to qualify (name:tag or id)', required: true }) };
  static override flags = {
    profile: Flags.string({ description: 'profile whose probes to run [default: the one the slim image was made with]' }),
    format: Flags.string({ description: 'artifact to build and boot', options: [...QUALIFY_FORMATS], default: 'raw' }),
    firmware: Flags.string({ description: 'UEFI (OVMF) or legacy BIOS (SeaBIOS)', options: ['uefi', 'bios'], default: 'uefi' }),
    kernel: Flags.string({ description: 'kernel core image [default: the image\'s own, else the newest core/kernel:*]' }),
    memory: Flags.integer({ char: 'm', description: 'guest memory, MiB', default: 512, min: 64 }),
    'ready-timeout': Flags.string({ description: 'from QEMU\'s start until every probe must have met its expectation', default: '120s' }),
    port: Flags.integer({ description: 'guest TCP port to forward to the probes beyond those the profile names (repeatable)', multiple: true, default: [] }),
    'max-restarts': Flags.integer({ description: 'service exits tolerated before the qualification fails at once', default: 2, min: 0 }),
    accel: Flags.string({ description: 'QEMU accelerator [default: $AIM_QEMU_ACCEL, else tcg]', options: ['tcg', 'kvm'] }),
    'tb-size': Flags.integer({ description: 'TCG translation cache, MiB', default: 256, min: 8 }),
  };

  async run(): Promise<QualificationRecord> {
    const { args, flags } = await this.parse(Qualify);
    const repo = await this.repository(flags.repo);
    const record = await qualifyImage(
      repo,
      {
        image: args.image,
        ...(flags.profile === undefined ? {} : { profile: flags.profile }),
        format: flags.format as QualifyFormat,
        firmware: flags.firmware as 'uefi' | 'bios',
        ...(flags.kernel === undefined ? {} : { kernel: flags.kernel }),
        memoryMiB: flags.memory,
        readyTimeoutMs: parseDuration(flags['ready-timeout']),
        ports: flags.port,
        maxRestarts: flags['max-restarts'],
        accel: (flags.accel ?? (process.env.AIM_QEMU_ACCEL === 'kvm' ? 'kvm' : 'tcg')) as 'tcg' | 'kvm',
        tbSizeMiB: flags['tb-size'],
        signal: this.abortSignal(),
      },
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

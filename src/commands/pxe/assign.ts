import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { assignmentsTable } from '../../cli/pxe-output.js';
import { PLATFORMS, type Platform } from '../../core/bootable/platforms.js';
import type { PxeAssignment } from '../../core/model/pxe.js';
import { assignImage } from '../../core/pxe/assignments.js';

export default class PxeAssign extends AimCommand {
  static override summary = 'Assign an image to machines that boot from aim pxe serve: by MAC, SMBIOS UUID, label or default.';
  static override description = `The machines are a MAC address, an SMBIOS UUID, label=value (a parameter of the machine's boot
request: buildarch=x86_64, platform=efi or pcbios, or one a site adds to its iPXE script, such
as rack=r12) or default (every machine no other assignment matches). A machine boots its MAC's
assignment, else its UUID's, else a label's, else the default; a machine with none is told so
on its console and asks again every 30 s. One assignment per selector: assigning again replaces it.
The boot is planned now as aim build --format pxe plans it, so an image that cannot boot is
refused here; the image and its kernel (--kernel, else the image's own, else the newest kernel
core) are pinned by id: retagging later changes nothing until you assign again. A running
aim pxe serve picks the change up within a second, without a restart.
--kernel-args are added to aim's kernel command line (iPXE settings such as \${net0/ip} are
expanded by iPXE). --channel records the channel the assignment follows.`;
  static override examples = [
    '<%= config.bin %> pxe assign 52:54:00:12:34:56 slim/redis:1',
    '<%= config.bin %> pxe assign default slim/nginx:1 --channel prod',
    '<%= config.bin %> pxe assign platform=efi slim/nginx:1 --kernel core/kernel:bookworm --kernel-args "loglevel=4"',
    '<%= config.bin %> pxe assign 4c4c4544-0042-3510-8052-b4c04f4e4b32 slim/app:2 --platform vmware --json',
  ];
  static override args = {
    machines: Args.string({ description: 'a MAC, an SMBIOS UUID, label=value, or default', required: true }),
    image: Args.string({ description: 'image to boot (name:tag or id)', required: true }),
  };
  static override flags = {
    'kernel-args': Flags.string({ description: 'extra kernel command line arguments', default: '' }),
    channel: Flags.string({ description: 'the channel this assignment follows (e.g. prod)' }),
    kernel: Flags.string({ description: 'kernel core image to boot [default: the image\'s own, else the newest core/kernel:*]' }),
    entrypoint: Flags.string({ description: 'command the booted image starts as its service (run with sh -c) [default: the one the image records]' }),
    platform: Flags.string({ description: 'platform whose drivers the initramfs carries', options: [...PLATFORMS], default: 'qemu' }),
    module: Flags.string({ description: 'extra kernel module for the initramfs, e.g. the machines\' NIC driver (repeatable)', multiple: true, default: [] }),
  };

  async run(): Promise<{ assignment: PxeAssignment; previous?: PxeAssignment }> {
    const { args, flags } = await this.parse(PxeAssign);
    const repo = await this.repository(flags.repo);
    const result = await assignImage(
      repo,
      {
        selector: args.machines,
        image: args.image,
        platform: flags.platform as Platform,
        modules: flags.module,
        kernelArgs: flags['kernel-args'],
        ...(flags.kernel === undefined ? {} : { kernel: flags.kernel }),
        ...(flags.entrypoint === undefined ? {} : { entrypoint: flags.entrypoint }),
        ...(flags.channel === undefined ? {} : { channel: flags.channel }),
      },
      this.reporter(),
    );
    this.log(assignmentsTable([result.assignment]));
    if (result.previous) this.log(`(replaces ${result.previous.imageRef} (${result.previous.imageId.slice(0, 12)}))`);
    return result;
  }
}

import { Flags } from '@oclif/core';
import { parseDuration } from '../core/profile/profile-run.js';
import { QUALIFY_FORMATS, type QualifyFormat, type QualifyRequest } from '../run/qualify.js';

/** How an image is qualified: the flags aim qualify and aim rollout share. */
export const qualifyFlags = {
  profile: Flags.string({ description: 'profile whose probes to run [default: the one the slim image was made with]' }),
  format: Flags.string({ description: 'artifact to build and boot [default: pxe when a PXE assignment follows the channel, else raw]', options: [...QUALIFY_FORMATS] }),
  firmware: Flags.string({ description: 'UEFI (OVMF) or legacy BIOS (SeaBIOS)', options: ['uefi', 'bios'], default: 'uefi' }),
  kernel: Flags.string({ description: 'kernel core image [default: the image\'s own, else the newest core/kernel:*]' }),
  memory: Flags.integer({ char: 'm', description: 'guest memory, MiB', default: 512, min: 64 }),
  'ready-timeout': Flags.string({ description: 'from QEMU\'s start until every probe must have met its expectation', default: '120s' }),
  port: Flags.integer({ description: 'guest TCP port to forward to the probes beyond those the profile names (repeatable)', multiple: true, default: [] }),
  'max-restarts': Flags.integer({ description: 'service exits tolerated before the qualification fails at once', default: 2, min: 0 }),
  accel: Flags.string({ description: 'QEMU accelerator [default: $AIM_QEMU_ACCEL, else tcg]', options: ['tcg', 'kvm'] }),
  'tb-size': Flags.integer({ description: 'TCG translation cache, MiB', default: 256, min: 8 }),
};

type Parsed = { [K in keyof typeof qualifyFlags]: K extends 'port' ? number[] : K extends 'memory' | 'max-restarts' | 'tb-size' ? number : K extends 'profile' | 'kernel' | 'accel' | 'format' ? string | undefined : string };

/** The qualification settings of parsed flags (the image and signal are the caller's). */
export function qualifySettings(flags: Parsed): Omit<QualifyRequest, 'image' | 'signal'> {
  return {
    ...(flags.profile === undefined ? {} : { profile: flags.profile }),
    ...(flags.format === undefined ? {} : { format: flags.format as QualifyFormat }),
    firmware: flags.firmware as 'uefi' | 'bios',
    ...(flags.kernel === undefined ? {} : { kernel: flags.kernel }),
    memoryMiB: flags.memory,
    readyTimeoutMs: parseDuration(flags['ready-timeout']),
    ports: flags.port,
    maxRestarts: flags['max-restarts'],
    accel: (flags.accel ?? (process.env.AIM_QEMU_ACCEL === 'kvm' ? 'kvm' : 'tcg')) as 'tcg' | 'kvm',
    tbSizeMiB: flags['tb-size'],
  };
}

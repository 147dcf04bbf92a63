import type { BuildFormat, FormatBuilder } from './types.js';

/**
 * Output format → builder, loaded lazily so `aim build --format tar` never loads the disk code.
 * Formats not yet built in are absent: `buildImage` reports them as not implemented.
 */
export const FORMAT_BUILDERS: Partial<Record<BuildFormat, () => Promise<FormatBuilder>>> = {
  tar: async () => (await import('./tar.js')).buildTar,
  oci: async () => (await import('./oci.js')).buildOci,
  raw: async () => (await import('./raw.js')).buildRaw,
  qcow2: async () => (await import('./disk-formats.js')).buildQcow2,
  vmdk: async () => (await import('./disk-formats.js')).buildVmdk,
  ova: async () => (await import('./ova.js')).buildOva,
  pxe: async () => (await import('./pxe.js')).buildPxe,
};

/**
 * Moved to core/bootable/kernel-choice.ts. Kept only for src/core/ship/ship-image.ts, which is
 * being reworked separately: remove once it imports the bootable module.
 */
export type { KernelChoice } from '../bootable/kernel-choice.js';

import { readFileSync } from 'node:fs';

/** Linux capability numbers aim checks before work that needs them. */
export const CAP = { CHOWN: 0, DAC_OVERRIDE: 1, DAC_READ_SEARCH: 2, FOWNER: 3, SYS_CHROOT: 18, SYS_ADMIN: 21, MKNOD: 27 } as const;

/**
 * The process's effective capabilities. Root without capabilities (a container, setpriv) cannot
 * create devices or chown, so aim asks for what it needs instead of testing uid 0.
 */
export function effectiveCapabilities(): bigint {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return BigInt(`0x${m[1]}`);
  } catch {
    // no /proc: fall back to the uid
  }
  return process.getuid?.() === 0 ? (1n << 41n) - 1n : 0n;
}

export function hasCapability(cap: number): boolean {
  return (effectiveCapabilities() & (1n << BigInt(cap))) !== 0n;
}

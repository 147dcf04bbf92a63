import { statfsSync } from 'node:fs';
import { AimError, ConfigError, ExitCode } from '../../lib/errors.js';

const MiB = 1 << 20;

function human(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : `${(n / MiB).toFixed(1)} MiB`;
}

/** "123", "64K", "512M", "2G", "1.5GiB", "1T" → bytes (binary units). */
export function parseByteSize(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:i?B)?|B)?$/i.exec(text.trim());
  if (!m) throw new ConfigError(`${flag} ${text}: expected bytes or a size such as 512M or 2G`);
  const exp = { K: 1, M: 2, G: 3, T: 4 }[(m[2] ?? '').toUpperCase() as 'K'] ?? 0;
  const bytes = Math.floor(Number(m[1]) * 1024 ** exp);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new ConfigError(`${flag} ${text}: must be a positive size`);
  return bytes;
}

export interface SpaceGuardOptions {
  /** A user's limit on the bytes this write adds to the object store (--max-size). */
  maxBytes?: number;
  /** Free space always left on the filesystem; default 1% of it, between 4 MiB and 256 MiB. */
  marginBytes?: number;
}

/** What a worker thread needs to charge the same guard: its byte count lives in shared memory. */
export interface SharedGuardState {
  dir: string;
  options: SpaceGuardOptions;
  stored: SharedArrayBuffer;
}

/**
 * Stops a write into the repository before its filesystem runs out, and at a user's limit. The
 * blob store charges every byte before it writes it; content already stored costs nothing. Free
 * space is read with statfs at the start and then whenever an eighth of what was left above the
 * margin has been written, so the margin is never eaten into by more than one check's worth,
 * and a nearly full disk is checked ever more often.
 *
 * Blob writer threads charge the same guard (share() → SpaceGuard.attach()): the bytes stored
 * are one count in shared memory, so --max-size holds for all of them together, and each thread
 * reads free space on its own schedule. With k threads at most k eighths of the room above the
 * margin are written between two checks, which still leaves the margin whole for k < 8.
 */
export class SpaceGuard {
  private readonly total: BigInt64Array;
  private sinceCheck = 0;
  private interval = 0;

  constructor(
    private readonly dir: string,
    private readonly options: SpaceGuardOptions = {},
    shared: SharedArrayBuffer = new SharedArrayBuffer(8),
  ) {
    this.total = new BigInt64Array(shared);
  }

  /** The same guard in another thread. */
  static attach(state: SharedGuardState): SpaceGuard {
    return new SpaceGuard(state.dir, state.options, state.stored);
  }

  share(): SharedGuardState {
    return { dir: this.dir, options: this.options, stored: this.total.buffer as SharedArrayBuffer };
  }

  /** Bytes this write added to the store so far (by every thread charging this guard). */
  get stored(): number {
    return Number(Atomics.load(this.total, 0));
  }

  /** Before `n` more bytes go into the store. Throws E_MAX_SIZE or E_NO_SPACE instead. */
  charge(n: number): void {
    const max = this.options.maxBytes;
    const before = Number(Atomics.add(this.total, 0, BigInt(n)));
    if (max !== undefined && before + n > max) {
      Atomics.sub(this.total, 0, BigInt(n));
      throw new AimError('E_MAX_SIZE', `the import would store more than --max-size ${human(max)} of new content in the repository`, ExitCode.badInput, {
        hint: 'raise --max-size if the source is meant to be this large; content already in the repository does not count',
      });
    }
    this.sinceCheck += n;
    if (this.sinceCheck >= this.interval) {
      try {
        this.require(n, before);
      } catch (e) {
        Atomics.sub(this.total, 0, BigInt(n));
        throw e;
      }
    }
  }

  /** Bytes charged that were not kept after all (the content turned out to be stored already). */
  refund(n: number): void {
    Atomics.sub(this.total, 0, BigInt(n));
  }

  /** Checks now that `n` more bytes fit above the margin (also for writes outside the store, such as the catalog's). */
  require(n: number, stored = this.stored): void {
    const fs = statfsSync(this.dir);
    const free = fs.bavail * fs.bsize;
    const margin = this.options.marginBytes ?? Math.min(256 * MiB, Math.max(4 * MiB, Math.floor((fs.blocks * fs.bsize) / 100)));
    if (free - n < margin) {
      throw new AimError(
        'E_NO_SPACE',
        `not enough free space for the import in ${this.dir}: its filesystem has ${human(free)} free, the import has stored ${human(stored)} so far and needs ${human(n)} more, and aim keeps ${human(margin)} free`,
        ExitCode.system,
        { hint: `free space on the filesystem holding ${this.dir}, or use a repository elsewhere (--repo); the repository was left as it was` },
      );
    }
    this.sinceCheck = 0;
    this.interval = Math.max(64 * 1024, Math.min(64 * MiB, Math.floor((free - n - margin) / 8)));
  }
}

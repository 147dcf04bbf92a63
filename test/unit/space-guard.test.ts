import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { parseByteSize, SpaceGuard } from '../../src/core/repository/space-guard.js';

describe('parseByteSize', () => {
  it('reads bytes and binary units', () => {
    expect(parseByteSize('123', '--max-size')).toBe(123);
    expect(parseByteSize('64K', '--max-size')).toBe(64 * 1024);
    expect(parseByteSize('512M', '--max-size')).toBe(512 * 1024 ** 2);
    expect(parseByteSize('1.5GiB', '--max-size')).toBe(1.5 * 1024 ** 3);
    expect(parseByteSize('2 g', '--max-size')).toBe(2 * 1024 ** 3);
    expect(parseByteSize('1T', '--max-size')).toBe(1024 ** 4);
  });
  for (const bad of ['', 'lots', '-1', '0', '1X', '1e9', '99999999999T']) {
    it(`refuses "${bad}"`, () => expect(() => parseByteSize(bad, '--max-size')).toThrow(/--max-size/));
  }
});

describe('SpaceGuard', () => {
  it('counts what is kept against the user limit', () => {
    const g = new SpaceGuard(tmpdir(), { maxBytes: 100, marginBytes: 0 });
    g.charge(60);
    g.refund(60); // already stored after all
    g.charge(100);
    expect(g.stored).toBe(100);
    expect(() => g.charge(1)).toThrow(expect.objectContaining({ code: 'E_MAX_SIZE', exitCode: 4 }));
  });

  it('refuses a write that would eat into the margin, saying how much is free and where', () => {
    const fs = statfsSync(tmpdir());
    const free = fs.bavail * fs.bsize;
    // 1 TiB above what is free now: other tests free space meanwhile (free + 1 byte failed once that way)
    const beyond = free + 2 ** 40;
    const g = new SpaceGuard(tmpdir(), { marginBytes: beyond });
    expect(() => g.charge(1)).toThrow(expect.objectContaining({ code: 'E_NO_SPACE', exitCode: 12, message: expect.stringContaining(tmpdir()) }));
    const roomy = new SpaceGuard(tmpdir(), { marginBytes: 0 });
    expect(() => roomy.charge(1)).not.toThrow();
    expect(() => roomy.require(beyond)).toThrow(expect.objectContaining({ code: 'E_NO_SPACE' }));
  });
});

import { describe, expect, it } from 'vitest';
import { comparePaths, decodePath, encodePath } from '../../src/lib/path-codec.js';

describe('path codec', () => {
  it('keeps valid UTF-8 readable', () => {
    expect(encodePath(Buffer.from('usr/share/zoneinfo/América'))).toBe('usr/share/zoneinfo/América');
  });
  it('escapes invalid bytes and % and round-trips them', () => {
    const raw = Buffer.from([0x61, 0xff, 0x25, 0x62, 0xc3]);
    const s = encodePath(raw);
    expect(s).toBe('a%FF%25b%C3');
    expect(decodePath(s).equals(raw)).toBe(true);
  });
  it('round-trips every single byte value', () => {
    for (let b = 1; b < 256; b++) {
      const raw = Buffer.from([0x78, b, 0x79]);
      expect(decodePath(encodePath(raw)).equals(raw)).toBe(true);
    }
  });
  it('rejects overlong encodings and surrogates as invalid UTF-8', () => {
    expect(encodePath(Buffer.from([0xc0, 0xaf]))).toBe('%C0%AF');
    expect(encodePath(Buffer.from([0xed, 0xa0, 0x80]))).toBe('%ED%A0%80');
  });
  it('orders paths depth-first, component by component, by bytes', () => {
    const paths = ['/a/b', '/a-b', '/a', '/\u{1F600}', '/\uFFFD', '/a%FF', '/a/b/c', '/a.d/x'];
    expect([...paths].sort(comparePaths)).toEqual(['/a', '/a/b', '/a/b/c', '/a-b', '/a.d/x', '/a%FF', '/\uFFFD', '/\u{1F600}']);
  });
});

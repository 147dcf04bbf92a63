/**
 * File names are bytes, not text. aim keeps every path as a JS string that round-trips to the
 * exact bytes: valid UTF-8 stays readable, and each byte that is not valid UTF-8 (and '%' itself)
 * is written as %XX. `decodePath(encodePath(b))` is always `b`.
 */

function utf8SequenceLength(buf: Uint8Array, i: number): number {
  const b0 = buf[i]!;
  if (b0 < 0x80) return 1;
  let len: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
    min = 0x80;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    min = 0x800;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    min = 0x10000;
  } else return 0;
  if (i + len > buf.length) return 0;
  let cp = b0 & (0xff >> (len + 1));
  for (let k = 1; k < len; k++) {
    const b = buf[i + k]!;
    if ((b & 0xc0) !== 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

function hex(b: number): string {
  return '%' + b.toString(16).toUpperCase().padStart(2, '0');
}

/** Bytes of a path (or name) to aim's string form. */
export function encodePath(bytes: Uint8Array): string {
  let out = '';
  let start = 0;
  let i = 0;
  const flush = (end: number) => {
    if (end > start) out += Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('utf8');
  };
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b === 0x25) {
      flush(i);
      out += '%25';
      i += 1;
      start = i;
      continue;
    }
    const len = utf8SequenceLength(bytes, i);
    if (len === 0) {
      flush(i);
      out += hex(b);
      i += 1;
      start = i;
    } else i += len;
  }
  flush(i);
  return out;
}

/** aim's string form back to the exact bytes. */
export function decodePath(path: string): Buffer {
  if (!path.includes('%')) return Buffer.from(path, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < path.length; i++) {
    if (path[i] === '%' && i + 2 < path.length + 0 && /^[0-9A-Fa-f]{2}$/.test(path.slice(i + 1, i + 3))) {
      if (i > start) parts.push(Buffer.from(path.slice(start, i), 'utf8'));
      parts.push(Buffer.from([parseInt(path.slice(i + 1, i + 3), 16)]));
      i += 2;
      start = i + 1;
    }
  }
  if (start < path.length) parts.push(Buffer.from(path.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

/**
 * Order of entries in a manifest: component by component, comparing bytes ("/" sorts before
 * every other byte). This is a depth-first order: a directory's whole subtree comes right after
 * it ("/a", "/a/b", "/a-b"), which is what tar extractors need to restore directory times.
 */
export function comparePaths(a: string, b: string): number {
  if (!a.includes('%') && !b.includes('%')) {
    // Fast path on UTF-16 units: equal to UTF-8 byte order below the surrogate range.
    const n = Math.min(a.length, b.length);
    let i = 0;
    while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
    if (i === n) return a.length - b.length;
    const p = a.charCodeAt(i);
    const q = b.charCodeAt(i);
    if (p === 0x2f) return -1;
    if (q === 0x2f) return 1;
    if (p < 0xd800 && q < 0xd800) return p - q;
  }
  return compareBytes(a, b);
}

function compareBytes(a: string, b: string): number {
  const x = a.includes('%') ? decodePath(a) : Buffer.from(a, 'utf8');
  const y = b.includes('%') ? decodePath(b) : Buffer.from(b, 'utf8');
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const p = x[i]!;
    const q = y[i]!;
    if (p === q) continue;
    if (p === 0x2f) return -1;
    if (q === 0x2f) return 1;
    return p - q;
  }
  return x.length - y.length;
}

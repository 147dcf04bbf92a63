/**
 * Conditional and range requests (RFC 9110) over a file of known size and strong ETag: the parts
 * iPXE, curl and download tools use. One range per request; a multi-range request gets the whole
 * file (a server may ignore Range).
 */

export type RangeAnswer =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' }
  | { kind: 'not-modified' };

export interface Conditions {
  range?: string;
  ifRange?: string;
  ifNoneMatch?: string;
}

/** Whether an If-None-Match list names the ETag (weak comparison, as the RFC asks for it). */
function noneMatch(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => bare(t) === etag);
}

/**
 * What to send for a GET or HEAD with these headers: 304 when If-None-Match names the ETag, a
 * single satisfiable range (when If-Range, if any, is the current ETag), 416 for a range wholly
 * past the end, else the whole file.
 */
export function answerRange(c: Conditions, size: number, etag: string): RangeAnswer {
  if (c.ifNoneMatch !== undefined && noneMatch(c.ifNoneMatch, etag)) return { kind: 'not-modified' };
  if (c.range === undefined) return { kind: 'full' };
  // If-Range with a date, or another ETag: the representation may have changed, send it whole
  if (c.ifRange !== undefined && c.ifRange.trim() !== etag) return { kind: 'full' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(c.range.trim());
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'full' };
  if (m[1]!.length > 15 || m[2]!.length > 15) return { kind: 'full' };
  if (m[1] === '') {
    // suffix: the last N bytes
    const n = Number(m[2]);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}

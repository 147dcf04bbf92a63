import { InputError } from '../../lib/errors.js';

/**
 * Debian package versions, compared exactly as dpkg does (lib/dpkg/version.c): `[epoch:]upstream
 * [-revision]`, the epoch compared as a number, then upstream and revision by dpkg's verrevcmp:
 * runs of non-digits compared character by character (letters before other characters, "~"
 * before everything, even the end), runs of digits compared as numbers.
 */

export interface DebianVersion {
  epoch: number;
  upstream: string;
  /** "" when the version has no "-". */
  revision: string;
}

const EPOCH_MAX = 2 ** 31 - 1;

/** Splits a version the way dpkg does; never throws (for versions dpkg already accepted). */
export function splitDebianVersion(text: string): DebianVersion {
  const s = text.trim();
  const colon = s.indexOf(':');
  let epoch = 0;
  let rest = s;
  if (colon !== -1) {
    epoch = Number.parseInt(s.slice(0, colon), 10);
    if (!Number.isFinite(epoch)) epoch = 0;
    rest = s.slice(colon + 1);
  }
  const hyphen = rest.lastIndexOf('-');
  return hyphen === -1 ? { epoch, upstream: rest, revision: '' } : { epoch, upstream: rest.slice(0, hyphen), revision: rest.slice(hyphen + 1) };
}

/**
 * Parses a version given by a user or an input file: what dpkg refuses (empty, blanks, a bad
 * epoch, an empty upstream or revision) and what it only warns about (upstream not starting with
 * a digit, characters outside [A-Za-z0-9.+~-:]) are errors here, naming `what`.
 */
export function parseDebianVersion(text: string, what = 'version'): DebianVersion {
  const bad = (why: string) =>
    new InputError('E_BAD_VERSION', `${what} "${text}" is not a Debian version: ${why}`, {
      hint: 'a Debian version is [epoch:]upstream[-revision], e.g. 3.0.15-1~deb12u1 or 1:2.39.2-1',
    });
  const s = text.trim();
  if (s === '') throw bad('it is empty');
  if (/\s/.test(s)) throw bad('it contains blanks');
  const colon = s.indexOf(':');
  if (colon !== -1) {
    const e = s.slice(0, colon);
    if (e === '') throw bad('the epoch before ":" is empty');
    if (!/^\d+$/.test(e)) throw bad('the epoch is not a number');
    if (Number(e) > EPOCH_MAX) throw bad('the epoch is too big');
  }
  const v = splitDebianVersion(s);
  if (v.upstream === '') throw bad('the upstream version is empty');
  if (s.slice(colon + 1).includes('-') && v.revision === '') throw bad('the revision after "-" is empty');
  if (!/^\d/.test(v.upstream)) throw bad('the upstream version does not start with a digit');
  if (!/^[A-Za-z0-9.+~:-]+$/.test(v.upstream)) throw bad('the upstream version has a character other than letters, digits and .+~-:');
  if (!/^[A-Za-z0-9.+~]*$/.test(v.revision)) throw bad('the revision has a character other than letters, digits and .+~');
  return v;
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/** dpkg's order(): digits 0 (handled apart), letters themselves, "~" before all, others after letters; end 0. */
function order(c: number): number {
  if (c === 0 || isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 0x7e) return -1;
  return c + 256;
}

/** dpkg's verrevcmp over two version parts. Negative, zero or positive. */
export function compareVersionPart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  const ca = (k: number) => (k < a.length ? a.charCodeAt(k) : 0);
  const cb = (k: number) => (k < b.length ? b.charCodeAt(k) : 0);
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(ca(i))) || (j < b.length && !isDigit(cb(j)))) {
      const ac = order(ca(i));
      const bc = order(cb(j));
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (ca(i) === 0x30) i++;
    while (cb(j) === 0x30) j++;
    while (isDigit(ca(i)) && isDigit(cb(j))) {
      if (firstDiff === 0) firstDiff = ca(i) - cb(j);
      i++;
      j++;
    }
    if (isDigit(ca(i))) return 1;
    if (isDigit(cb(j))) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

/** Compares two Debian versions as dpkg --compare-versions: -1, 0 or 1. */
export function compareDebianVersions(a: string | DebianVersion, b: string | DebianVersion): -1 | 0 | 1 {
  const x = typeof a === 'string' ? splitDebianVersion(a) : a;
  const y = typeof b === 'string' ? splitDebianVersion(b) : b;
  const r = x.epoch !== y.epoch ? x.epoch - y.epoch : compareVersionPart(x.upstream, y.upstream) || compareVersionPart(x.revision, y.revision);
  return r < 0 ? -1 : r > 0 ? 1 : 0;
}

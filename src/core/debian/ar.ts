import type { FileHandle } from 'node:fs/promises';
import { InputError } from '../../lib/errors.js';

/**
 * The ar archive format a .deb is wrapped in (deb(5)): the magic "!<arch>\n", then members, each
 * a 60-byte header (name, mtime, uid, gid, mode, size in decimal, "`\n") followed by its data,
 * padded to an even offset. Only the member table is read here; contents are read in place.
 */

export interface ArMember {
  /** Member name without the trailing "/" GNU ar adds. */
  name: string;
  /** Offset of the member's data in the file. */
  offset: number;
  size: number;
}

const MAGIC = '!<arch>\n';
const HEADER = 60;
/** More members than a .deb ever has (debian-binary, control, data and a few "_" extensions). */
const MAX_MEMBERS = 64;

/** Lists the members of an ar archive read through `fh` (the file is `size` bytes long). */
export async function listArMembers(fh: FileHandle, size: number, label: string): Promise<ArMember[]> {
  const truncated = (why: string) => new InputError('E_TRUNCATED', `${label}: ${why}`, { hint: 'the file is damaged or incomplete; download or copy it again' });
  const bad = (why: string) => new InputError('E_BAD_DEB', `${label}: not a Debian package: ${why}`, { hint: 'give a .deb file as built by dpkg-deb' });
  const magic = Buffer.alloc(MAGIC.length);
  const { bytesRead } = await fh.read(magic, 0, magic.length, 0);
  if (bytesRead < MAGIC.length || magic.toString('latin1') !== MAGIC) {
    throw bad(`it does not start with the ar magic "!<arch>" (starts with ${magic.subarray(0, bytesRead).toString('hex') || 'nothing'})`);
  }
  const members: ArMember[] = [];
  let at = MAGIC.length;
  const header = Buffer.alloc(HEADER);
  while (at < size) {
    // GNU ar pads with "\n" to an even offset; a lone padding byte at the very end is not a member
    if (size - at === 1) break;
    if (members.length >= MAX_MEMBERS) throw bad(`more than ${MAX_MEMBERS} ar members`);
    const got = (await fh.read(header, 0, HEADER, at)).bytesRead;
    if (got < HEADER) throw truncated(`the file ends inside the header of ar member ${members.length + 1} (at byte ${at})`);
    if (header[58] !== 0x60 || header[59] !== 0x0a) throw bad(`ar member ${members.length + 1} at byte ${at} has a damaged header`);
    const name = header.subarray(0, 16).toString('latin1').trimEnd().replace(/\/$/, '');
    const sizeField = header.subarray(48, 58).toString('latin1').trim();
    if (!/^\d{1,10}$/.test(sizeField)) throw bad(`ar member "${name}" has an invalid size field "${sizeField}"`);
    const memberSize = Number(sizeField);
    const offset = at + HEADER;
    if (offset + memberSize > size) {
      throw truncated(`ar member "${name}" declares ${memberSize} bytes but only ${size - offset} remain in the file`);
    }
    members.push({ name, offset, size: memberSize });
    at = offset + memberSize + (memberSize % 2);
  }
  return members;
}

import { InputError, ToolFailedError } from '../../lib/errors.js';
import { runTool } from '../../lib/exec.js';

/**
 * Extended attributes through getfattr's dump format (Node has no xattr API). One
 * getfattr run reads a whole tree; names in "# file:" lines are raw bytes with backslash, newline
 * and other control bytes written as octal escapes.
 */
function unescapeName(b: Buffer): Buffer {
  if (!b.includes(0x5c)) return b;
  const out: number[] = [];
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 0x5c && i + 1 < b.length) {
      if (b[i + 1] === 0x5c) {
        out.push(0x5c);
        i += 1;
        continue;
      }
      const oct = b.subarray(i + 1, i + 4).toString('latin1');
      if (/^[0-7]{3}$/.test(oct)) {
        out.push(parseInt(oct, 8));
        i += 3;
        continue;
      }
    }
    out.push(c);
  }
  return Buffer.from(out);
}

function decodeValue(v: string): Buffer {
  if (v.startsWith('0s')) return Buffer.from(v.slice(2), 'base64');
  if (v.startsWith('0x')) return Buffer.from(v.slice(2), 'hex');
  if (v.startsWith('"') && v.endsWith('"')) return Buffer.from(v.slice(1, -1), 'latin1');
  return Buffer.from(v, 'latin1');
}

/** Reads every xattr under `root` (not following symlinks). Keys are absolute host paths as bytes (latin1 strings). */
export async function readTreeXattrs(root: string): Promise<Map<string, Record<string, Buffer>>> {
  const { stdoutBytes: buf } = await runTool('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', '--', root], {
    encoding: 'buffer',
    stripFinalNewline: false,
  }).catch((e: unknown) => {
    // A name listed by getfattr's walk and gone when it asked for its attributes: the tree changes.
    if (e instanceof ToolFailedError && /No such file or directory/.test(e.stderrTail)) {
      throw new InputError('E_SOURCE_CHANGED', `${root} changed during import (a file vanished while its extended attributes were read)`, {
        hint: 'import a tree that nothing changes meanwhile (a snapshot or a stopped system)',
        cause: e,
      });
    }
    throw new InputError('E_XATTR_READ', `cannot read extended attributes under ${root}: ${(e as Error).message}`, { cause: e });
  });
  const out = new Map<string, Record<string, Buffer>>();
  let current: Record<string, Buffer> | undefined;
  let start = 0;
  while (start < buf.length) {
    let end = buf.indexOf(0x0a, start);
    if (end < 0) end = buf.length;
    const line = buf.subarray(start, end);
    start = end + 1;
    if (line.length === 0) {
      current = undefined;
      continue;
    }
    if (line.subarray(0, 8).toString('latin1') === '# file: ') {
      current = {};
      out.set(unescapeName(line.subarray(8)).toString('latin1'), current);
      continue;
    }
    if (!current) continue;
    const eq = line.indexOf(0x3d);
    if (eq < 0) continue;
    current[unescapeName(line.subarray(0, eq)).toString('latin1')] = decodeValue(line.subarray(eq + 1).toString('latin1'));
  }
  return out;
}

import { InputError } from '../../lib/errors.js';
import { spawnTool } from '../../lib/exec.js';
import type { ContentChunk } from '../model/sparse.js';
import { readTar } from './tar-reader.js';

/**
 * Reads an open regular file that has holes without reading the holes. Node cannot lseek with
 * SEEK_DATA/SEEK_HOLE, so GNU tar does it: it gets our descriptor as its fd 3, opens it again
 * through /proc/self/fd/3 (the same inode, whatever its name is meanwhile), archives it as a pax
 * sparse member (tar asks the filesystem where the data is, falling back to scanning for zeros
 * where SEEK_HOLE is unsupported), and readTar hands on its data and holes. A file that changes
 * while it is read is E_SOURCE_CHANGED.
 */
export async function* readFileWithHoles(fd: number, size: number, label: string): AsyncGenerator<ContentChunk> {
  const { child } = await spawnTool('tar', ['--create', '--file=-', '--sparse', '--format=pax', '--dereference', '--no-recursion', '--absolute-names', '/proc/self/fd/3'], {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    fds: [fd],
    env: { ...process.env, LC_ALL: 'C' },
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-2000);
  });
  const changed = (what: string) =>
    new InputError('E_SOURCE_CHANGED', `${label} changed during import (${what})`, {
      hint: 'import a tree that nothing changes meanwhile (a snapshot or a stopped system)',
    });
  let done = false;
  try {
    let seen = 0;
    for await (const e of readTar(child.stdout!, { label: `tar of ${label}` })) {
      if (e.type !== 'file' || ++seen > 1) throw changed('not one regular file');
      if (e.size !== size) throw changed(`${e.size} bytes now, ${size} when listed`);
      if (e.content) yield* e.content as AsyncIterable<ContentChunk>;
    }
    const result = await child;
    if (result.exitCode !== 0) throw changed(stderr.trim().split('\n').pop() ?? `tar exited with ${result.exitCode ?? result.signal}`);
    if (seen !== 1) throw changed('tar read nothing');
    done = true;
  } finally {
    if (!done && child.exitCode === null) child.kill('SIGKILL');
  }
}

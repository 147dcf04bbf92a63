import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { constants, copyFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';

/** "slim/nginx:1" → "slim-nginx-1" */
const baseName = (request) => request.imageRef.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '') || request.imageId.slice(0, 12);
const destination = (request) => join(resolve(String(request.options.dir)), `${baseName(request)}.tar`);

async function sha256(path) {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * A provider in the shape aim's Provider interface asks for (src/core/ship/provider.ts):
 * name, summary, options, and plan (pure) / check (before any work) / ship.
 */
export const localdir = {
  name: 'localdir',
  summary: 'Example plugin provider: builds the rootfs tar and copies it into a local directory.',
  options: [{ name: 'dir', type: 'string', required: true, env: 'AIM_LOCALDIR', description: 'existing directory the tar is copied into' }],

  plan(request) {
    return { builds: [{ format: 'tar', dir: 'tar' }], uploads: [{ file: 'rootfs.tar', destination: destination(request) }], notes: [] };
  },

  async check(request, context) {
    context.requireFormat('tar');
    const dir = resolve(String(request.options.dir));
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new Error(`--dir ${dir} is not an existing directory`);
    if (await stat(destination(request)).catch(() => undefined)) throw new Error(`${destination(request)} already exists`);
  },

  async ship(request, context) {
    const built = await context.build('tar', 'tar');
    const tar = built.artifacts.find((a) => a.path.endsWith('.tar'));
    const dest = destination(request);
    context.reporter.emit({ type: 'info', message: `copying ${tar.path} to ${dest}` });
    try {
      await copyFile(tar.path, dest, constants.COPYFILE_EXCL);
      const copied = await sha256(dest);
      if (copied !== tar.sha256) throw new Error(`copy of ${tar.path} differs from the original`);
      return { artifacts: built.artifacts, published: [{ kind: 'local copy', location: dest, bytes: tar.bytes, sha256: copied }] };
    } catch (e) {
      await rm(dest, { force: true });
      throw e;
    }
  },
};

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
// The public provider API of aim: the contract's helpers, aim's zod and its errors. Never import aim's src/ or dist/.
import { ProviderError, defineProvider, z } from 'aim/provider';

/** "slim/nginx:1" → "slim-nginx-1" */
const baseName = (image) => image.ref.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '') || image.id.slice(0, 12);
const destination = (image, dir) => join(resolve(dir), `${baseName(image)}.tar`);

async function sha256(path) {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * A provider on aim's contract (aim/provider): options as a zod schema; observe reads what is
 * there; plan is pure; apply journals the copy before making it; remove deletes it.
 */
export const localdir = defineProvider({
  name: 'localdir',
  summary: 'Example plugin provider: builds the rootfs tar and copies it into a local directory.',
  options: z.object({
    dir: z.string().min(1).meta({ description: 'existing directory the tar is copied into', env: 'AIM_LOCALDIR' }),
  }),

  // the same image to the same file is one publication
  target: (options, { image }) => destination(image, options.dir),

  async observe(target, ctx) {
    ctx.requireFormat('tar');
    const dir = resolve(target.options.dir);
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new ProviderError(`--dir ${dir} is not an existing directory`, { hint: 'create it first' });
    const dest = destination(target.image, dir);
    const there = await stat(dest).catch(() => undefined);
    const ours = target.journal.findLast((r) => r.kind === 'local copy' && r.id === dest && r.state === 'created');
    return { dest, exists: there !== undefined, bytes: there?.size, ours: ours ? { bytes: ours.data.bytes, sha256: ours.data.sha256 } : undefined };
  },

  plan(_image, observed) {
    if (observed.exists && !observed.ours) throw new ProviderError(`${observed.dest} already exists`, { hint: 'remove it or choose another --dir (aim never replaces what it did not write)' });
    if (observed.ours && observed.bytes === observed.ours.bytes) {
      return { dest: observed.dest, steps: [], upToDate: true, published: [{ kind: 'local copy', location: observed.dest, ...observed.ours }] };
    }
    return { dest: observed.dest, steps: [{ action: 'build', subject: 'tar → tar/' }, { action: 'copy', subject: 'rootfs.tar', detail: observed.dest }] };
  },

  async apply(plan, ctx) {
    const built = await ctx.build('tar', 'tar');
    const tar = built.artifacts.find((a) => a.path.endsWith('.tar'));
    ctx.reporter.emit({ type: 'info', message: `copying ${tar.path} to ${plan.dest}` });
    // journalled before the copy: a killed run leaves a journal that names the file
    const copy = await ctx.journal.begin({ kind: 'local copy', id: plan.dest });
    await copyFile(tar.path, plan.dest);
    const copied = await sha256(plan.dest);
    if (copied !== tar.sha256) throw new ProviderError(`copy of ${tar.path} differs from the original`);
    await ctx.journal.created(copy, { data: { bytes: tar.bytes, sha256: copied } });
    return { published: [{ kind: 'local copy', location: plan.dest, bytes: tar.bytes, sha256: copied }] };
  },

  async remove(resource) {
    await rm(resource.id, { force: true });
  },
});

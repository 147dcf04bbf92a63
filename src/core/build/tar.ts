import { join } from 'node:path';
import { exportImage } from '../export/export-image.js';
import type { FormatBuilder } from './types.js';

/** rootfs.tar: the image exactly, as a pax tar (owners, modes, xattrs, devices kept). */
export const buildTar: FormatBuilder = async ({ repo, request, reporter, signal }) => {
  const out = join(request.outDir, 'rootfs.tar');
  await exportImage(repo, request.imageId, { format: 'tar', out, signal }, reporter);
  return [{ path: out, kind: 'rootfs tar' }];
};

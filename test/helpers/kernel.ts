import { join } from 'node:path';
import { devCache } from './cli.js';

/** Where tests keep Debian's kernel package between runs (`aim core kernel --deb-dir`); never committed. */
export const kernelDebDir = join(devCache, 'kernel');

import { join } from 'node:path';
import { projectRoot } from './cli.js';

/** Where tests keep Debian's kernel package between runs (`aim core kernel --deb-dir`); never committed. */
export const kernelDebDir = join(projectRoot, '.cache', 'kernel');

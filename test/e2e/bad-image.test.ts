import { describeHostile } from '../helpers/hostile/harness.js';
import { DIR_CASES } from '../helpers/hostile/dir-cases.js';
import { EXT_CASES } from '../helpers/hostile/ext-cases.js';

describeHostile('hostile disk images and directory trees', [...EXT_CASES, ...DIR_CASES]);

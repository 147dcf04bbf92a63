import { describeHostile } from '../helpers/hostile/harness.js';
import { SPARSE_CASES } from '../helpers/hostile/sparse-cases.js';
import { TAR_CASES } from '../helpers/hostile/tar-cases.js';
import { TREE_CASES } from '../helpers/hostile/tree-cases.js';

describeHostile('hostile tar archives', [...TAR_CASES, ...TREE_CASES, ...SPARSE_CASES]);

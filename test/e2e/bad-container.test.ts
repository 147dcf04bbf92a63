import { describeHostile } from '../helpers/hostile/harness.js';
import { OCI_CASES } from '../helpers/hostile/oci-cases.js';

describeHostile('hostile OCI layouts and docker save archives', OCI_CASES);

/**
 * The first examples (nginx, redis, python-http) go gold → profile → slim → verify through the
 * CLI, each on the gold tree its own template describes (built with mmdebstrap, cached by
 * content in .cache/gold), so the reduction from gold is measured honestly too.
 */
import { describeExamples, ownGoldTar, sha256, type Example } from '../helpers/examples.js';

const EXAMPLES: Example[] = [
  {
    dir: 'nginx',
    probes: [{ status: 200 }, { status: 200 }, { status: 404 }],
    explain: ['/var/www/html/style.css', /traced/],
    minReduction: 10,
    maxOverLimit: 1.2,
    used: ['/usr/sbin/nginx', '/var/www/html/index.html', '/var/www/html/style.css'],
  },
  {
    dir: 'redis',
    probes: [
      { exitCode: 0, sha256: sha256('PONG\n') },
      { exitCode: 0, sha256: sha256('OK\n') },
      { exitCode: 0, sha256: sha256('hello-from-aim\n') },
    ],
    explain: ['/usr/bin/redis-cli', /traced/],
    // The issue asks 10x; redis-server really maps 17.0 MiB (itself, libcrypto, libstdc++,
    // libsystemd and its compressors): 169.1 MiB of gold over that traced limit is 9.9x, so no
    // slim image of this gold can reach 10x. Guard what is reachable (measured: 9.8x).
    minReduction: 9.5,
    maxOverLimit: 1.2,
    used: ['/usr/bin/redis-server', '/usr/bin/redis-cli'],
  },
  {
    dir: 'python-http',
    probes: [{ status: 200 }, { status: 200 }, { status: 404 }],
    explain: ['/srv/app/server.py', /traced/],
    minReduction: 9.5, // measured 10.2x; the issue sets no target for Python
    maxOverLimit: 1.2,
    used: ['/srv/app/server.py', '/srv/app/static/index.html'],
  },
];

describeExamples(EXAMPLES, ownGoldTar);

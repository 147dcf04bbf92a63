/**
 * Service examples on the "light" shared gold tree (HAProxy, php-fpm behind nginx, Node.js,
 * memcached, Mosquitto, the node exporter) go gold → profile → slim → verify from their templates.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../helpers/cli.js';
import { describeExamples, sha256, type Example } from '../helpers/examples.js';
import { servicesGoldTar } from '../helpers/service-examples.js';

const fileHash = (...path: string[]) => sha256(readFileSync(join(projectRoot, 'examples', ...path), 'utf8'));

const EXAMPLES: Example[] = [
  {
    dir: 'haproxy',
    // the backends' own files, through the proxy; HAProxy's 503 for a backend that is down; busybox's 404
    probes: [
      { status: 200, sha256: fileHash('haproxy', 'backend', 'app', 'index.html') },
      { status: 200, sha256: fileHash('haproxy', 'backend', 'static', 'static', 'site.css') },
      { status: 503 },
      { status: 404 },
    ],
    explain: ['/usr/sbin/haproxy', /traced/],
    maxOverLimit: 1.2,
    used: ['/usr/sbin/haproxy', '/etc/haproxy/haproxy.cfg', '/srv/backend/app/index.html', '/etc/haproxy/errors/503.http'],
  },
  {
    dir: 'php-fpm',
    probes: [{ status: 200 }, { status: 200 }, { status: 200 }, { status: 200, sha256: fileHash('php-fpm', 'site', 'style.css') }, { status: 404 }],
    explain: ['/usr/sbin/php-fpm8.2', /traced/],
    maxOverLimit: 1.2,
    used: ['/usr/sbin/php-fpm8.2', '/usr/sbin/nginx', '/var/www/php-site/index.php', '/var/www/php-site/api.php', '/etc/php/8.2/fpm/pool.d/www.conf'],
  },
  {
    dir: 'node-http',
    probes: [{ status: 200, sha256: fileHash('node-http', 'app', 'index.html') }, { status: 200 }, { status: 200 }, { status: 200 }, { status: 404 }],
    explain: ['/srv/node-app/server.js', /traced/],
    maxOverLimit: 1.2,
    used: ['/usr/bin/node', '/srv/node-app/server.js', '/srv/node-app/index.html'],
  },
  {
    dir: 'memcached',
    probes: [
      { exitCode: 0, sha256: sha256('') },
      { exitCode: 0, sha256: sha256('') },
      { exitCode: 0, sha256: sha256('hello-from-aim\n\n') }, // memccat ends each value with a newline
      { exitCode: 0, sha256: sha256('') },
    ],
    explain: ['/usr/bin/memcached', /traced/],
    maxOverLimit: 1.2,
    used: ['/usr/bin/memcached', '/usr/bin/memccp', '/usr/bin/memccat'],
  },
  {
    dir: 'mosquitto',
    probes: [
      { exitCode: 0, sha256: sha256('') },
      { exitCode: 0, sha256: sha256('aim/greeting hello-from-aim\n') },
      // retained, and delivered at the subscription's QoS 0
      { exitCode: 0, sha256: sha256('aim/greeting hello-from-aim (qos 0, retained 1)\n') },
    ],
    explain: ['/usr/sbin/mosquitto', /traced/],
    maxOverLimit: 1.2,
    used: ['/usr/sbin/mosquitto', '/etc/mosquitto/aim.conf', '/usr/bin/mosquitto_pub', '/usr/bin/mosquitto_sub'],
  },
  {
    dir: 'node-exporter',
    probes: [{ status: 200 }, { status: 200 }],
    explain: ['/usr/bin/prometheus-node-exporter', /traced/],
    maxOverLimit: 1.2,
    used: ['/usr/bin/prometheus-node-exporter'],
  },
];

describeExamples(EXAMPLES, () => servicesGoldTar('light'));

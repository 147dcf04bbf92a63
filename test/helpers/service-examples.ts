/**
 * The examples of Debian services beyond the first three. Their tests share gold trees: each
 * group's packages and copy-ins in one tree, built once, imported once per test file and tagged
 * as each example's gold; each template still names its own recipe for users and the bench.
 * Two groups rather than one tree: every profile and verify run materialises the whole gold tree,
 * so the large packages (a JDK, a database server) stay out of the light examples' tree, and each
 * group's test file can run on its own worker.
 */
import { sharedGoldTar } from './examples.js';

export const SERVICE_GROUPS = {
  heavy: ['mariadb', 'java-http', 'exim', 'bind9'],
  light: ['haproxy', 'php-fpm', 'node-http', 'memcached', 'mosquitto', 'node-exporter'],
} as const;

export type ServiceGroup = keyof typeof SERVICE_GROUPS;

export const SERVICE_EXAMPLES = [...SERVICE_GROUPS.heavy, ...SERVICE_GROUPS.light];

/** The shared tree of a group (the same for every example of the group). */
export const servicesGoldTar = (group: ServiceGroup) => sharedGoldTar(SERVICE_GROUPS[group]);

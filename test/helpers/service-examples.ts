/**
 * The examples of Debian services beyond the first three. Their tests share one gold tree
 * (every example's packages and copy-ins, built once), imported once per test file and tagged
 * as each example's gold; each template still names its own recipe for users and the bench.
 */
import { sharedGoldTar } from './examples.js';

export const SERVICE_EXAMPLES = ['mariadb', 'bind9', 'haproxy', 'php-fpm', 'java-http', 'node-http', 'exim', 'memcached', 'mosquitto', 'node-exporter'] as const;

/** The shared tree (the same for every example of the list). */
export const servicesGoldTar = () => sharedGoldTar(SERVICE_EXAMPLES);

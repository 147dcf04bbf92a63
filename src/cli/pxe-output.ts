import type { ServeEvent } from '../server/pxe/events.js';
import type { PxeBootEvent } from '../core/model/pxe.js';
import type { AssignmentView } from '../core/pxe/assignments.js';
import { formatBytes, shortId, table } from './format.js';

/** One line of `aim pxe serve`'s log in a terminal: time, event, then what matters for it. */
export function serveEventLine(e: ServeEvent): string {
  const t = e.at.slice(11, 23);
  switch (e.event) {
    case 'listening':
      return `${t} listening on ${e.http}; machines chain to ${e.bootUrl}${e.interface ? ` (interface ${e.interface}${e.dhcp ? `, ${e.dhcp === 'proxy' ? 'proxyDHCP' : 'DHCP'}` : ''}${e.tftp ? ', TFTP' : ''})` : ''}; cache ${e.cacheDir}`;
    case 'request': {
      const size = e.length !== undefined && e.length !== e.bytes ? `${formatBytes(e.bytes)} of ${formatBytes(e.length)}` : formatBytes(e.bytes);
      const who = [e.kind, e.machine, e.imageId ? `image ${shortId(e.imageId)}` : undefined, e.selector ? `by ${e.selector}` : undefined].filter(Boolean).join(' ');
      return `${t} ${e.address} ${e.method} ${e.target} ${e.status} ${size}${e.complete ? '' : ' INCOMPLETE'} ${e.ms} ms${who ? ` ${who}` : ''}${e.reason ? ` (${e.reason})` : ''}`;
    }
    case 'refused':
      return `${t} ${e.address} connection refused: ${e.reason}`;
    case 'client-error':
      return `${t} ${e.address} ${e.status}: ${e.reason}`;
    case 'prepare':
      return `${t} prepare ${e.artifact} of ${e.imageRef} (${shortId(e.imageId)}): ${e.status}${e.bytes !== undefined ? ` ${formatBytes(e.bytes)}` : ''}${e.seconds !== undefined ? ` in ${e.seconds.toFixed(1)} s` : ''}${e.reason ? `: ${e.reason}` : ''}`;
    case 'assignments':
      return `${t} assignments: ${e.count} (${e.bootIds} images to boot)${e.changed ? ', changed' : ''}${e.pruned ? `, ${e.pruned} cached files removed` : ''}`;
    case 'dhcp':
      return `${t} dhcp ${e.mac ?? ''} ${e.message}`.replace(/ +/g, ' ');
    case 'tftp':
      return `${t} tftp ${e.message}`;
    case 'dnsmasq':
      return `${t} dnsmasq ${e.message}${e.pid !== undefined ? ` (pid ${e.pid})` : ''}${e.exitCode !== undefined ? ` (exit ${e.exitCode ?? e.signal})` : ''}`;
    case 'warning':
      return `${t} warning ${e.code}: ${e.message}`;
    case 'stopped':
      return `${t} stopped (${e.reason}): ${e.requests} requests, ${formatBytes(e.bytes)} sent`;
  }
}

export function assignmentsTable(assignments: readonly AssignmentView[]): string {
  if (assignments.length === 0) return 'no assignments (aim pxe assign <mac|uuid|label=value|default> <image>)';
  const rows = assignments.map((a) => [
    a.selector.key,
    `${a.imageRef} (${shortId(a.imageId)})${a.imageMissing ? ' MISSING' : ''}`,
    `${a.boot.kernel.version}${a.boot.kernel.ref ? ` (${a.boot.kernel.ref})` : ''}`,
    a.boot.platform + (a.boot.modules.length ? ` +${a.boot.modules.join(',')}` : ''),
    a.channel ?? '-',
    a.kernelArgs || '-',
  ]);
  return table(['MACHINES', 'IMAGE', 'KERNEL', 'PLATFORM', 'CHANNEL', 'KERNEL ARGS'], rows);
}

export function bootEventsTable(events: readonly PxeBootEvent[]): string {
  if (events.length === 0) return 'no boot events';
  const rows = events.map((e) => [
    e.at.replace('T', ' ').slice(0, 19),
    e.machine ?? '-',
    e.address,
    e.kind,
    e.imageId ? shortId(e.imageId) : '-',
    String(e.status),
    e.length !== undefined && e.length !== e.bytes ? `${formatBytes(e.bytes)} of ${formatBytes(e.length)}` : formatBytes(e.bytes),
    e.complete ? 'yes' : 'NO',
  ]);
  return table(['TIME', 'MACHINE', 'ADDRESS', 'FETCHED', 'IMAGE', 'STATUS', 'BYTES', 'COMPLETE'], rows);
}

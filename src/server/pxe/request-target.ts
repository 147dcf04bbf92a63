import { isLabelKey, isLabelValue, normalizeMac, normalizeUuid, type MachineFacts } from '../../core/pxe/selector.js';

/** The files of one assigned boot, under /boot/<boot id>/. */
export const BOOT_FILES = { kernel: 'vmlinuz', initrd: 'initrd.img' } as const;
export const SCRIPT_PATH = '/boot.ipxe';

/** The longest request target accepted (iPXE's are well under 300 bytes). */
export const MAX_TARGET = 2048;
const MAX_PARAMS = 16;

/** What a request asks for, once its target passed every check. */
export type Route =
  | { kind: 'script'; path: string; machine: MachineFacts }
  | { kind: 'kernel' | 'initrd'; path: string; bootId: string; machine: MachineFacts };

export interface Refusal {
  status: number;
  reason: string;
}

const refuse = (status: number, reason: string): Refusal => ({ status, reason });

/**
 * Checks a request target and maps it to a route. The server serves a fixed set of names, so the
 * check is an allowlist: an origin-form target (`/path?query`, never `http://host/…`, `host:port`
 * or `*`), a path of plain characters only (no percent-encoding of any kind, so no `%2e%2e`,
 * `%252e` or overlong UTF-8 `%c0%ae` can spell a dot or a slash; no backslash; no empty, `.` or
 * `..` segment), then one of the known names. Query parameters (on the script and, to name the
 * machine in events, on the files) are decoded and checked: a MAC and a UUID that parse, labels
 * with plain names and values, no parameter twice.
 */
export function routeRequest(target: string): Route | Refusal {
  if (target.length > MAX_TARGET) return refuse(414, 'request target too long');
  if (!target.startsWith('/')) return refuse(400, 'only origin-form request targets (/path) are served');
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  if (!/^[A-Za-z0-9._/-]+$/.test(path)) return refuse(400, 'the path holds characters that are never part of a served name (percent-encoding, backslashes, …)');
  const segments = path.split('/').slice(1);
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return refuse(400, 'empty, . or .. path segment');
  const machine = parseMachine(query);
  if ('status' in machine) return machine;
  if (path === SCRIPT_PATH) return { kind: 'script', path, machine };
  const m = /^\/boot\/([0-9a-f]{32})\/(vmlinuz|initrd\.img)$/.exec(path);
  if (!m) return refuse(404, 'not a served name');
  return { kind: m[2] === BOOT_FILES.kernel ? 'kernel' : 'initrd', path, bootId: m[1]!, machine };
}

function parseMachine(query: string): MachineFacts | Refusal {
  const labels = new Map<string, string>();
  const facts: { mac?: string; uuid?: string; labels: Map<string, string> } = { labels };
  if (query === '') return facts;
  if (query.length > 1024) return refuse(414, 'query too long');
  let params: URLSearchParams;
  try {
    // URLSearchParams decodes leniently; a malformed escape stays literal and fails the checks below
    params = new URLSearchParams(query);
  } catch {
    return refuse(400, 'malformed query');
  }
  const seen = new Set<string>();
  let count = 0;
  for (const [key, value] of params) {
    if (++count > MAX_PARAMS) return refuse(400, `more than ${MAX_PARAMS} query parameters`);
    if (seen.has(key)) return refuse(400, `query parameter ${key} given twice`);
    seen.add(key);
    // iPXE sends settings that are not set as empty values
    if (value === '') continue;
    if (key === 'mac') {
      const mac = normalizeMac(value);
      if (!mac) return refuse(400, 'mac is not a MAC address');
      facts.mac = mac;
    } else if (key === 'uuid') {
      const uuid = normalizeUuid(value);
      if (!uuid) return refuse(400, 'uuid is not a UUID');
      facts.uuid = uuid;
    } else {
      if (!isLabelKey(key) || !isLabelValue(value)) return refuse(400, `query parameter ${JSON.stringify(key.slice(0, 64))}: names are lower-case letters, digits, _ . -; values letters, digits, _ . : + @ -`);
      labels.set(key, value);
    }
  }
  return facts;
}

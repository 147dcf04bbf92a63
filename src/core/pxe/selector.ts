import { ConfigError } from '../../lib/errors.js';
import type { Selector, SelectorKind } from '../model/pxe.js';

/** Precedence of selectors: the most specific match wins. */
export const SELECTOR_ORDER: readonly SelectorKind[] = ['mac', 'uuid', 'label', 'default'];

const HEX_PAIR = /^[0-9a-f]{2}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A label's key: what a query parameter may be called. */
const LABEL_KEY = /^[a-z][a-z0-9_.-]{0,62}$/;
/** A label's value: printable ASCII without spaces, quotes or URL syntax that would need escaping. */
const LABEL_VALUE = /^[A-Za-z0-9_.:+@-]{1,128}$/;

/** A MAC in any usual spelling (colons, hyphens, dots or none; any case) → `52:54:00:12:34:56`, or undefined. */
export function normalizeMac(text: string): string | undefined {
  const hex = text.toLowerCase().replace(/[:.-]/g, '');
  if (!/^[0-9a-f]{12}$/.test(hex)) return undefined;
  // separators, when used, must group the digits by pairs (colons/hyphens) or fours (Cisco dots)
  if (/[:-]/.test(text) && !text.split(/[:-]/).every((p) => HEX_PAIR.test(p.toLowerCase()))) return undefined;
  if (text.includes('.') && !/^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/i.test(text)) return undefined;
  return hex.match(/../g)!.join(':');
}

/** A UUID in lower case, or undefined. */
export function normalizeUuid(text: string): string | undefined {
  const u = text.toLowerCase();
  return UUID.test(u) ? u : undefined;
}

function usage(text: string, why: string): ConfigError {
  return new ConfigError(`machine selector "${text}": ${why}`, {
    hint: 'give a MAC (52:54:00:12:34:56), an SMBIOS UUID, label=value (a parameter of the boot request, e.g. platform=efi) or default',
  });
}

/**
 * Parses what `aim pxe assign` takes: a MAC, a UUID, `mac=…`, `uuid=…`, `key=value` (a label),
 * or `default`.
 */
export function parseSelector(text: string): Selector {
  if (text === 'default') return { kind: 'default', key: 'default' };
  const eq = text.indexOf('=');
  if (eq < 0) {
    const mac = normalizeMac(text);
    if (mac) return { kind: 'mac', key: `mac:${mac}`, value: mac };
    const uuid = normalizeUuid(text);
    if (uuid) return { kind: 'uuid', key: `uuid:${uuid}`, value: uuid };
    throw usage(text, 'not a MAC address, a UUID, label=value or default');
  }
  const key = text.slice(0, eq);
  const value = text.slice(eq + 1);
  if (key === 'mac' || key === 'uuid') {
    const parsed = parseSelector(value);
    if (parsed.kind !== key) throw usage(text, `not a ${key === 'mac' ? 'MAC address' : 'UUID'}`);
    return parsed;
  }
  if (!LABEL_KEY.test(key)) throw usage(text, 'a label\'s name is lower-case letters, digits, _ . - (starting with a letter)');
  if (!LABEL_VALUE.test(value)) throw usage(text, 'a label\'s value is 1 to 128 letters, digits or _ . : + @ -');
  return { kind: 'label', key: `label:${key}=${value}`, label: key, value };
}

/** Selectors from their stored form (`mac:…`, `uuid:…`, `label:k=v`, `default`). */
export function selectorFromKey(key: string): Selector {
  if (key === 'default') return parseSelector(key);
  const colon = key.indexOf(':');
  const kind = key.slice(0, colon);
  const rest = key.slice(colon + 1);
  if (kind === 'mac' || kind === 'uuid') return parseSelector(`${kind}=${rest}`);
  if (kind === 'label') return parseSelector(rest);
  throw usage(key, 'not a stored selector');
}

/** What a boot request tells about the machine: its MAC, its UUID, and the other parameters as labels. */
export interface MachineFacts {
  mac?: string;
  uuid?: string;
  labels: ReadonlyMap<string, string>;
}

/** The machine's name in events: its MAC, else its UUID. */
export function machineName(m: Pick<MachineFacts, 'mac' | 'uuid'>): string | undefined {
  return m.mac ? `mac:${m.mac}` : m.uuid ? `uuid:${m.uuid}` : undefined;
}

/** Whether a selector picks this machine. */
export function selects(s: Selector, m: MachineFacts): boolean {
  switch (s.kind) {
    case 'mac':
      return m.mac === s.value;
    case 'uuid':
      return m.uuid === s.value;
    case 'label':
      return m.labels.get(s.label!) === s.value;
    case 'default':
      return true;
  }
}

/**
 * The assignment a machine boots: its MAC's, else its UUID's, else the first label assignment
 * (by the label's stored form) whose label the request carries, else the default; undefined when
 * none applies.
 */
export function matchAssignment<T extends { selector: Selector }>(assignments: readonly T[], machine: MachineFacts): T | undefined {
  for (const kind of SELECTOR_ORDER) {
    const hit = assignments.filter((a) => a.selector.kind === kind && selects(a.selector, machine)).sort((a, b) => a.selector.key.localeCompare(b.selector.key))[0];
    if (hit) return hit;
  }
  return undefined;
}

/** Query parameter names that label machines: lower case, like the label keys. */
export const isLabelKey = (k: string) => LABEL_KEY.test(k);
export const isLabelValue = (v: string) => LABEL_VALUE.test(v);

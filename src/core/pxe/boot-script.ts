import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InternalError } from '../../lib/errors.js';
import { pxeCommandLine } from '../build/pxe.js';
import type { PxeAssignment } from '../model/pxe.js';
import { machineName, type MachineFacts } from './selector.js';

/** The iPXE scripts `aim pxe serve` renders, from templates/pxe/<name>.ipxe. */
export type ScriptTemplate = 'boot' | 'unassigned' | 'chain' | 'unavailable';

/** How long a machine without a bootable assignment waits before asking again. */
export const RETRY_SECONDS = 30;

/** templates/ in the package: found from this module in src/ (tests) and in dist/src/ (the CLI). */
function templatesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'templates', 'pxe'))) return join(dir, 'templates');
    dir = dirname(dir);
  }
  throw new InternalError('templates/pxe not found next to aim\'s code');
}

const loaded = new Map<ScriptTemplate, Promise<string>>();

/**
 * Renders a template: every `{{name}}` replaced by its value. Values go into script lines, so a
 * value with a control character (a new line would be a new command) is a bug, never written.
 */
export async function renderScript(name: ScriptTemplate, values: Record<string, string | number>): Promise<string> {
  if (!loaded.has(name)) loaded.set(name, readFile(join(templatesDir(), 'pxe', `${name}.ipxe`), 'utf8'));
  const template = await loaded.get(name)!;
  return template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const v = values[key];
    if (v === undefined) throw new InternalError(`templates/pxe/${name}.ipxe: no value for {{${key}}}`);
    const text = String(v);
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(text)) throw new InternalError(`templates/pxe/${name}.ipxe: {{${key}}} holds a control character`);
    return text;
  });
}

/** The boot script's own URL for a machine (its parameters as the server understood them). */
export function scriptUrl(scriptPath: string, m: MachineFacts): string {
  const params: [string, string][] = [...(m.mac ? [['mac', m.mac] as [string, string]] : []), ...(m.uuid ? [['uuid', m.uuid] as [string, string]] : []), ...m.labels];
  return params.length ? `${scriptPath}?${query(params)}` : scriptPath;
}

/**
 * A query of checked values (MACs, UUIDs, labels), escaped as a query needs it ('+' would read as
 * a space), colons too: the scripts name their files by relative URLs, and iPXE before 2021 (the
 * ROMs and binaries of Debian's ipxe, 2019) takes everything before a URL's first colon for its
 * scheme, so `/boot.ipxe?mac=52:54:…` failed there with "Operation not supported".
 */
function query(params: readonly [string, string][]): string {
  return params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
}

/** The kernel command line of an assignment: aim's PXE line, then the assignment's own arguments. */
export function assignmentCommandLine(a: Pick<PxeAssignment, 'boot' | 'kernelArgs'>): string {
  return pxeCommandLine(a.boot.platform, a.kernelArgs);
}

export interface BootScriptInput {
  machine: MachineFacts;
  assignment: PxeAssignment;
  /** http://host:port as the machine reached the server. */
  server: string;
  scriptPath: string;
  kernelPath: string;
  initrdPath: string;
}

export function renderBootScript(i: BootScriptInput): Promise<string> {
  const a = i.assignment;
  const who = machineName(i.machine) ?? 'this machine';
  const tag = i.machine.mac ? query([['mac', i.machine.mac]]) : i.machine.uuid ? query([['uuid', i.machine.uuid]]) : '';
  const withMachine = (path: string) => (tag ? `${path}?${tag}` : path);
  return renderScript('boot', {
    machine: who,
    selector: a.selector.key,
    imageRef: a.imageRef,
    imageId: a.imageId,
    imageShort: a.imageId.slice(0, 12),
    kernelVersion: a.boot.kernel.version,
    platform: a.boot.platform,
    kernelUrl: withMachine(i.kernelPath),
    initrdUrl: withMachine(i.initrdPath),
    cmdline: assignmentCommandLine(a),
    server: i.server,
    scriptUrl: scriptUrl(i.scriptPath, i.machine),
  });
}

/** What to type to assign this machine: by MAC when the request said it, else by UUID. */
function assignHint(m: MachineFacts): string {
  return m.mac ?? m.uuid ?? 'default';
}

export function renderUnassignedScript(m: MachineFacts, server: string, scriptPath: string): Promise<string> {
  return renderScript('unassigned', { machine: machineName(m) ?? 'unknown', assignHint: assignHint(m), server, retrySeconds: RETRY_SECONDS, scriptUrl: scriptUrl(scriptPath, m) });
}

export function renderUnavailableScript(m: MachineFacts, a: PxeAssignment, problem: string, scriptPath: string): Promise<string> {
  // aim's own message, as plain words iPXE echoes as they are (no settings, terminators or comments)
  const line = problem.replace(/[^A-Za-z0-9 .,:/()_@+=-]+/g, ' ').replace(/ +/g, ' ').slice(0, 300);
  return renderScript('unavailable', { machine: machineName(m) ?? 'this machine', imageRef: a.imageRef, selector: a.selector.key, problem: line, retrySeconds: RETRY_SECONDS, scriptUrl: scriptUrl(scriptPath, m) });
}

export function renderChainScript(scriptPath: string): Promise<string> {
  return renderScript('chain', { scriptPath });
}

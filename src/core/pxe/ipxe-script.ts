import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, InternalError } from '../../lib/errors.js';

/**
 * The query `aim pxe serve` matches a machine by: iPXE fills in the settings when it runs the
 * chain command (the MAC of net0, the SMBIOS UUID, i386/x86_64/arm64, pcbios/efi).
 */
export const BOOT_QUERY = 'mac=${net0/mac}&uuid=${uuid}&buildarch=${buildarch}&platform=${platform}';
export const BOOT_SCRIPT_NAME = 'boot.ipxe';

/** An embedded image must be small: it is part of every binary, and a NIC ROM has little room. */
export const MAX_EMBED_BYTES = 64 * 1024;

/**
 * The server (normalised) and the boot script URL on `aim pxe serve` at `server`
 * (http(s)://host[:port][/prefix]): `<server>/boot.ipxe?mac=${net0/mac}&uuid=${uuid}&buildarch=${buildarch}&platform=${platform}`.
 * The URL goes verbatim into an iPXE script, so anything iPXE would read as more than a URL is
 * refused: whitespace and control characters (a new line is a new command), `${` (a setting),
 * credentials (they would ship in every binary), a query or fragment (the server's own query
 * follows).
 */
export function chainBootUrl(server: string): { server: string; bootUrl: string } {
  const bad = (why: string) => new ConfigError(`--chain ${JSON.stringify(server)}: ${why}`, { hint: 'give the URL of aim pxe serve as the machines reach it, e.g. --chain http://192.0.2.10:8080' });
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(server)) throw bad('whitespace or control characters in the URL');
  if (/[${}"'\\]/.test(server)) throw bad('iPXE would expand or quote `$`, `{`, `}`, quotes or `\\` in the URL');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad(`scheme ${url.protocol.slice(0, -1)} (iPXE chains by http or https)`);
  if (url.username || url.password) throw bad('credentials in the URL would be readable in every binary built with it');
  if (url.search || url.hash || server.includes('?') || server.includes('#')) throw bad('no query or fragment: aim adds the boot script\'s path and query');
  if (!url.hostname) throw bad('no host');
  const base = `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
  return { server: base, bootUrl: `${base}/${BOOT_SCRIPT_NAME}?${BOOT_QUERY}` };
}

/** templates/ in the package: found from this module in src/ (tests) and in dist/src/ (the CLI). */
function templatesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'templates', 'ipxe'))) return join(dir, 'templates');
    dir = dirname(dir);
  }
  throw new InternalError('templates/ipxe not found next to aim\'s code');
}

/**
 * The default embedded script (templates/ipxe/embedded.ipxe): DHCP, then chain to aim pxe serve
 * at `server`, telling it the machine; on failure a message and another try after 10 s.
 */
export async function renderEmbeddedScript(server: string): Promise<string> {
  const values: Record<string, string> = chainBootUrl(server);
  const template = await readFile(join(templatesDir(), 'ipxe', 'embedded.ipxe'), 'utf8');
  return template.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new InternalError(`templates/ipxe/embedded.ipxe: unknown placeholder {{${name}}}`);
    return v;
  });
}

/** A script given with --embed: an iPXE script (`#!ipxe` first), small, text. */
export async function readEmbedFile(path: string): Promise<string> {
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile()) throw new ConfigError(`--embed ${path}: no such file`, { hint: 'give an iPXE script (a file starting with #!ipxe)' });
  if (st.size > MAX_EMBED_BYTES) throw new ConfigError(`--embed ${path}: ${st.size} bytes, more than ${MAX_EMBED_BYTES}`, { hint: 'an embedded script should only bring the network up and chain to a server; put the rest in the script the server sends' });
  const buf = await readFile(path);
  if (!buf.subarray(0, 6).equals(Buffer.from('#!ipxe')) || buf.includes(0)) {
    throw new ConfigError(`--embed ${path} is not an iPXE script (it must start with #!ipxe and be text)`, { hint: 'start the file with the line #!ipxe' });
  }
  return buf.toString('utf8');
}

/** The script to embed: the file given with --embed, or the default script chaining to the --chain server. */
export async function resolveEmbeddedScript(given: { embed?: string; chain?: string }): Promise<{ script: string; origin: { chain?: string; embed?: string } }> {
  if (given.embed !== undefined && given.chain !== undefined) throw new ConfigError('give --embed or --chain, not both', { hint: '--chain builds aim\'s default script for that server; --embed takes your own script instead' });
  if (given.embed !== undefined) return { script: await readEmbedFile(given.embed), origin: { embed: given.embed } };
  if (given.chain !== undefined) return { script: await renderEmbeddedScript(given.chain), origin: { chain: chainBootUrl(given.chain).server } };
  throw new ConfigError('no script to embed: give --chain URL (aim pxe serve as the machines reach it) or --embed FILE', { hint: 'e.g. --chain http://192.0.2.10:8080' });
}

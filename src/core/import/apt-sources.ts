import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../../lib/errors.js';

/** One apt source as the machine configures it. */
export interface AptSource {
  uri: string;
  suite: string;
  components: string[];
  signedBy?: string;
}

function parseOneLine(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line.startsWith('deb ')) continue;
    let rest = line.slice(4).trim();
    let signedBy: string | undefined;
    const opts = /^\[([^\]]*)\]\s*/.exec(rest);
    if (opts) {
      rest = rest.slice(opts[0].length);
      signedBy = /signed-by=(\S+)/.exec(opts[1]!)?.[1];
    }
    const [uri, suite, ...components] = rest.split(/\s+/);
    if (uri && suite) out.push({ uri, suite, components, signedBy });
  }
  return out;
}

function parseDeb822(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of para.split('\n')) {
      if (line.startsWith('#')) continue;
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`);
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (m) fields.set((last = m[1]!.toLowerCase()), m[2]!.trim());
    }
    if (fields.get('enabled') === 'no') continue;
    if (!(fields.get('types') ?? '').split(/\s+/).includes('deb')) continue;
    for (const uri of (fields.get('uris') ?? '').split(/\s+/).filter(Boolean)) {
      for (const suite of (fields.get('suites') ?? '').split(/\s+/).filter(Boolean)) {
        out.push({ uri, suite, components: (fields.get('components') ?? 'main').split(/\s+/), signedBy: fields.get('signed-by') });
      }
    }
  }
  return out;
}

/** Reads the machine's apt sources (sources.list and sources.list.d). */
export async function readHostAptSources(etcApt = '/etc/apt'): Promise<AptSource[]> {
  const sources: AptSource[] = [];
  sources.push(...parseOneLine(await readFile(join(etcApt, 'sources.list'), 'utf8').catch(() => '')));
  const dir = join(etcApt, 'sources.list.d');
  for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
    const text = await readFile(join(dir, name), 'utf8').catch(() => '');
    if (name.endsWith('.list')) sources.push(...parseOneLine(text));
    else if (name.endsWith('.sources')) sources.push(...parseDeb822(text));
  }
  return sources;
}

/**
 * The host's Debian sources re-aimed at `suite`: the host's codename in each suite name
 * ("bookworm-security") is replaced by the requested one. Sources for other distributions'
 * suites are dropped.
 */
export function sourcesForSuite(host: AptSource[], suite: string): string[] {
  const codenames = new Set(host.map((s) => s.suite.split(/[-/]/)[0]!));
  const lines: string[] = [];
  for (const s of host) {
    const base = s.suite.split(/[-/]/)[0]!;
    if (!codenames.has(base)) continue;
    const target = s.suite.replace(base, suite);
    const opts = s.signedBy ? `[signed-by=${s.signedBy}] ` : '';
    lines.push(`deb ${opts}${s.uri} ${target} ${s.components.join(' ')}`);
  }
  if (lines.length === 0) {
    throw new ConfigError('this machine has no apt sources configured (/etc/apt/sources.list, sources.list.d)', {
      hint: 'configure an apt mirror on this machine, or pass --sources FILE with deb lines',
    });
  }
  return [...new Set(lines)];
}

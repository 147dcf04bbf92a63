import { Args, Flags, type Interfaces } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { formatBytes, shortId, table } from '../cli/format.js';
import { allProviders } from '../cli/plugin-providers.js';
import type { Provider } from '../core/ship/provider.js';
import { resolveImage } from '../core/query/resolve.js';
import { findProvider } from '../core/ship/registry.js';
import { givenOptions, shipImage, type ShipResult } from '../core/ship/ship-image.js';

type FlagMap = Interfaces.FlagInput;

/** Flag names of `aim ship` itself: a provider option with one of these names is given with --opt only. */
export function shipOwnFlags(): Set<string> {
  return new Set([...Object.keys(Ship.flags), ...Object.keys(AimCommand.baseFlags), 'json', 'help']);
}

/** A provider's declared options as flags of `aim ship` (names aim's own flags use stay --opt only). */
function providerFlags(provider: Provider, taken: Set<string>): FlagMap {
  const flags: FlagMap = {};
  for (const o of provider.options) {
    if (taken.has(o.name)) continue;
    const description = `${provider.name}: ${o.description}${o.env ? ` [env: ${o.env}]` : ''}`;
    flags[o.name] = o.type === 'boolean' ? Flags.boolean({ description, helpGroup: provider.name.toUpperCase() }) : Flags.string({ description, helpGroup: provider.name.toUpperCase() });
  }
  return flags;
}

export default class Ship extends AimCommand {
  static override summary = 'Build an image for a target and publish it through a provider (built-in: vmware; more from plugins).';
  static override description = `The provider comes first. Its options are flags (--datastore-url …) or --opt name=value; \`aim provider list\` shows every provider and its options. Credentials come from the environment (vmware: AIM_VMWARE_USER, AIM_VMWARE_PASSWORD), never from flags.

The provider checks options, credentials and tools before any work; artifacts are built into --out (a new or empty directory). On failure or Ctrl-C the built artifacts are removed and the provider removes what it uploaded (no automatic retry).`;
  static override examples = [
    '<%= config.bin %> ship vmware slim/nginx:1 --out build/vmware',
    '<%= config.bin %> ship vmware slim/nginx:1 --out build/vmware --datastore-url "https://esxi.lan/folder/aim?dcPath=ha-datacenter&dsName=datastore1" --insecure',
    '<%= config.bin %> ship vmware slim/nginx:1 --out build/vmware --datastore-url "https://vc.lan/folder/images?dcPath=DC1&dsName=ds1" --dry-run --json',
    '<%= config.bin %> ship localdir slim/nginx:1 --out build/l --opt dir=/srv/images   # a plugin provider',
  ];
  static override args = {
    provider: Args.string({ description: 'provider name (aim provider list)', required: true }),
    image: Args.string({ description: 'image (name:tag or id)', required: true }),
  };
  static override flags = {
    out: Flags.string({ char: 'o', description: 'new or empty directory for the built artifacts', required: true }),
    opt: Flags.string({ description: 'provider option name=value (repeatable)', multiple: true, default: [] }),
    'dry-run': Flags.boolean({ description: 'show the plan (builds, uploads) and do nothing' }),
  };

  async run(): Promise<ShipResult> {
    const reporter = this.reporter();
    const first = this.argv[0];
    // The provider is the first argument: its declared options become flags of this parse.
    let provider: Provider | undefined;
    let source = 'built-in';
    if (first && !first.startsWith('-')) ({ provider, source } = await findProvider(first, await allProviders(this.config, reporter)));
    const extra = provider ? providerFlags(provider, shipOwnFlags()) : {};
    const { args, flags } = await this.parse({ args: Ship.args, flags: { ...Ship.flags, ...extra }, baseFlags: AimCommand.baseFlags, enableJsonFlag: true, strict: true });
    if (!provider) ({ provider, source } = await findProvider(args.provider, await allProviders(this.config, reporter)));

    const values = flags as unknown as Record<string, string | boolean | undefined>;
    const options = givenOptions(flags.opt, Object.fromEntries(Object.keys(extra).map((name) => [name, values[name]])));
    const repo = await this.repository(flags.repo);
    const result = await shipImage(
      repo,
      provider,
      source,
      { imageId: await resolveImage(repo, args.image), imageRef: args.image, outDir: flags.out, options, dryRun: flags['dry-run'], signal: this.abortSignal() },
      reporter,
    );
    if (result.dryRun) {
      this.log(`plan: ship ${shortId(result.imageId)} through ${result.provider} (${result.source})`);
      for (const b of result.plan.builds) this.log(`  build ${b.format} → ${b.dir}/`);
      for (const u of result.plan.uploads) this.log(`  upload ${u.file} → ${u.destination}`);
      for (const n of result.plan.notes) this.log(`  note: ${n}`);
      return result;
    }
    this.log(table(['ARTIFACT', 'SIZE'], result.artifacts.map((a) => [a.path, formatBytes(a.bytes)])));
    for (const p of result.published) this.log(`published ${p.kind}: ${p.location}`);
    this.log(`shipped ${shortId(result.imageId)} through ${result.provider} in ${result.seconds.toFixed(1)} s`);
    return result;
  }
}

import { Args, Flags, type Interfaces } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { allProviders } from '../cli/plugin-providers.js';
import { printShipResult } from '../cli/ship-output.js';
import { resolveImage } from '../core/query/resolve.js';
import { optionSpecs, type OptionsSchema } from '../core/ship/options.js';
import type { AnyProvider } from '../core/ship/provider.js';
import { findProvider } from '../core/ship/registry.js';
import { givenOptions, shipImage, type ShipResult } from '../core/ship/ship-image.js';
import { loadTemplate } from '../core/template/index.js';

type FlagMap = Interfaces.FlagInput;

/** Flag names of `aim ship` itself: a provider option with one of these names is given with --opt only. */
export function shipOwnFlags(): Set<string> {
  return new Set([...Object.keys(Ship.flags), ...Object.keys(AimCommand.baseFlags), 'json', 'help']);
}

/**
 * A provider's options (from its zod schema) as flags. No oclif defaults: an absent flag leaves
 * the environment, then the template, then the schema's default to decide.
 */
export function optionFlags(providerName: string, schema: OptionsSchema, taken: Set<string>): FlagMap {
  const flags: FlagMap = {};
  for (const o of optionSpecs(schema)) {
    if (taken.has(o.name)) continue;
    const description = `${providerName}: ${o.description}${o.env ? ` [env: ${o.env}]` : ''}`;
    const common = { description, helpGroup: providerName.toUpperCase() };
    if (o.type === 'boolean' && !o.multiple) flags[o.name] = Flags.boolean(common);
    else if (o.multiple) flags[o.name] = Flags.string({ ...common, multiple: true, ...(o.choices ? { options: o.choices } : {}) });
    else flags[o.name] = Flags.string({ ...common, ...(o.choices ? { options: o.choices } : {}) });
  }
  return flags;
}

const providerFlags = (provider: AnyProvider, taken: Set<string>): FlagMap => optionFlags(provider.name, provider.options, taken);

export default class Ship extends AimCommand {
  static override summary = 'Build an image for a target and publish it through a provider (built-in: aws, vmware; more from plugins).';
  static override description = `The provider comes first. Its options are flags (--datastore-url …), --opt name=value, environment variables, or the ship.<provider> section of a --template; \`aim provider list\` shows every provider and its options. Credentials come from the environment (vmware: AIM_VMWARE_USER, AIM_VMWARE_PASSWORD; aws: the AWS SDK's chain, see aim ship aws --help), never from flags.

Without --out the builds go to aim's scratch space in the repository (ship-builds/<publication>) and are removed once the publication is published; with --out DIR they stay in DIR. vmware without --datastore-url builds only local files, so it needs --out.

Every ship is a publication in the repository's journal (aim ship list), keyed by image, provider and target: shipping the same thing again reports the existing publication instead of making a second one, and two runs at once are serialised. Every resource is journalled as it is created. On failure the publication is rolled back; on Ctrl-C or SIGTERM it stops and keeps what it made: \`aim ship resume <publication>\` finishes it, \`aim ship rm <publication>\` removes it.`;
  static override examples = [
    '<%= config.bin %> ship aws slim/nginx:1 --region eu-west-1   # an AMI (aim ship aws --help)',
    '<%= config.bin %> ship vmware slim/nginx:1 --out build/vmware   # VMDK + OVA, kept in build/vmware',
    '<%= config.bin %> ship vmware slim/nginx:1 --datastore-url "https://esxi.lan/folder/aim?dcPath=ha-datacenter&dsName=datastore1" --insecure',
    '<%= config.bin %> ship vmware slim/nginx:1 --datastore-url "https://vc.lan/folder/images?dcPath=DC1&dsName=ds1" --dry-run --json',
    '<%= config.bin %> ship vmware slim/nginx:1 --template examples/nginx/template.yaml   # options from its ship.vmware section',
    '<%= config.bin %> ship localdir slim/nginx:1 --opt dir=/srv/images   # a plugin provider',
  ];
  static override args = {
    provider: Args.string({ description: 'provider name (aim provider list)', required: true }),
    image: Args.string({ description: 'image (name:tag or id)', required: true }),
  };
  static override flags = {
    out: Flags.string({ char: 'o', description: 'new or empty directory to keep the built artifacts in [default: aim’s scratch space in the repository, emptied once published]' }),
    opt: Flags.string({ description: 'provider option name=value (repeatable; a list option takes it several times)', multiple: true, default: [] }),
    template: Flags.string({ description: 'image template whose ship.<provider> section gives option values (flags and environment win)' }),
    'dry-run': Flags.boolean({ description: 'observe and show the plan (JSON with --json); change nothing' }),
  };

  async run(): Promise<ShipResult> {
    const reporter = this.reporter();
    const first = this.argv[0];
    // The provider is the first argument: its declared options become flags of this parse.
    let provider: AnyProvider | undefined;
    let source = 'built-in';
    if (first && !first.startsWith('-')) ({ provider, source } = await findProvider(first, await allProviders(this.config, reporter)));
    const extra = provider ? providerFlags(provider, shipOwnFlags()) : {};
    const { args, flags } = await this.parse({ args: Ship.args, flags: { ...Ship.flags, ...extra }, baseFlags: AimCommand.baseFlags, enableJsonFlag: true, strict: true });
    if (!provider) ({ provider, source } = await findProvider(args.provider, await allProviders(this.config, reporter)));

    const values = flags as unknown as Record<string, string | boolean | string[] | undefined>;
    const options = givenOptions(flags.opt, Object.fromEntries(Object.keys(extra).map((name) => [name, values[name]])));
    const fileOptions = flags.template ? (await loadTemplate(flags.template)).template.ship?.[provider.name] : undefined;
    const repo = await this.repository(flags.repo);
    const result = await shipImage(
      repo,
      provider,
      source,
      { imageId: await resolveImage(repo, args.image), imageRef: args.image, outDir: flags.out, options, fileOptions, dryRun: flags['dry-run'], signal: this.abortSignal() },
      reporter,
    );
    printShipResult(this, result);
    return result;
  }
}

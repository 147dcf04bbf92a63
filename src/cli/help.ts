import { Help, type Command } from '@oclif/core';
import { silentReporter } from '../lib/reporter.js';
import { flagUsage, optionSpecs } from '../core/ship/options.js';
import { findProvider } from '../core/ship/registry.js';
import { allProviders } from './plugin-providers.js';

/**
 * oclif's help, plus what only exists at run time: `aim ship --help` lists every provider's
 * options (built-in and from installed plugins), which become flags of `aim ship <provider>`.
 */
export default class AimHelp extends Help {
  override async showCommandHelp(command: Command.Loadable): Promise<void> {
    await super.showCommandHelp(command);
    if (command.id !== 'ship') return;
    const { shipOwnFlags } = await import('../commands/ship.js');
    const own = shipOwnFlags();
    const entries = await allProviders(this.config, silentReporter);
    const rows: [string, string][] = [];
    for (const entry of entries) {
      let provider;
      try {
        ({ provider } = await findProvider(entry.name, entries));
      } catch (e) {
        rows.push([`${entry.name} (${entry.source})`, `cannot be loaded: ${(e as Error).message}`]);
        continue;
      }
      rows.push([`${provider.name} (${entry.source})`, provider.summary]);
      for (const o of optionSpecs(provider.options)) {
        // an option named like one of ship's own flags can only be given with --opt
        const flag = own.has(o.name) ? `  --opt ${o.name}=${flagUsage(o).split(' ')[1] ?? 'true|false'}` : `  ${flagUsage(o)}`;
        const extra = [o.required ? 'required' : '', o.multiple ? 'repeatable' : '', o.default !== undefined && o.default !== false && !(Array.isArray(o.default) && o.default.length === 0) ? `default: ${String(o.default)}` : ''].filter(Boolean);
        rows.push([flag, `${o.description}${extra.length ? ` (${extra.join(', ')})` : ''}${o.env ? ` [env: ${o.env}]` : ''}`]);
      }
    }
    this.log(this.section('PROVIDERS AND THEIR OPTIONS', rows));
    this.log('');
  }
}

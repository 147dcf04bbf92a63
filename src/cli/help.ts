import { Help, type Command } from '@oclif/core';
import { silentReporter } from '../lib/reporter.js';
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
      for (const o of provider.options) {
        const value = o.type === 'string' ? 'VALUE' : 'true|false';
        // an option named like one of ship's own flags can only be given with --opt
        const flag = own.has(o.name) ? `  --opt ${o.name}=${value}` : `  --${o.name}${o.type === 'string' ? ' VALUE' : ''}`;
        rows.push([flag, `${o.description}${o.required ? ' (required)' : ''}${o.env ? ` [env: ${o.env}]` : ''}`]);
      }
    }
    this.log(this.section('PROVIDERS AND THEIR OPTIONS', rows));
    this.log('');
  }
}

import { Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { bootEventsTable } from '../../cli/pxe-output.js';
import type { PxeBootEvent } from '../../core/model/pxe.js';
import { parseSelector } from '../../core/pxe/selector.js';
import { ConfigError } from '../../lib/errors.js';

export default class PxeEvents extends AimCommand {
  static override summary = 'What machines fetched from aim pxe serve: boot scripts, kernels, initrds and iPXE by TFTP, with bytes and whether it completed.';
  static override description = `Recorded by aim pxe serve in the catalog as each response ends (the newest ${100_000} are kept).
A machine is named by the MAC or UUID its boot request carried; TFTP transfers by address only.`;
  static override examples = ['<%= config.bin %> pxe events', '<%= config.bin %> pxe events --machine 52:54:00:12:34:56 --limit 20', '<%= config.bin %> pxe events --after 120 --json'];
  static override flags = {
    machine: Flags.string({ description: 'only this machine (its MAC or UUID)' }),
    limit: Flags.integer({ description: 'the newest this many', default: 50, min: 1, max: 100_000 }),
    after: Flags.integer({ description: 'only events after this sequence number (seq in --json)', min: 0 }),
  };

  async run(): Promise<{ events: PxeBootEvent[] }> {
    const { flags } = await this.parse(PxeEvents);
    let machine: string | undefined;
    if (flags.machine !== undefined) {
      const s = parseSelector(flags.machine);
      if (s.kind !== 'mac' && s.kind !== 'uuid') throw new ConfigError(`--machine ${flags.machine}: give a MAC or a UUID`);
      machine = s.key;
    }
    const repo = await this.repository(flags.repo);
    const events = await repo.catalog.pxe.events({ limit: flags.limit, ...(machine ? { machine } : {}), ...(flags.after === undefined ? {} : { after: flags.after }) });
    this.log(bootEventsTable(events));
    return { events };
  }
}

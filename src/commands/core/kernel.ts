import { Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { formatBytes, shortId } from '../../cli/format.js';
import { buildKernelCore, type KernelCoreResult } from '../../core/kernel/kernel-core.js';

export default class CoreKernel extends AimCommand {
  static override summary = 'Import Debian\'s kernel (vmlinuz and modules) as a kernel core image for bootable builds.';
  static override description = `Downloads the linux-image package linux-image-amd64 points at, with this machine's apt
sources (re-aimed at --suite), unpacks it, indexes its modules with depmod and imports the tree
as an image. aim build takes the kernel from there (--kernel) when an image has none of its own.`;
  static override examples = [
    '<%= config.bin %> core kernel',
    '<%= config.bin %> core kernel --suite bookworm --tag core/kernel:bookworm --deb-dir ~/.cache/aim/kernel --json',
  ];
  static override flags = {
    suite: Flags.string({ description: 'Debian suite to take the kernel from', default: 'bookworm' }),
    tag: Flags.string({ char: 't', description: 'name:tag for the kernel core image', default: 'core/kernel:bookworm' }),
    'deb-dir': Flags.string({ description: 'keep the downloaded .deb here and reuse it next time' }),
  };

  async run(): Promise<KernelCoreResult> {
    const { flags } = await this.parse(CoreKernel);
    const repo = await this.repository(flags.repo);
    const result = await buildKernelCore(repo, { suite: flags.suite, tag: flags.tag, debDir: flags['deb-dir'] }, this.reporter());
    this.log(`${result.created ? 'imported' : 'already present:'} ${shortId(result.id)} ${result.tags.join(' ')}: kernel ${result.kernelVersion}, ${result.fileCount} files, ${formatBytes(result.totalSize)}`);
    return result;
  }
}

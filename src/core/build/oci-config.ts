import type { ElfFacts } from '../analyze/elf.js';
import type { Entry } from '../model/entry.js';

/** ELF machine (as the analyzer names it) → OCI/Go architecture name. */
const OCI_ARCH: Record<string, string> = {
  'x86-64': 'amd64',
  aarch64: 'arm64',
  i386: '386',
  arm: 'arm',
  riscv: 'riscv64',
  s390: 's390x',
  loongarch: 'loong64',
};

function ociArch(facts: ElfFacts): string | undefined {
  if (facts.machine === 'ppc64') return facts.endian === 'le' ? 'ppc64le' : 'ppc64';
  if (facts.machine === 'mips') return `${facts.class === 64 ? 'mips64' : 'mips'}${facts.endian === 'le' ? 'le' : ''}`;
  return OCI_ARCH[facts.machine];
}

/**
 * The image's architecture from the ELF facts of its executables (the most common machine among
 * executables and shared objects that have a program interpreter or are executables), or undefined
 * when the image holds no ELF object aim can name.
 */
export function architectureFromElf(entries: Entry[], elf: Map<string, unknown>): string | undefined {
  const votes = new Map<string, number>();
  for (const e of entries) {
    if (e.type !== 'file' || !e.blob) continue;
    const f = elf.get(e.blob) as ElfFacts | undefined;
    if (!f || (f.type !== 'exec' && f.type !== 'dyn')) continue;
    const arch = ociArch(f);
    if (arch) votes.set(arch, (votes.get(arch) ?? 0) + (f.interp ? 2 : 1));
  }
  let best: string | undefined;
  for (const [arch, n] of votes) if (best === undefined || n > votes.get(best)! || (n === votes.get(best) && arch < best)) best = arch;
  return best;
}

/** Node's process.arch → OCI architecture (for images without ELF objects). */
export function hostArchitecture(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386', arm: 'arm', riscv64: 'riscv64', s390x: 's390x', ppc64: 'ppc64le', loong64: 'loong64' };
  return map[process.arch] ?? process.arch;
}

/** Fixed creation time: the artifact depends on the image only (the epoch, as reproducible builds use). */
export const OCI_CREATED = '1970-01-01T00:00:00Z';

/** The OCI image configuration for a single-layer image. */
export function imageConfig(options: { architecture: string; diffId: string; imageId: string; entrypoint?: string[] }): Record<string, unknown> {
  const config: Record<string, unknown> = { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] };
  if (options.entrypoint) config.Cmd = options.entrypoint;
  config.Labels = { 'org.opencontainers.image.revision': options.imageId };
  return {
    created: OCI_CREATED,
    architecture: options.architecture,
    os: 'linux',
    config,
    rootfs: { type: 'layers', diff_ids: [options.diffId] },
    history: [{ created: OCI_CREATED, created_by: `aim build --format oci (image ${options.imageId})` }],
  };
}

import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A stand-in iPXE tree for fast tests of everything around iPXE's build: its Makefile builds any
 * bin/… or bin-x86_64-efi/… goal as the embedded script followed by the goal's name (so a test
 * can see which script went into which file), prints a `  [BUILD]` line as iPXE's build does, and
 * appends each invocation to src/bin/invocations.txt (a build output, like iPXE's own). Goals are
 * always remade. util/genfsimg writes its inputs into its output.
 * `recipe` replaces the Makefile's recipe (failures, slow builds).
 */
export async function fakeIpxeTree(top: string, recipe?: string): Promise<string> {
  for (const d of ['src/include/ipxe', 'src/arch/x86', 'src/util']) await mkdir(join(top, d), { recursive: true });
  await writeFile(join(top, 'src/include/ipxe/version.h'), '/* fake */\n');
  const build = recipe ?? [
    '\t@mkdir -p $(dir $@)',
    '\t@echo "  [BUILD] $@"',
    '\t@{ cat $(EMBED); echo "target $@ git=$(GITVERSION) epoch=$$SOURCE_DATE_EPOCH"; } > $@',
    '\t@echo "built $@ $(filter -j%,$(MAKEFLAGS))" >> bin/invocations.txt',
  ].join('\n');
  await writeFile(join(top, 'src/Makefile'), [
    'all:',
    '$(shell mkdir -p bin && echo "goals=$(MAKECMDGOALS) embed=$(EMBED) dir=$(CURDIR)" >> bin/invocations.txt)',
    'FORCE:',
    'bin/%: FORCE',
    build,
    'bin-x86_64-efi/%: FORCE',
    build,
    '',
  ].join('\n'));
  await writeFile(join(top, 'src/util/genfsimg'), '#!/bin/sh\n# fake: -o OUT inputs…\nout="$2"; shift 2; cat "$@" > "$out"; echo "media $out" >> "$out"\n');
  await chmod(join(top, 'src/util/genfsimg'), 0o755);
  return top;
}

import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { renderUpdate } from '../cli/update-output.js';
import { updateImage, type UpdateResult } from '../core/lifecycle/update-image.js';

export default class Update extends AimCommand {
  static override summary = 'Make the next version of an image with Debian packages replaced, and slim it again.';
  static override description = `IMAGE is a gold image (its slim images are made again, the newest of each profile) or a slim
image (its gold is updated, then this slim image made again). --with takes .deb files, folders of
them, or an apt Packages index whose .debs lie where its Filename fields say (or beside it);
packages newer than the installed ones are taken.
The new gold is the old one with the packages' files replaced, files they no longer ship removed,
locally changed conffiles kept (the package's version beside them as .dpkg-dist) and dpkg's
database updated as dpkg does. Maintainer scripts and triggers that run during the upgrade are
listed; when there are any, the image's own dpkg installs the packages on a copy in the profile
sandbox, and an update whose scripts change files is refused (E_UPDATE_SCRIPTS, exit 4) unless
--accept-scripts, which keeps the tree dpkg and the scripts left.
The slim images are made with the same profile and rules (--reprofile traces the profile's
workloads again on the new gold first). Numbered tags move on (gold/nginx:1 → gold/nginx:2) unless
--tag/--slim-tag are given. With --out, the artifacts built of the previous version are built of
the new one. aim image history shows the lineage.`;
  static override examples = [
    '<%= config.bin %> update gold/nginx:1 --with ./libssl3_3.0.15-1~deb12u1_amd64.deb',
    '<%= config.bin %> update slim/nginx:1 --with ./debs/ --out build/',
    '<%= config.bin %> update gold/nginx:1 --with /srv/mirror/dists/bookworm-security/main/binary-amd64/Packages.xz --json',
    '<%= config.bin %> update gold/app:3 --with ./app-tools_2.1_all.deb --accept-scripts --reprofile --tag gold/app:4',
  ];
  static override args = { image: Args.string({ description: 'gold or slim image (name:tag or id)', required: true }) };
  static override flags = {
    with: Flags.string({ char: 'w', description: '.deb, folder of .debs, or Packages index (repeatable)', multiple: true, required: true }),
    'accept-scripts': Flags.boolean({ description: 'run the maintainer scripts through dpkg in the sandbox and keep what they change' }),
    reprofile: Flags.boolean({ description: 'trace the profiles\' workloads again on the new gold before slimming' }),
    tag: Flags.string({ char: 't', description: 'name:tag for the new gold (repeatable) [default: the next number of each numbered tag]', multiple: true }),
    'slim-tag': Flags.string({ description: 'name:tag for the new slim image (repeatable) [default: the next number]', multiple: true }),
    out: Flags.string({ char: 'o', description: 'directory to build the new version\'s artifacts in (those built of the previous version)' }),
  };

  async run(): Promise<UpdateResult> {
    const { args, flags } = await this.parse(Update);
    const repo = await this.repository(flags.repo);
    const result = await updateImage(
      repo,
      {
        image: args.image,
        with: flags.with,
        acceptScripts: flags['accept-scripts'],
        reprofile: flags.reprofile,
        tags: flags.tag,
        slimTags: flags['slim-tag'],
        artifacts: flags.out === undefined ? undefined : { outDir: flags.out },
        signal: this.abortSignal(),
      },
      this.reporter(),
    );
    this.log(renderUpdate(result));
    return result;
  }
}

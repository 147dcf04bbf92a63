/**
 * Publications: what `aim ship` published or was publishing, and every resource it created, as the
 * catalog's journal keeps them (src/core/repository/catalog-publications.ts).
 */

/** A resource's life in the journal: `pending` is written before the call that creates it. */
export type ResourceState = 'pending' | 'created' | 'removed';

/** One thing a publication created (or was creating): an uploaded file, a snapshot, an AMI, an S3 object, an import task, a build. */
export interface JournalResource {
  /** Order of creation within the publication (removal goes newest first). */
  seq: number;
  /** "datastore file", "snapshot", "ami", "s3 object", "import task"; "build" is aim's own (local artifacts). */
  kind: string;
  /** The provider's id: a datastore path, snap-…, ami-…, an S3 key; before creation whatever names it (a client token). */
  id: string;
  /** Region, datastore or bucket. */
  location?: string;
  state: ResourceState;
  /** Anything JSON the provider needs to resume or remove it: size, sha256, URL, progress. */
  data: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/**
 * - `applying`: a run holds it (or held it and was killed: shown as interrupted once its owner is gone)
 * - `published`: apply finished
 * - `interrupted`: stopped by Ctrl-C/SIGTERM or a killed process; `aim ship resume` or `aim ship rm`
 * - `failed`: apply failed and its resources were rolled back (those that could not be are still listed)
 * - `removing`: `aim ship rm` runs (or was stopped; run it again)
 * - `removed`: everything it held is gone
 */
export type PublicationState = 'applying' | 'published' | 'interrupted' | 'failed' | 'removing' | 'removed';

/** The run that holds a publication: one at a time per idempotency key. */
export interface LeaseOwner {
  pid: number;
  host: string;
  /** Random per run: tells two runs of one process apart. */
  token: string;
}

export interface PublicationRecord {
  /** Short random hex id, what `aim ship resume|rm` take. */
  id: string;
  /** The idempotency key: sha256 of (image id, provider, target). One live publication per key. */
  key: string;
  provider: string;
  /** "built-in" or the plugin that gave the provider. */
  source: string;
  imageId: string;
  imageRef: string;
  /** The provider's canonical target ("https://esxi/folder/aim?…", "eu-west-1"). */
  target: string;
  state: PublicationState;
  /** The options in their input form, without secret ones: resume validates them again. */
  options: Record<string, unknown>;
  /** The last plan applied (JSON). */
  plan?: unknown;
  /** Where builds went, and whether aim created that directory (then rm removes it when empty). */
  outDir?: string;
  outDirCreated: boolean;
  /** What apply returned. */
  published: unknown[];
  error?: { code: string; message: string };
  owner?: LeaseOwner;
  createdAt: string;
  updatedAt: string;
}

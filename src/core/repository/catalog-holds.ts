import type Database from 'better-sqlite3';
import type { ChannelAction } from '../model/channel.js';
import type { HoldData } from './holds.js';

/**
 * Reads what the hold rules (holds.ts) need from the catalog's tables, synchronously, so that the
 * transaction removing an image decides on the same snapshot it deletes from. The tables are those
 * of catalog-channels.ts, catalog-pxe.ts and catalog-publications.ts.
 */
export function readHoldData(db: Database.Database): HoldData {
  const channels = (db.prepare('SELECT name, image_id FROM channels ORDER BY name').all() as { name: string; image_id: string }[]).map((c) => ({ name: c.name, imageId: c.image_id, amis: [], history: [] }) as HoldData['channels'][number]);
  const byName = new Map(channels.map((c) => [c.name, c]));
  for (const a of db.prepare('SELECT channel, region, ami_id, image_id FROM channel_amis ORDER BY channel, region').all() as { channel: string; region: string; ami_id: string; image_id: string }[]) {
    byName.get(a.channel)?.amis.push({ region: a.region, amiId: a.ami_id, imageId: a.image_id });
  }
  const named = new Set<string>();
  for (const h of db.prepare('SELECT channel, action, image_id, image_ref, from_image_id FROM channel_history ORDER BY seq').all() as { channel: string; action: string; image_id: string; image_ref: string; from_image_id: string | null }[]) {
    byName.get(h.channel)?.history.push({ action: h.action as ChannelAction, imageId: h.image_id, imageRef: h.image_ref, ...(h.from_image_id !== null ? { fromImageId: h.from_image_id } : {}) });
    named.add(h.image_id);
  }
  const latest = new Map<string, { passed: boolean }>();
  const verdict = db.prepare('SELECT passed FROM qualifications WHERE image_id = ? ORDER BY finished_at DESC, rowid DESC LIMIT 1').pluck();
  for (const id of named) {
    const passed = verdict.get(id) as number | undefined;
    if (passed !== undefined) latest.set(id, { passed: passed === 1 });
  }
  const images = new Set(db.prepare('SELECT id FROM images').pluck().all() as string[]);
  const assignments = (
    db.prepare("SELECT selector, image_id, json_extract(boot, '$.kernel.imageId') AS kernel_id, channel FROM pxe_assignments ORDER BY kind, selector").all() as {
      selector: string;
      image_id: string;
      kernel_id: string | null;
      channel: string | null;
    }[]
  ).map((a) => ({
    selector: a.selector,
    imageId: a.image_id,
    ...(a.kernel_id !== null ? { kernelImageId: a.kernel_id } : {}),
    ...(a.channel !== null ? { channel: a.channel } : {}),
  }));
  const publications = (
    db.prepare("SELECT id, provider, target, state, image_id FROM publications WHERE state <> 'removed' ORDER BY created_at, id").all() as { id: string; provider: string; target: string; state: string; image_id: string }[]
  ).map((p) => ({ id: p.id, provider: p.provider, target: p.target, state: p.state, imageId: p.image_id }));
  return { channels, latest, images, assignments, publications };
}

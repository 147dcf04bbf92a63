import { describe, expect, it } from 'vitest';
import type { AmiInfo } from '../../providers/aws/ami.js';
import type { AwsObserved } from '../../providers/aws/observe.js';
import { awsOptions } from '../../providers/aws/options.js';
import { planAws } from '../../providers/aws/plan.js';

const image = { id: 'a'.repeat(64), ref: 'slim/web:1' };
const ami = (id: string, region: string, tags: Record<string, string>): AmiInfo => ({ id, name: 'web-aaaaaaaaaaaa', state: 'available', region, created: '', snapshotIds: [`snap-${id}`], rootSnapshotId: `snap-${id}`, tags, public: false });
const observed = (existing: AmiInfo | undefined, copies: AwsObserved['copies'] = {}): AwsObserved => ({ region: 'eu-west-1', lineage: 'web', amiName: 'web-aaaaaaaaaaaa', ...(existing ? { existing } : {}), copies, launchPermissions: [] });

describe('planAws', () => {
  it('a first ship builds, uploads and registers', () => {
    const plan = planAws(image, observed(undefined), awsOptions.parse({ region: 'eu-west-1' }));
    expect(plan.steps.map((s) => s.action)).toEqual(['build', 'upload', 'register']);
    expect(plan.upToDate).toBeUndefined();
  });

  it('this ship’s AMI with every tag is up to date; one lacking a tag given now (or its copy) is tagged again, nothing uploaded', () => {
    const options = awsOptions.parse({ region: 'eu-west-1', tag: ['team=web'], 'copy-to-regions': ['us-east-1'] });
    const done = planAws(image, observed(ami('ami-1', 'eu-west-1', { team: 'web' }), { 'us-east-1': ami('ami-2', 'us-east-1', { team: 'web' }) }), options);
    expect(done.upToDate).toBe(true);
    expect(done.steps).toEqual([]);
    const later = planAws(image, observed(ami('ami-1', 'eu-west-1', { team: 'old' }), { 'us-east-1': ami('ami-2', 'us-east-1', {}) }), options);
    expect(later.upToDate).toBeUndefined();
    expect(later.steps.map((s) => `${s.action} ${s.subject}`)).toEqual(['tag ami-1, snap-ami-1', 'tag ami-2, snap-ami-2']);
    expect(later.retag).toEqual([
      { region: 'eu-west-1', ids: ['ami-1', 'snap-ami-1'] },
      { region: 'us-east-1', ids: ['ami-2', 'snap-ami-2'] },
    ]);
    expect(later.existingAmi).toBe('ami-1');
  });
});

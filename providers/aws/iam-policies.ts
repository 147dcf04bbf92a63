/**
 * The IAM policies `aim ship aws` needs, as AWS's VM Import and EBS direct API guides give them:
 * printed in errors, shown in help and examples/aws-nginx/README.md.
 */

const json = (doc: unknown) => JSON.stringify(doc, null, 2);

/** The actions aim calls, by path. */
export const AIM_ACTIONS = {
  common: ['ec2:DescribeRegions', 'ec2:DescribeImages', 'ec2:DescribeSnapshots', 'ec2:RegisterImage', 'ec2:DeregisterImage', 'ec2:DeleteSnapshot', 'ec2:CreateTags', 'ec2:CopyImage', 'ec2:ModifyImageAttribute', 'ec2:DescribeImageAttribute'],
  ebs: ['ebs:StartSnapshot', 'ebs:PutSnapshotBlock', 'ebs:CompleteSnapshot'],
  importSnapshot: ['ec2:ImportSnapshot', 'ec2:DescribeImportSnapshotTasks', 'ec2:CancelImportTask', 's3:PutObject', 's3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts', 's3:ListBucket', 'iam:PassRole'],
} as const;

/**
 * The identity policy for the user or role that runs aim: the AMI and EBS direct statements, and
 * with a bucket those of --via import-snapshot (its bucket and the service role it passes).
 */
export function aimPolicy(bucket?: string, roleName = 'vmimport'): string {
  const statements: unknown[] = [
    { Sid: 'AimAmis', Effect: 'Allow', Action: [...AIM_ACTIONS.common], Resource: '*' },
    { Sid: 'AimEbsDirect', Effect: 'Allow', Action: [...AIM_ACTIONS.ebs], Resource: '*' },
  ];
  if (bucket) {
    statements.push(
      { Sid: 'AimImportSnapshot', Effect: 'Allow', Action: ['ec2:ImportSnapshot', 'ec2:DescribeImportSnapshotTasks', 'ec2:CancelImportTask'], Resource: '*' },
      { Sid: 'AimImportBucket', Effect: 'Allow', Action: ['s3:PutObject', 's3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts', 's3:ListBucket'], Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`] },
      { Sid: 'AimPassVmimport', Effect: 'Allow', Action: 'iam:PassRole', Resource: `arn:aws:iam::*:role/${roleName}` },
    );
  }
  return json({ Version: '2012-10-17', Statement: statements });
}

/** The trust and role policies of VM Import's service role (AWS VM Import/Export user guide, "Required service role"). */
export function vmimportPolicies(bucket: string): { trust: string; role: string } {
  return {
    trust: json({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'vmie.amazonaws.com' }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'sts:Externalid': 'vmimport' } } }],
    }),
    role: json({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: ['s3:GetBucketLocation', 's3:GetObject', 's3:ListBucket'], Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`] },
        { Effect: 'Allow', Action: ['ec2:ModifySnapshotAttribute', 'ec2:CopySnapshot', 'ec2:RegisterImage', 'ec2:Describe*'], Resource: '*' },
      ],
    }),
  };
}

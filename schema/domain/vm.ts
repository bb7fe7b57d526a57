import { z } from '@hono/zod-openapi';
import { Cidr, Ipv4, Name, Priority } from './common';
import { DEFAULT_HEALTH_URL, deviceNameProblem, healthUrlParses } from './ec2-rules';
import { Script } from './script';
import { SecretRef } from './secret';

/** Minutes Windows validation waits for EC2 status checks ok and console output (plan default or per VM). */
export const GuestReadyMinutes = z.number().int().min(1).max(240);

export const Disk = z
  .object({
    name: Name,
    sourceRef: z
      .string()
      .min(1)
      .max(4096)
      .describe(
        'file sites: path of the raw image or block device on the node; aws sites: the source volume id',
      ),
    sizeBytes: z
      .number()
      .int()
      .positive()
      .max(64 * 2 ** 40),
    deviceName: z
      .string()
      .regex(/^\/dev\/[a-z0-9]+$/, 'must be a device name like /dev/sda1 or /dev/xvdb')
      .superRefine((v, ctx) => {
        const problem = /^\/dev\/[a-z0-9]+$/.test(v) ? deviceNameProblem(v) : undefined;
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .describe(
        'EC2 device name: the boot disk on /dev/sda1 or /dev/xvda, data disks on /dev/sd[b-z] or /dev/xvd[b-z]',
      ),
    format: z
      .enum(['raw', 'qcow2'])
      .default('raw')
      .describe(
        "file sites: `raw` (an image or block device; changed blocks found by hashing every block) or `qcow2` (changed blocks from the image's persistent dirty bitmaps `lifeboat-N`; needs qemu-utils and libnbd-bin on the node)",
      ),
  })
  .strict()
  .openapi('Disk');

const SubnetId = z.string().regex(/^subnet-[0-9a-f]+$/, 'must be a subnet id like subnet-0abc123');
const SecurityGroupId = z.string().regex(/^sg-[0-9a-f]+$/, 'must be a security group id like sg-0abc123');

/** Network settings of a recovered VM; `test` overrides apply in test recovery. */
const NetworkFields = {
  subnetId: SubnetId.optional(),
  subnetCidr: Cidr.optional().describe(
    'CIDR of the subnet, when known: the private IP is checked against it',
  ),
  privateIp: Ipv4.optional(),
  securityGroupIds: z.array(SecurityGroupId).max(16).optional(),
  publicIp: z.boolean().optional(),
};
export const NetworkSettings = z
  .object({ ...NetworkFields, test: z.object(NetworkFields).strict().optional() })
  .strict()
  .openapi('NetworkSettings');

const checkTiming = {
  timeoutSeconds: z.number().int().min(1).max(3600).default(300),
  intervalSeconds: z.number().int().min(1).max(600).default(10),
};
export const HealthCheck = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('none') }).strict(),
    z.object({ type: z.literal('ec2-status'), ...checkTiming }).strict(),
    z
      .object({
        type: z.literal('tcp'),
        host: z
          .string()
          .min(1)
          .max(255)
          .optional()
          .describe(
            "Defaults to the recovered instance's private IP; a fixed host is probed as is (in a test recovery it must not be a production address of the plan)",
          ),
        port: z.number().int().min(1).max(65535),
        ...checkTiming,
      })
      .strict(),
    z
      .object({
        type: z.literal('http'),
        url: z
          .string()
          .max(2048)
          .refine(
            healthUrlParses,
            'must be an http(s) URL; it may use {privateIp} or {publicIp} for the recovered instance',
          )
          .default(DEFAULT_HEALTH_URL)
          .describe(
            "Probed URL; {privateIp} and {publicIp} are replaced by the recovered instance's addresses (default http://{privateIp}/)",
          ),
        expectedStatus: z.number().int().min(100).max(599).default(200),
        ...checkTiming,
      })
      .strict(),
  ])
  .openapi('HealthCheck');

export const Vm = z
  .object({
    name: Name,
    sourceRef: z.string().min(1).max(1024).describe('The VM in the source inventory (instance id, VM path…)'),
    guestOs: z.enum(['linux', 'windows']),
    disks: z.array(Disk).min(1).max(64),
    bootOrder: z.number().int().min(0).max(1000).default(1).describe('Lower boots first; equal = same group'),
    bootDelaySeconds: z.number().int().min(0, 'must not be negative').max(3600).default(0),
    preScript: Script.optional(),
    postScript: Script.optional(),
    guestCredentials: SecretRef.optional().describe(
      'The guest OS credentials, by reference: the secret holds JSON {"username","password"} or a bare password. Resolved only for the VM post-script (its stdin `credentials`)',
    ),
    network: NetworkSettings.default({}),
    instanceType: z
      .string()
      .regex(/^[a-z0-9]+[a-z0-9-]*\.[a-z0-9]+$/, 'must be an instance type like t3.medium')
      .optional(),
    healthCheck: HealthCheck.default({ type: 'none' }),
    bootMode: z
      .enum(['bios', 'uefi'])
      .default('bios')
      .describe('Firmware the boot disk was installed for: passed to RegisterImage as BootMode'),
    architecture: z
      .enum(['x86_64', 'arm64'])
      .default('x86_64')
      .describe('CPU architecture of the guest: passed to RegisterImage; the instance type must match'),
    guestReadyMinutes: GuestReadyMinutes.optional().describe(
      'How long Windows validation waits for EC2 status checks ok and console output (default: the plan targetDefaults.guestReadyMinutes, else 20)',
    ),
    replicationPriority: Priority.default(50),
  })
  .strict()
  .openapi('Vm');

export type Disk = z.infer<typeof Disk>;
export type Vm = z.infer<typeof Vm>;
export type HealthCheck = z.infer<typeof HealthCheck>;
export type NetworkSettings = z.infer<typeof NetworkSettings>;

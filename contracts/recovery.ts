/**
 * The contract of the recovery and cleanup workflows: names, ids, inputs, results and the plan
 * snapshot their activities pass around. Shared by the workflows (pure: safe in the bundle), the
 * activities, the API and the CLI.
 */
import type { HealthCheck } from '../schema/domain/vm';
import type { AwsTarget } from './aws';
import type { EndedJobStatus, JobKind, StepState } from './jobs';

export type RecoveryMode = 'test' | 'full' | 'migration';
export type RecoveryJobKind = Extract<JobKind, 'test-recovery' | 'full-recovery' | 'migration' | 'cleanup'>;

export const JOB_KIND_OF_MODE: Record<RecoveryMode, RecoveryJobKind> = {
  test: 'test-recovery',
  full: 'full-recovery',
  migration: 'migration',
};

/** The instance type of a recovered VM that sets none (nor its plan's targetDefaults). */
export const DEFAULT_INSTANCE_TYPE = 't3.medium';

export const RECOVERY_WORKFLOW = 'recoveryWorkflow';
export const CLEANUP_WORKFLOW = 'cleanupWorkflow';

export const recoveryWorkflowId = (jobId: string) => `recovery-${jobId}`;
/** One boot group (or a slice of a large one) of a recovery: a child workflow of the job's. */
export const RECOVERY_GROUP_WORKFLOW = 'recoveryGroupWorkflow';
/**
 * Boot groups as child workflows with batched waits (issue 16.3): histories recorded before run
 * every VM's steps in the job's own workflow.
 */
export const PATCH_GROUP_CHILDREN = 'lifeboat-recovery-group-children';
/** A child workflow recovers at most this many VMs (its history stays far below 10,000 events). */
export const DEFAULT_VMS_PER_CHILD = 250;
/** VMs of one child in their image + launch steps at once (RunInstances pacing per group). */
export const DEFAULT_LAUNCH_CONCURRENCY = 25;
/** The step that creates a test recovery's isolated network (recorded histories before it never ran it). */
export const PATCH_TEST_NETWORK = 'lifeboat-test-network';
/** The default of guestReadyMinutes. */
export const DEFAULT_GUEST_READY_MINUTES = 20;
export const cleanupWorkflowId = (jobId: string) => `cleanup-${jobId}`;

/** Which recovery point: the latest (default), a given id, or the latest at or before a time. */
/**
 * Which point a recovery uses. `latest` and `before` never pick a point that failed a
 * consistency check (issue 17.2); an explicit `id` of such a point needs `force: true`.
 */
export type RecoveryPointSelector = { latest: true } | { id: string; force?: boolean } | { before: string };

export interface RecoveryInput {
  jobId: string;
  planId: string;
  mode: RecoveryMode;
  recoveryPoint?: RecoveryPointSelector;
  /** VM names to recover; all of the plan's VMs when omitted. */
  vms?: string[];
  runScripts: boolean;
  requestedBy?: string;
  /** Knobs for tests and the benchmark; production uses the defaults. */
  tuning?: RecoveryTuning;
}

export interface RecoveryTuning {
  /** Heartbeat timeout of every activity: how fast a dead worker (and a cancel) is noticed (default 10 s). */
  heartbeatTimeoutSeconds?: number;
  /** Poll interval while waiting for an instance to run (default 5 s). */
  runningPollSeconds?: number;
  /** Give up waiting for running after this long (default 600 s). */
  runningTimeoutSeconds?: number;
  /** Poll interval of Windows validation (status checks, console output) until guestReadyMinutes (default 10 s). */
  guestPollSeconds?: number;
  /** Mirror step progress into Postgres (default true; the benchmark measures both). */
  mirrorSteps?: boolean;
  /**
   * Resume after failure: a failed step waits this long for `retry` / `abandon` (contracts/
   * job-operator.ts), then the job fails by itself. Unset or 0: a failed step ends the job at once
   * (scheduled drills). The API sets it from LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES.
   */
  operatorWaitSeconds?: number;
  /** VMs of one boot group in their image + launch steps at once (default DEFAULT_LAUNCH_CONCURRENCY). */
  launchConcurrency?: number;
  /** A boot group larger than this is recovered by several child workflows (default DEFAULT_VMS_PER_CHILD). */
  vmsPerChild?: number;
}

/** What the job's workflow hands the child workflow of one boot group (or a slice of one). */
export interface RecoveryGroupInput {
  input: RecoveryInput;
  /** The job's plan snapshot with only this child's VMs. */
  plan: RecoveryPlanSnapshot;
  /** 1-based boot group number. */
  group: number;
  /** The VMs' steps as the job declared them (keys, seqs, names): the child runs and records them. */
  steps: StepState[];
  /** The job's workflow: told when a step of the child waits for an operator. */
  parentWorkflowId: string;
}

/** A child's end: what it recovered and each of its steps' final state (the job's book takes them). */
export interface RecoveryGroupResult {
  recovered: RecoveredVm[];
  failedScripts: string[];
  steps: StepState[];
}

/** The details of a child's failure (ApplicationFailure type RecoveryGroupFailed). */
export interface RecoveryGroupFailure extends RecoveryGroupResult {
  stepKey?: string;
  stepName?: string;
  remediation: string;
}

export interface CleanupInput {
  jobId: string;
  /** The recovery job whose resources are removed (found by its lifeboat:job tag). */
  targetJobId: string;
  planId: string | null;
  requestedBy?: string;
  tuning?: RecoveryTuning;
  /** The target job is the plan's failover and the plan is failed over: the cleanup abandons it (→ protected). */
  endsFailover?: boolean;
}

export interface ScriptRef {
  runtime: 'sh' | 'bash' | 'python3' | 'go';
  path?: string;
  inline?: string;
  args: string[];
  timeoutSeconds: number;
  onFailure: 'fail' | 'partial';
  /** Environment: plain values or secret REFERENCES (never values: the activity resolves them). */
  env?: Record<string, string | { secretRef: string }>;
}

/** What the script activity gets beside the script: Lifeboat's variables, stdin, credential references. */
export interface ScriptContext {
  env: Record<string, string>;
  /** JSON for the post-scripts; its `credentials` is filled in by the activity from the refs below. */
  stdin?: string;
  /** VM post-script: the VM's guest credentials reference (resolved into stdin's `credentials`). */
  credentialsRef?: string;
  /** Plan post-script: guest credential references by VM name (stdin's `credentials`, by VM name). */
  credentialsRefs?: Record<string, string>;
  /** Where aws-sm references are read (the plan's target site); default the configured endpoint and region. */
  target?: AwsTarget;
}

export interface NetworkPlacement {
  subnetId?: string;
  privateIp?: string;
  securityGroupIds?: string[];
  publicIp?: boolean;
  /** The subnet's VPC (DescribeSubnets at validation). */
  vpcId?: string;
  /** Test recovery with no test subnet: placed in the job's isolated network (created by the `network` step). */
  isolated?: boolean;
  /** Test recovery with a test subnet but no test security groups: the job's own group in that subnet's VPC. */
  jobSecurityGroup?: boolean;
}

/** What the `network` step of a test recovery makes: the isolated VPC and/or job security groups. */
export interface TestNetworkNeed {
  /** Create the isolated VPC + subnet (no internet gateway, NAT or peering route). */
  isolated: boolean;
  /** VPCs (of test subnets) that need the job's security group. */
  vpcIds: string[];
  /** Ports the health checks use: the job's security groups allow them from within the VPC only. */
  ports: number[];
  /** Instance types of the isolated VMs: the isolated subnet goes to a zone offering them all. */
  instanceTypes?: string[];
}

export interface TestNetwork {
  vpcId?: string;
  subnetId?: string;
  /** The job's security group per VPC. */
  securityGroups: Record<string, string>;
  message: string;
}

/** The CIDR of the isolated VPC (and its one subnet) of a test recovery with no test network. */
export const ISOLATED_VPC_CIDR = '10.254.0.0/16';
export const ISOLATED_SUBNET_CIDR = '10.254.0.0/20';

/** A VM's placement once the job's test network exists (deterministic: the workflow applies it). */
export function placeInTestNetwork(n: NetworkPlacement, net: TestNetwork): NetworkPlacement {
  if (n.isolated && net.subnetId && net.vpcId) {
    const sg = net.securityGroups[net.vpcId];
    return {
      subnetId: net.subnetId,
      vpcId: net.vpcId,
      ...(n.privateIp ? { privateIp: n.privateIp } : {}),
      ...(sg ? { securityGroupIds: [sg] } : {}),
      publicIp: false,
      isolated: true,
    };
  }
  if (n.jobSecurityGroup && n.vpcId && net.securityGroups[n.vpcId])
    return { ...n, securityGroupIds: [net.securityGroups[n.vpcId]!] };
  return n;
}

/** Everything the workflow needs of one VM, resolved for the job's mode and recovery point. */
export interface RecoveryVm {
  id: string;
  name: string;
  guestOs: 'linux' | 'windows';
  bootOrder: number;
  bootDelaySeconds: number;
  instanceType: string;
  network: NetworkPlacement;
  healthCheck: HealthCheck;
  /** RegisterImage BootMode and Architecture (absent in jobs recorded before they existed: bios, x86_64). */
  bootMode?: 'bios' | 'uefi';
  architecture?: 'x86_64' | 'arm64';
  /** Windows validation polls status checks and console output this long (minutes). */
  guestReadyMinutes?: number;
  /** The guest credentials' secret reference (a name, never the value). */
  guestCredentials?: { secretRef: string };
  preScript?: ScriptRef;
  postScript?: ScriptRef;
  disks: { id: string; name: string; deviceName: string; snapshotId: string; sizeGiB: number }[];
}

export interface RecoveryPlanSnapshot {
  planId: string;
  planName: string;
  target: AwsTarget;
  recoveryPointId: string;
  pointInTime: string;
  preScript?: ScriptRef;
  postScript?: ScriptRef;
  /** Windows validation powers this instance on and off (plan targetDefaults.prepNodeInstanceId). */
  prepNodeInstanceId?: string;
  vms: RecoveryVm[];
  /** Test recovery: the isolated network / job security groups to create before any instance. */
  testNetwork?: TestNetworkNeed;
}

export interface CreatedResources {
  instances: string[];
  volumes: string[];
  images: string[];
  snapshots: string[];
  networkInterfaces: string[];
  /** The isolated test network and job security groups (absent before isolated drills existed). */
  securityGroups?: string[];
  subnets?: string[];
  vpcs?: string[];
}

/** "2 instance(s), 2 volume(s), …": every kind a cleanup deletes, the isolated network included. */
export function describeCreated(c: CreatedResources): string {
  const n = (xs: string[] | undefined, what: string) => `${xs?.length ?? 0} ${what}`;
  const parts = [
    n(c.instances, 'instance(s)'),
    n(c.volumes, 'volume(s)'),
    n(c.images, 'image(s)'),
    n(c.snapshots, 'snapshot(s)'),
    n(c.networkInterfaces, 'network interface(s)'),
  ];
  // The isolated network only when the job made one (a full recovery has none).
  if (c.securityGroups?.length) parts.push(n(c.securityGroups, 'security group(s)'));
  if (c.subnets?.length) parts.push(n(c.subnets, 'subnet(s)'));
  if (c.vpcs?.length) parts.push(n(c.vpcs, 'VPC(s)'));
  return parts.join(', ');
}

export interface RecoveredVm {
  vm: string;
  vmId: string;
  instanceId?: string;
  privateIp?: string;
  publicIp?: string;
}

export interface RecoveryResult {
  status: EndedJobStatus;
  message: string;
  failedStep?: string;
  remediation?: string;
  /** Scripts that failed without failing the job (Partially Completed). */
  failedScripts: string[];
  recoveryPointId?: string;
  recovered: RecoveredVm[];
  /** Cancelled or failed jobs: what exists in the target, for cleanup. */
  created?: CreatedResources;
}

import type { NetworkPlacement, RecoveryMode } from '../../../contracts';
import type { NetworkSettings } from '../../../schema/domain/vm';
import type { PlanModel } from '../../../schema/read/plan';

type Defaults = PlanModel['targetDefaults'];

/** A placement and where each of its values came from (field paths), for findings. */
export interface SourcedPlacement {
  placement: NetworkPlacement;
  paths: { subnetId?: string; securityGroupIds?: string; privateIp?: string };
}

/**
 * The VM's network for this mode, with the field each value came from. Full recovery and
 * migration: the production settings (VM, then plan defaults). Test recovery never touches
 * production networking: the VM's test overrides, then the plan's test defaults; with no test
 * subnet the VM goes into the job's isolated network; with a test subnet but no test security
 * groups it gets the job's own security group in that subnet's VPC. The production private IP is
 * never reused in a test.
 */
export function sourcedPlacement(
  mode: RecoveryMode,
  net: NetworkSettings,
  d: Defaults,
  vmPath: string,
): SourcedPlacement {
  const first = <T>(...v: [T | undefined, string][]) => v.find(([x]) => x !== undefined);
  const n = `${vmPath}.network`;
  if (mode !== 'test') {
    const subnet = first([net.subnetId, `${n}.subnetId`], [d.subnetId, 'targetDefaults.subnetId']);
    const sgs = first(
      [net.securityGroupIds, `${n}.securityGroupIds`],
      [d.securityGroupIds, 'targetDefaults.securityGroupIds'],
    );
    return clean({
      placement: {
        subnetId: subnet?.[0],
        privateIp: net.privateIp,
        securityGroupIds: sgs?.[0],
        publicIp: net.publicIp,
      },
      paths: { subnetId: subnet?.[1], securityGroupIds: sgs?.[1], privateIp: `${n}.privateIp` },
    });
  }
  const subnet = first(
    [net.test?.subnetId, `${n}.test.subnetId`],
    [d.testSubnetId, 'targetDefaults.testSubnetId'],
  );
  const sgs = first(
    [net.test?.securityGroupIds, `${n}.test.securityGroupIds`],
    [d.testSecurityGroupIds, 'targetDefaults.testSecurityGroupIds'],
  );
  const privateIp = net.test?.privateIp;
  if (!subnet)
    return clean({
      placement: { isolated: true, privateIp, publicIp: false },
      paths: { privateIp: `${n}.test.privateIp`, securityGroupIds: sgs?.[1] },
    });
  return clean({
    placement: {
      subnetId: subnet[0],
      privateIp,
      securityGroupIds: sgs?.[0],
      publicIp: net.test?.publicIp ?? net.publicIp,
      ...(sgs ? {} : { jobSecurityGroup: true }),
    },
    paths: { subnetId: subnet[1], securityGroupIds: sgs?.[1], privateIp: `${n}.test.privateIp` },
  });
}

function clean(s: SourcedPlacement): SourcedPlacement {
  const strip = <T extends object>(o: T) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  return { placement: strip(s.placement), paths: strip(s.paths) };
}

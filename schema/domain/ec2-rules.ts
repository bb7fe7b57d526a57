import { cidrContains, ipToInt } from './common';

/**
 * What EC2 refuses that needs no AWS call to know: the rules plan writes check (PlanInput) and
 * preflight checks again against the target (activities/control/recovery/preflight.ts). Pure.
 */

/** The root device names of an HVM image: the boot disk sits on one of them. */
export const ROOT_DEVICES = ['/dev/sda1', '/dev/xvda'] as const;

/**
 * Device names EC2 accepts in a block device mapping of a Linux or Windows HVM instance (EC2 user
 * guide, "Device names on Amazon EC2 instances"): the root device /dev/sda1 or /dev/xvda, and
 * data volumes on /dev/sd[b-z], /dev/xvd[b-z] or /dev/xvd[b-c][a-z]. Names such as /dev/sda,
 * /dev/hda, /dev/nvme0n1 or /dev/sdb1 are refused (NVMe names are assigned by the guest, never
 * given to EC2).
 */
const DATA_DEVICE = /^\/dev\/(sd[b-z]|xvd[b-z]|xvd[b-c][a-z])$/;

export function deviceNameProblem(name: string): string | undefined {
  if ((ROOT_DEVICES as readonly string[]).includes(name) || DATA_DEVICE.test(name)) return undefined;
  return `EC2 does not accept the device name ${name}: use /dev/sda1 or /dev/xvda for the boot disk and /dev/sd[b-z] (recommended /dev/sd[f-p]) or /dev/xvd[b-z] for data disks`;
}

/** The disks of a VM that are boot disks (on a root device name): there must be exactly one. */
export function bootDiskIndexes(disks: { deviceName: string }[]): number[] {
  return disks.flatMap((d, i) => ((ROOT_DEVICES as readonly string[]).includes(d.deviceName) ? [i] : []));
}

/** AWS reserves the first four addresses and the last address of every subnet. */
export function reservedInSubnet(cidr: string, ip: string): boolean {
  if (!cidrContains(cidr, ip)) return false;
  const [base, bitsText] = cidr.split('/');
  const size = 2 ** (32 - Number(bitsText));
  const start = Math.floor(ipToInt(base!) / size) * size;
  const n = ipToInt(ip);
  return n - start < 4 || n === start + size - 1;
}

/** The placeholders an HTTP health check URL may use: replaced by the recovered instance's addresses. */
export const HEALTH_URL_PLACEHOLDERS = ['{privateIp}', '{publicIp}'] as const;

/** The default URL of an HTTP check that names none: the recovered instance itself. */
export const DEFAULT_HEALTH_URL = 'http://{privateIp}/';

/** The URL with its placeholders filled in (an address that is unknown leaves the placeholder, which fails). */
export function renderHealthUrl(url: string, addr: { privateIp?: string; publicIp?: string }): string {
  return url
    .replaceAll('{privateIp}', addr.privateIp ?? '{privateIp}')
    .replaceAll('{publicIp}', addr.publicIp ?? '{publicIp}');
}

/** Whether a URL template parses once its placeholders are filled with sample addresses. */
export function healthUrlParses(url: string): boolean {
  try {
    const u = new URL(renderHealthUrl(url, { privateIp: '10.0.0.10', publicIp: '203.0.113.10' }));
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

type CheckLike =
  | { type: 'none' }
  | { type: 'ec2-status' }
  | { type: 'tcp'; host?: string | undefined; port: number }
  | { type: 'http'; url?: string | undefined };

/** The fixed address a check names (not the recovered instance's): tcp host, or the URL's host when not a placeholder. */
export function fixedCheckHost(hc: CheckLike): string | undefined {
  if (hc.type === 'tcp') return hc.host;
  if (hc.type !== 'http' || !hc.url) return undefined;
  if (HEALTH_URL_PLACEHOLDERS.some((p) => hc.url!.includes(p))) return undefined;
  try {
    return new URL(hc.url).hostname;
  } catch {
    return undefined;
  }
}

/** The port a check connects to (its security group in an isolated drill opens it), if any. */
export function checkPort(hc: CheckLike): number | undefined {
  if (hc.type === 'tcp') return hc.port;
  if (hc.type !== 'http') return undefined;
  try {
    const u = new URL(
      renderHealthUrl(hc.url ?? DEFAULT_HEALTH_URL, { privateIp: '10.0.0.10', publicIp: '10.0.0.10' }),
    );
    return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  } catch {
    return undefined;
  }
}

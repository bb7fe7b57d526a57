import { z } from '@hono/zod-openapi';

/** Names operators type and see: short, no surrounding spaces. */
export const Name = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9 ._-]*$/,
    'letters, digits, space, dot, underscore and dash; starts with a letter or digit',
  );

export const Id = z.uuid();

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export const Ipv4 = z.string().regex(IPV4, 'must be an IPv4 address like 10.0.1.25');

export const Cidr = z.string().refine((v) => {
  const [ip, bits, ...rest] = v.split('/');
  return rest.length === 0 && IPV4.test(ip ?? '') && /^\d{1,2}$/.test(bits ?? '') && Number(bits) <= 32;
}, 'must be an IPv4 CIDR like 10.0.1.0/24');

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

/** Whether an IPv4 address lies inside a CIDR block. */
export function cidrContains(cidr: string, ip: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  const size = 2 ** (32 - bits);
  const start = Math.floor(ipToInt(base!) / size) * size;
  const n = ipToInt(ip);
  return n >= start && n < start + size;
}

/** ISO 8601 date-time that carries an explicit offset (Z or ±hh:mm): a schedule must not depend on the server's zone. */
export const IsoDateTimeWithOffset = z.iso.datetime({
  offset: true,
  message: 'must be an ISO 8601 date-time with an offset, e.g. 2026-01-01T02:00:00Z',
});

/** Replication / recovery priority: higher is served first. */
export const Priority = z.number().int().min(0).max(100);

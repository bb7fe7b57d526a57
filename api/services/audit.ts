import { isDeepStrictEqual } from 'node:util';
import { z } from '@hono/zod-openapi';
import { and, desc, eq, gte, lt, sql } from 'drizzle-orm';
import { createLogger } from '../../lib/logger';
import type { Db } from '../../schema/db';
import { type AuditDetail, auditLog, authFailures } from '../../schema/index';
import { type Page, toPage } from './common';

export type { AuditDetail };

export const AuditDetailSchema = z
  .object({
    changed: z
      .array(z.string())
      .optional()
      .describe('Paths of the fields an update changed, e.g. `vms[web-01].bootOrder` (never values)'),
    created: z.boolean().optional(),
    deleted: z.boolean().optional(),
  })
  .openapi('AuditDetail');

export const AuditEntry = z
  .object({
    id: z.number().int(),
    at: z.string(),
    tokenId: z.uuid().nullable(),
    actor: z.string().describe('Name of the token that made the call'),
    method: z.string(),
    path: z.string(),
    action: z.string().describe('Method and route, e.g. "PUT /v1/plans/:id"'),
    status: z.number().int().describe('The HTTP status answered'),
    detail: AuditDetailSchema.nullable().describe(
      'What a successful mutation did: the changed field paths, or created/deleted; null for refused calls',
    ),
  })
  .openapi('AuditEntry');

export interface AuditFilter {
  actor?: string | undefined;
  method?: string | undefined;
  since?: string | undefined;
  failedOnly?: boolean | undefined;
}

// ---- which fields a mutation changed --------------------------------------------------------

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Arrays of objects each with a distinct string `name` (VMs, disks…) are compared by name. */
function byName(a: unknown[]): Map<string, unknown> | undefined {
  const out = new Map<string, unknown>();
  for (const item of a) {
    if (!isObject(item) || typeof item.name !== 'string' || out.has(item.name)) return undefined;
    out.set(item.name, item);
  }
  return out;
}

/**
 * The paths where two canonical forms of a resource differ, sorted: `replication.intervalMinutes`,
 * `vms[web-01].bootOrder`, `vms[db-02]` (a VM added or removed). Objects are walked key by key,
 * arrays of named objects by name; any other array that differs is one path. Only paths come
 * out, never values, so secrets cannot leak into the audit log through this.
 */
export function changedPaths(before: unknown, after: unknown, prefix = ''): string[] {
  if (isDeepStrictEqual(before, after)) return [];
  const here = prefix || '(root)';
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => changedPaths(before[k], after[k], prefix ? `${prefix}.${k}` : k));
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const a = byName(before);
    const b = byName(after);
    if (a && b) {
      const names = [...new Set([...a.keys(), ...b.keys()])].sort();
      return names.flatMap((n) => changedPaths(a.get(n), b.get(n), `${prefix}[${n}]`));
    }
  }
  return [here];
}

// ---- failed authentications ------------------------------------------------------------------

/** Failures are aggregated per window of this length. */
export const AUTH_FAILURE_WINDOW_MS = 60_000;
/** Distinct rows a window may hold; further failures of that window fold into its "other" row. */
export const AUTH_FAILURE_ROWS_PER_WINDOW = 100;
/** Rows whose last failure is older than this are deleted (checked at most hourly). */
export const AUTH_FAILURE_RETENTION_DAYS = 90;
/** Buffered failures are written this long after the first of a batch (or when read). */
const FLUSH_DELAY_MS = 1_000;
/** Longest path stored; longer ones are cut (an attacker chooses them). */
const MAX_PATH = 256;
const OTHER = '*';
const LOCK_KEY = 0x1ebf_a11; // pg advisory lock of the auth_failures writers

export type AuthFailureReason = 'missing' | 'unknown' | 'revoked' | 'expired' | 'other';

export interface AuthFailureEvent {
  at: Date;
  source: string;
  reason: Exclude<AuthFailureReason, 'other'>;
  /** The token's name (revoked, expired), the first characters sent (unknown), or '' (missing). */
  token: string;
  method: string;
  path: string;
}

interface Aggregate {
  windowStart: Date;
  source: string;
  reason: AuthFailureReason;
  token: string;
  method: string;
  path: string;
  count: number;
  firstSeen: Date;
  lastSeen: Date;
}

const keyOf = (a: Pick<Aggregate, 'windowStart' | 'source' | 'reason' | 'token' | 'method' | 'path'>) =>
  JSON.stringify([a.windowStart.getTime(), a.source, a.reason, a.token, a.method, a.path]);

let log: ReturnType<typeof createLogger> | undefined;

/**
 * Records failed authentications without letting a flood cost a database write each: failures
 * are aggregated in memory (at most ROWS_PER_WINDOW + 1 entries per window) and upserted about
 * once a second. The writers of every API process take one advisory lock, so the cap on
 * distinct rows per window holds across processes too.
 */
export class AuthFailureLog {
  private pending = new Map<string, Aggregate>();
  private perWindow = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private lastPrune = 0;
  /** The writes in flight, in order: a flush returns only once everything recorded before it is written. */
  private written: Promise<void> = Promise.resolve();

  constructor(private readonly db: Db) {}

  record(e: AuthFailureEvent) {
    const windowStart = new Date(
      Math.floor(e.at.getTime() / AUTH_FAILURE_WINDOW_MS) * AUTH_FAILURE_WINDOW_MS,
    );
    let agg: Omit<Aggregate, 'count' | 'firstSeen' | 'lastSeen'> = {
      windowStart,
      source: e.source.slice(0, 64),
      reason: e.reason,
      token: e.token,
      method: e.method.slice(0, 16),
      path: e.path.slice(0, MAX_PATH),
    };
    let key = keyOf(agg);
    if (!this.pending.has(key)) {
      const n = this.perWindow.get(windowStart.getTime()) ?? 0;
      if (n >= AUTH_FAILURE_ROWS_PER_WINDOW) {
        agg = { windowStart, source: OTHER, reason: 'other', token: OTHER, method: OTHER, path: OTHER };
        key = keyOf(agg);
      } else this.perWindow.set(windowStart.getTime(), n + 1);
    }
    const current = this.pending.get(key);
    if (current) {
      current.count++;
      current.lastSeen = e.at;
    } else this.pending.set(key, { ...agg, count: 1, firstSeen: e.at, lastSeen: e.at });
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_DELAY_MS).unref();
  }

  /**
   * Write what is buffered, after any write already under way (a timer's flush may hold the
   * previous batch). Errors are logged, never thrown: auditing must not break the API.
   */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size > 0) {
      const batch = [...this.pending.values()];
      this.pending = new Map();
      this.perWindow = new Map();
      this.written = this.written.then(() => this.writeOrLog(batch));
    }
    await this.written;
  }

  private async writeOrLog(batch: Aggregate[]) {
    try {
      await this.write(batch);
    } catch (e) {
      const failures = batch.reduce((n, a) => n + a.count, 0);
      log ??= createLogger('api');
      log.error({ err: String(e), failures }, 'could not record failed authentications');
    }
  }

  private async write(batch: Aggregate[]) {
    await this.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${LOCK_KEY})`);
      const windows = new Map<number, Aggregate[]>();
      for (const a of batch) {
        const list = windows.get(a.windowStart.getTime()) ?? [];
        list.push(a);
        windows.set(a.windowStart.getTime(), list);
      }
      const rows: Aggregate[] = [];
      for (const [start, aggs] of windows) {
        const existing = await tx
          .select({
            windowStart: authFailures.windowStart,
            source: authFailures.source,
            reason: authFailures.reason,
            token: authFailures.token,
            method: authFailures.method,
            path: authFailures.path,
          })
          .from(authFailures)
          .where(eq(authFailures.windowStart, new Date(start)));
        const known = new Set(existing.map((r) => keyOf({ ...r, reason: r.reason as AuthFailureReason })));
        let distinct = existing.filter((r) => r.reason !== 'other').length;
        let other: Aggregate | undefined;
        for (const a of aggs) {
          if (a.reason === 'other' || (!known.has(keyOf(a)) && distinct >= AUTH_FAILURE_ROWS_PER_WINDOW)) {
            other = other
              ? {
                  ...other,
                  count: other.count + a.count,
                  firstSeen: new Date(Math.min(+a.firstSeen, +other.firstSeen)),
                  lastSeen: new Date(Math.max(+a.lastSeen, +other.lastSeen)),
                }
              : { ...a, source: OTHER, reason: 'other', token: OTHER, method: OTHER, path: OTHER };
            continue;
          }
          if (!known.has(keyOf(a))) distinct++;
          rows.push(a);
        }
        if (other) rows.push(other);
      }
      await tx
        .insert(authFailures)
        .values(rows)
        .onConflictDoUpdate({
          target: [
            authFailures.windowStart,
            authFailures.source,
            authFailures.reason,
            authFailures.token,
            authFailures.method,
            authFailures.path,
          ],
          set: {
            count: sql`${authFailures.count} + excluded.count`,
            firstSeen: sql`least(${authFailures.firstSeen}, excluded.first_seen)`,
            lastSeen: sql`greatest(${authFailures.lastSeen}, excluded.last_seen)`,
          },
        });
      if (Date.now() - this.lastPrune > 3_600_000) {
        this.lastPrune = Date.now();
        await tx
          .delete(authFailures)
          .where(
            lt(authFailures.lastSeen, sql`now() - make_interval(days => ${AUTH_FAILURE_RETENTION_DAYS})`),
          );
      }
    });
  }
}

const logs = new WeakMap<Db, AuthFailureLog>();
/** The one failure log of a database handle (shared by the auth middleware and the audit routes). */
export function authFailureLog(db: Db): AuthFailureLog {
  let l = logs.get(db);
  if (!l) {
    l = new AuthFailureLog(db);
    logs.set(db, l);
  }
  return l;
}

export const AuthFailureReasonSchema = z.enum(['missing', 'unknown', 'revoked', 'expired', 'other']);

export const AuthFailure = z
  .object({
    id: z.number().int(),
    windowStart: z.string().describe('Start of the aggregation window (one minute)'),
    source: z.string().describe("The client's address (socket remote address); `*` in the overflow row"),
    reason: AuthFailureReasonSchema.describe(
      'missing: no bearer token; unknown: no such token; revoked / expired: a token that was valid; other: the overflow row of a window that reached its row cap',
    ),
    token: z
      .string()
      .describe(
        "The token's name when it was revoked or expired, else the first 7 characters sent (never the secret); empty when missing",
      ),
    method: z.string(),
    path: z.string(),
    count: z.number().int(),
    firstSeen: z.string(),
    lastSeen: z.string(),
  })
  .openapi('AuthFailure');

export interface AuthFailureFilter {
  since?: string | undefined;
  source?: string | undefined;
  reason?: AuthFailureReason | undefined;
  token?: string | undefined;
}

/** The audit log, newest first. Rows are written by the auditMutations middleware. */
export function auditService(db: Db) {
  return {
    async list(filter: AuditFilter, page: Page) {
      const rows = await db
        .select()
        .from(auditLog)
        .where(
          and(
            filter.actor ? eq(auditLog.actor, filter.actor) : undefined,
            filter.method ? eq(auditLog.method, filter.method.toUpperCase()) : undefined,
            filter.since ? gte(auditLog.at, new Date(filter.since)) : undefined,
            filter.failedOnly ? sql`${auditLog.status} >= 400` : undefined,
          ),
        )
        .orderBy(desc(auditLog.id))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(
        rows.map(({ detail, at, ...r }) => ({ ...r, at: at.toISOString(), detail: detail ?? null })),
        page,
      );
    },

    /** Failed authentications, most recent first (what is buffered is written first). */
    async failures(filter: AuthFailureFilter, page: Page) {
      await authFailureLog(db).flush();
      const rows = await db
        .select()
        .from(authFailures)
        .where(
          and(
            filter.since ? gte(authFailures.lastSeen, new Date(filter.since)) : undefined,
            filter.source ? eq(authFailures.source, filter.source) : undefined,
            filter.reason ? eq(authFailures.reason, filter.reason) : undefined,
            filter.token ? eq(authFailures.token, filter.token) : undefined,
          ),
        )
        .orderBy(desc(authFailures.lastSeen), desc(authFailures.id))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(
        rows.map((r) => ({
          ...r,
          reason: r.reason as AuthFailureReason,
          windowStart: r.windowStart.toISOString(),
          firstSeen: r.firstSeen.toISOString(),
          lastSeen: r.lastSeen.toISOString(),
        })),
        page,
      );
    },
  };
}

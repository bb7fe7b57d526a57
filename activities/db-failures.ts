import { ApplicationFailure } from '@temporalio/activity';
import { pgCode } from '../schema/db';

/** Integrity violations: the write itself is wrong, so the same write fails on every retry. */
const PERMANENT: Record<string, string> = {
  '23503': 'foreign key violation',
  '23502': 'not-null violation',
  '23514': 'check violation',
  '23P01': 'exclusion violation',
};

/**
 * A database error no retry can fix (integrity violations other than uniqueness, and data
 * exceptions, SQLSTATE class 22) as a non-retryable failure naming the activity, the violation
 * and the constraint. Unique violations and serialization failures stay retryable: a retry reads
 * the concurrent writer's row. Only the FK detail (which key is missing) is kept: other details
 * and drizzle's message carry the row's values, which must not reach the workflow history.
 */
export function permanentDbFailure(e: unknown, activity: string): ApplicationFailure | undefined {
  const code = pgCode(e);
  if (!code) return undefined;
  const what = PERMANENT[code] ?? (code.startsWith('22') ? 'data exception' : undefined);
  if (!what) return undefined;
  const pg = ((e as { cause?: unknown }).cause ?? e) as {
    message?: string;
    detail?: string;
    constraint_name?: string;
    table_name?: string;
  };
  const where = [
    pg.table_name && `table ${pg.table_name}`,
    pg.constraint_name && `constraint ${pg.constraint_name}`,
  ]
    .filter(Boolean)
    .join(', ');
  const detail = code === '23503' && pg.detail ? ` (${pg.detail})` : '';
  return ApplicationFailure.create({
    type: 'DatabaseIntegrityError',
    nonRetryable: true,
    message:
      `Activity ${activity}: the database refused the write with a ${what} (SQLSTATE ${code}${where ? `; ${where}` : ''}): ` +
      `${code.startsWith('22') ? 'a value cannot be stored' : (pg.message ?? 'no message')}${detail}. ` +
      'Retrying the same write cannot succeed, so it is not retried.',
  });
}

// biome-ignore lint/suspicious/noExplicitAny: any activity signature
type Activities = Record<string, (...args: any[]) => Promise<unknown>>;

/** The activities with permanent database errors turned into non-retryable failures. */
export function withPermanentDbFailures<T extends Activities>(activities: T): T {
  return Object.fromEntries(
    Object.entries(activities).map(([name, fn]) => [
      name,
      async (...args: unknown[]) => {
        try {
          return await fn(...args);
        } catch (e) {
          throw permanentDbFailure(e, name) ?? e;
        }
      },
    ]),
  ) as T;
}

import { inArray } from 'drizzle-orm';
import type { Db } from '../../schema/db';
import { parseSecretRef } from '../../schema/domain/secret';
import { secrets } from '../../schema/index';
import { ApiError } from '../errors';

/** Where a plan or a site (input or stored form) names secrets: each reference with its field path. */
interface ScriptLike {
  env?: Record<string, string | { secretRef: string }> | undefined;
}
interface VmLike {
  preScript?: ScriptLike | null | undefined;
  postScript?: ScriptLike | null | undefined;
  guestCredentials?: { secretRef: string } | null | undefined;
}
export interface PlanLike {
  preScript?: ScriptLike | null | undefined;
  postScript?: ScriptLike | null | undefined;
  failbackScript?: ScriptLike | null | undefined;
  vms?: VmLike[];
}

export interface RefUse {
  path: string;
  ref: string;
}

function scriptRefs(s: ScriptLike | null | undefined, at: string, out: RefUse[]) {
  for (const [k, v] of Object.entries(s?.env ?? {}))
    if (typeof v !== 'string') out.push({ path: `${at}.env.${k}`, ref: v.secretRef });
}

export function vmSecretRefs(vm: VmLike, at = ''): RefUse[] {
  const out: RefUse[] = [];
  const p = at ? `${at}.` : '';
  scriptRefs(vm.preScript, `${p}preScript`, out);
  scriptRefs(vm.postScript, `${p}postScript`, out);
  if (vm.guestCredentials) out.push({ path: `${p}guestCredentials`, ref: vm.guestCredentials.secretRef });
  return out;
}

export function planSecretRefs(plan: PlanLike): RefUse[] {
  const out: RefUse[] = [];
  scriptRefs(plan.preScript, 'preScript', out);
  scriptRefs(plan.postScript, 'postScript', out);
  scriptRefs(plan.failbackScript, 'failbackScript', out);
  for (const [i, vm] of (plan.vms ?? []).entries()) out.push(...vmSecretRefs(vm, `vms[${i}]`));
  return out;
}

/** The local (stored) secret names among the references. */
export function localNames(uses: RefUse[]): string[] {
  return [
    ...new Set(
      uses.flatMap((u) => {
        const p = parseSecretRef(u.ref);
        return p?.kind === 'local' ? [p.name] : [];
      }),
    ),
  ];
}

/** A site's references: its upgrade script's env (`<kind>.upgradeScript.env.NAME`). */
export function siteSecretRefs(
  kind: string,
  settings: { upgradeScript?: ScriptLike | null } | null | undefined,
) {
  const out: RefUse[] = [];
  scriptRefs(settings?.upgradeScript, `${kind}.upgradeScript`, out);
  return out;
}

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/**
 * Every stored secret the references name exists (422 naming each field and secret otherwise);
 * aws-sm references are only checked for syntax (by the schema) and read when the script runs.
 * The secrets rows are locked (for share) so a concurrent delete cannot slip between the check
 * and the write. `what`: "plan", "site".
 */
export async function checkStoredSecretRefs(tx: Db | Tx, uses: RefUse[], what: string) {
  const names = localNames(uses);
  if (!names.length) return;
  const rows = await tx
    .select({ name: secrets.name })
    .from(secrets)
    .where(inArray(secrets.name, names))
    .for('share');
  const have = new Set(rows.map((r) => r.name));
  const issues = uses
    .filter((u) => parseSecretRef(u.ref)?.kind === 'local' && !have.has(u.ref))
    .map((u) => ({
      path: u.path,
      message: `no stored secret named "${u.ref}": create it first (lifeboat secrets set ${u.ref} --from-file F)`,
    }));
  if (issues.length)
    throw new ApiError(422, 'unprocessable', `The ${what} refers to unknown secrets`, issues);
}

import { parseSecretRef } from '../../schema/domain/secret';

/** Where a plan (input or stored form) names secrets: each reference with its field path. */
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

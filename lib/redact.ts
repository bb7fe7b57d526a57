/**
 * Secret redaction for script logs. Two nets: the VALUES of environment / credential fields whose
 * names look secret (so a script echoing $DB_PASSWORD shows ***), and patterns of well-known
 * token formats (AWS keys, Lifeboat API tokens, bearer headers, key=value pairs named secret).
 */
const SECRET_NAME = /(secret|token|passw(or)?d|pwd|credential|api[_-]?key|private[_-]?key|session)/i;
const TOKEN_PATTERNS: RegExp[] = [
  /\b(AKIA|ASIA)[0-9A-Z]{16}\b/g, // AWS access key ids
  /\blb_[A-Za-z0-9_-]{20,}\b/g, // Lifeboat API tokens
  /\b(gh[pousr]_[A-Za-z0-9]{20,})\b/g, // GitHub tokens
  /\bxox[abprs]-[A-Za-z0-9-]{10,}\b/g, // Slack tokens
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g,
];
// "password=hunter2", "token: abc", "Authorization: Bearer x": keep the name, hide the value.
const NAMED_VALUE =
  /\b((?:[A-Za-z0-9_-]*(?:secret|token|passw(?:or)?d|pwd|api[_-]?key|credential)[A-Za-z0-9_-]*)\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)/gi;
const BEARER = /\b(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi;

export const REDACTED = '***';

/** Values of fields whose names look secret, from any env-like records (min length 4 to avoid noise). */
export function secretValues(...records: (Record<string, string | undefined> | undefined)[]): string[] {
  const out = new Set<string>();
  for (const rec of records) {
    for (const [k, v] of Object.entries(rec ?? {})) {
      if (v && v.length >= 4 && SECRET_NAME.test(k)) out.add(v);
    }
  }
  // Longest first so a secret containing another is replaced whole.
  return [...out].sort((a, b) => b.length - a.length);
}

export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join(REDACTED);
  for (const p of TOKEN_PATTERNS) out = out.replace(p, REDACTED);
  out = out.replace(NAMED_VALUE, (_m, name: string) => `${name}${REDACTED}`);
  out = out.replace(BEARER, (_m, b: string) => `${b}${REDACTED}`);
  return out;
}

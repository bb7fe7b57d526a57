import pino from 'pino';
import { loadConfig } from './config';

/**
 * One structured logger for every process. Secrets are redacted by key wherever they appear,
 * so a careless `log.info({ request })` cannot leak a token or a credential.
 */
export const REDACTED_KEYS = [
  'password',
  'secret',
  'secretAccessKey',
  'sessionToken',
  'token',
  'apiKey',
  'authorization',
  'credentials',
];

const paths = REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);

/**
 * LOG_LEVEL, or `info` while the configuration is invalid: loggers are made when modules load,
 * before an entry point reads its configuration and reports a bad setting in one line
 * (lib/startup.ts `startupConfig`).
 */
function configuredLevel(): string {
  try {
    return loadConfig().LOG_LEVEL;
  } catch {
    return 'info';
  }
}

export function createLogger(name: string, level: string = configuredLevel()) {
  return pino({ name, level, redact: { paths, censor: '[redacted]' } });
}

export type Logger = ReturnType<typeof createLogger>;

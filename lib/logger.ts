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

export function createLogger(name: string, level: string = loadConfig().LOG_LEVEL) {
  return pino({ name, level, redact: { paths, censor: '[redacted]' } });
}

export type Logger = ReturnType<typeof createLogger>;

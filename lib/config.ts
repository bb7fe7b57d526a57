import { z } from 'zod';

/**
 * Every setting Lifeboat reads from the environment, validated once.
 * README.md has the same list as a table; keep the two in step.
 */
const boolish = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no'])
  .transform((v) => v === '1' || v === 'true' || v === 'yes');

const port = z.coerce.number().int().min(1).max(65535);

export const configSchema = z.object({
  LIFEBOAT_DATA_DIR: z.string().default('.data'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  // Temporal. Unset TEMPORAL_ADDRESS = the main command starts the embedded dev server.
  TEMPORAL_ADDRESS: z.string().optional(),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_UI_URL: z.string().url().optional(),
  TEMPORAL_TLS: boolish.optional(),
  TEMPORAL_TLS_CERT_PATH: z.string().optional(),
  TEMPORAL_TLS_KEY_PATH: z.string().optional(),
  TEMPORAL_TLS_CA_PATH: z.string().optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional(),
  TEMPORAL_API_KEY: z.string().optional(),
  LIFEBOAT_CONTROL_TASK_QUEUE: z.string().default('lifeboat-control'),

  // Postgres. Unset = the local server on 127.0.0.1:5432, else an embedded PGlite (npm start only).
  DATABASE_URL: z.string().optional(),

  // AWS. LIFEBOAT_AWS_ENDPOINT: "moto" (start a local moto server), "aws" (the real AWS endpoints),
  // or a URL (any EC2+EBS-compatible endpoint, e.g. a moto you run yourself).
  LIFEBOAT_AWS_ENDPOINT: z.string().default('moto'),
  MOTO_PORT: port.default(5055),
  AWS_REGION: z.string().default('us-east-1'),

  // API
  API_HOST: z.string().default('127.0.0.1'),
  API_PORT: port.default(8080),

  // Node worker (Replication Appliance / Cloud Connector)
  LIFEBOAT_NODE_ID: z.string().default('node-local-1'),
});

export type Config = z.infer<typeof configSchema>;

let cached: Config | undefined;

/** Parse the environment; a bad value fails fast with the variable's name. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  if (env === process.env && cached) return cached;
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  if (env === process.env) cached = parsed.data;
  return parsed.data;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The Temporal frontend address the processes dial. */
export function temporalAddress(config: Config): string {
  return config.TEMPORAL_ADDRESS ?? `127.0.0.1:${config.TEMPORAL_PORT}`;
}

/** The AWS endpoint override, or undefined for the real AWS endpoints. */
export function awsEndpoint(config: Config): string | undefined {
  if (config.LIFEBOAT_AWS_ENDPOINT === 'aws') return undefined;
  if (config.LIFEBOAT_AWS_ENDPOINT === 'moto') return `http://127.0.0.1:${config.MOTO_PORT}`;
  return config.LIFEBOAT_AWS_ENDPOINT;
}

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/lifeboat';

export function databaseUrl(config: Config): string {
  return config.DATABASE_URL ?? DEFAULT_DATABASE_URL;
}

import { z } from 'zod';
import pkg from '../package.json' with { type: 'json' };
import { secretValues } from './redact';

/**
 * Every setting Lifeboat reads from the environment, validated once.
 * README.md has the same list as a table; keep the two in step.
 */
const boolish = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no'])
  .transform((v) => v === '1' || v === 'true' || v === 'yes');

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().positive();

export const configSchema = z.object({
  LIFEBOAT_DATA_DIR: z.string().default('.data'),
  // The keyring of payload and secret encryption keys (JSON file); unset = <data dir>/keyring.json,
  // generated at first start.
  LIFEBOAT_KEYRING: z.string().min(1).optional(),
  // Envelope mode: the keyring's data keys are wrapped by this AWS KMS key (id, ARN or alias),
  // reached at the configured AWS endpoint.
  LIFEBOAT_KMS_KEY_ID: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // PATH of the operator scripts' minimal environment (they inherit nothing else).
  PATH: z.string().default('/usr/local/bin:/usr/bin:/bin'),
  // When the worker runs as root, operator scripts run as this unprivileged user (never root).
  LIFEBOAT_SCRIPT_USER: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}\$?$/, 'must be a user name like nobody')
    .default('nobody'),

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
  TEMPORAL_LOG_LEVEL: z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('WARN'),
  LIFEBOAT_CONTROL_TASK_QUEUE: z.string().default('lifeboat-control'),
  // A workflow bundle built ahead (npm test builds one per run); unset = bundle at worker start.
  LIFEBOAT_WORKFLOW_BUNDLE: z.string().optional(),

  // Postgres. Unset = the local server on 127.0.0.1:5432, else an embedded PGlite (npm start only).
  DATABASE_URL: z.string().optional(),

  // AWS. LIFEBOAT_AWS_ENDPOINT: "moto" (start a local moto server), "aws" (the real AWS endpoints),
  // or a URL (any EC2+EBS-compatible endpoint, e.g. a moto you run yourself).
  LIFEBOAT_AWS_ENDPOINT: z.string().default('moto'),
  MOTO_PORT: port.default(5055),
  AWS_REGION: z.string().default('us-east-1'),
  // Only whether they are set matters: without them a loopback endpoint gets dummy credentials.
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_PROFILE: z.string().optional(),
  // Pending EBS snapshots per target account+region (AWS allows 100); a target site's own setting wins.
  LIFEBOAT_SNAPSHOT_BUDGET: positiveInt.max(100).optional(),
  // A snapshot-slot lease is re-checked this often: a dead holder's slot returns within it.
  LIFEBOAT_SNAPSHOT_LEASE_TTL_SECONDS: positiveInt.optional(),
  // EC2 request rate per target account+region+credentials, shared by every EC2 call of the process
  // (lib/aws-pacing.ts). Defaults: AWS's documented refill rates of the non-mutating (Describe*)
  // and mutating buckets; lower them when other tools share the account, raise them for a local moto.
  LIFEBOAT_EC2_DESCRIBE_PER_SECOND: z.coerce.number().positive().default(20),
  LIFEBOAT_EC2_MUTATE_PER_SECOND: z.coerce.number().positive().default(5),
  // A transfer not picked up by a node this fast marks the node suspect and goes to the next.
  LIFEBOAT_NODE_PICKUP_TIMEOUT_SECONDS: z.coerce.number().positive().default(60),

  // Monitor: how often the monitor schedule evaluates RPO lag and node liveness (the seeds' 30 s).
  LIFEBOAT_MONITOR_INTERVAL_SECONDS: positiveInt.default(30),
  // A node is deemed offline after this many missed heartbeats (its own heartbeat interval each).
  LIFEBOAT_NODE_OFFLINE_AFTER_HEARTBEATS: positiveInt.default(3),

  // Job reconciler: how often its schedule ends the rows of dead jobs (also run once at API start),
  // and how long a `pending` row may have no workflow before it is ended as failed.
  LIFEBOAT_JOB_RECONCILE_INTERVAL_SECONDS: positiveInt.default(60),
  LIFEBOAT_JOB_PENDING_GRACE_SECONDS: positiveInt.default(120),
  // Resume after failure: how long a failed recovery step waits for `lifeboat jobs retry|abandon`
  // before the job ends as failed by itself (default 24 h; 0: a failed step ends the job at once).
  LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES: z.coerce.number().int().min(0).default(1440),

  // API
  API_HOST: z.string().default('127.0.0.1'),
  API_PORT: port.default(8080),
  // Origins allowed to call the codec endpoints (/codec/*) from a browser, comma-separated;
  // unset = the local dev server's UI (http://127.0.0.1:<TEMPORAL_UI_PORT>, http://localhost:<port>).
  LIFEBOAT_CODEC_CORS_ORIGINS: z.string().min(1).optional(),
  // The codec endpoints need a viewer token unless the API listens on loopback only; set to 1
  // to require it on loopback too (e.g. a reverse proxy on this host forwards to the API).
  LIFEBOAT_CODEC_REQUIRE_TOKEN: boolish.optional(),
  // GET /metrics needs a viewer token unless the API listens on loopback only; 1 = always.
  LIFEBOAT_METRICS_REQUIRE_TOKEN: boolish.optional(),
  // The Temporal worker runtime's own Prometheus metrics (SDK: task latencies, slots, polls) on
  // this port at /metrics, per worker process; unset = off. Bound to LIFEBOAT_WORKER_METRICS_HOST.
  LIFEBOAT_WORKER_METRICS_PORT: port.optional(),
  LIFEBOAT_WORKER_METRICS_HOST: z.string().default('127.0.0.1'),
  // The API's address as operators reach it (links in notifications); unset = http://<API_HOST>:<API_PORT>.
  LIFEBOAT_PUBLIC_URL: z.url().optional(),

  // Notification delivery retries (exponential backoff per channel): first wait, longest wait,
  // give up after this many hours, and an optional cap on attempts.
  LIFEBOAT_NOTIFY_RETRY_INITIAL_SECONDS: z.coerce.number().positive().default(2),
  LIFEBOAT_NOTIFY_RETRY_MAX_INTERVAL_SECONDS: z.coerce.number().positive().default(300),
  LIFEBOAT_NOTIFY_RETRY_HOURS: z.coerce.number().positive().default(24),
  LIFEBOAT_NOTIFY_MAX_ATTEMPTS: positiveInt.optional(),

  // Node worker (Replication Appliance / Cloud Connector)
  LIFEBOAT_NODE_ID: z.string().default('node-local-1'),
  LIFEBOAT_NODE_KIND: z.enum(['replication-appliance', 'cloud-connector']).default('replication-appliance'),
  // The site whose disks this node reads (by name); unset = a node of any site (single-node install).
  LIFEBOAT_NODE_SITE: z.string().min(1).optional(),
  LIFEBOAT_NODE_VERSION: z.string().default(pkg.version),
  // How often the node reports its heartbeat and load (stored with the node, for the monitor).
  LIFEBOAT_NODE_HEARTBEAT_SECONDS: positiveInt.default(10),
  // Adaptive write concurrency (AIMD) of PutSnapshotBlock: per snapshot and per node worker, the
  // lower bound, the start and the upper bound of the calls in flight, and the cut on throttling.
  LIFEBOAT_SNAPSHOT_WRITES_MIN: positiveInt.default(2),
  LIFEBOAT_SNAPSHOT_WRITES_INITIAL: positiveInt.default(64),
  LIFEBOAT_SNAPSHOT_WRITES_MAX: positiveInt.max(1000).default(128),
  LIFEBOAT_NODE_WRITES_MIN: positiveInt.default(4),
  LIFEBOAT_NODE_WRITES_INITIAL: positiveInt.default(128),
  LIFEBOAT_NODE_WRITES_MAX: positiveInt.max(4000).default(256),
  LIFEBOAT_WRITES_DECREASE_FACTOR: z.coerce.number().gt(0).lt(1).default(0.7),
  // An incremental's parent snapshot seen completed by this node within this many seconds is not
  // described again (EC2 Describe* calls are throttled per account); 0 = describe it every time.
  LIFEBOAT_PARENT_CHECK_SECONDS: z.coerce.number().int().min(0).default(300),
  // Reverse replication: GetSnapshotBlock calls in flight per disk being written back.
  LIFEBOAT_REVERSE_READS: positiveInt.max(256).default(16),

  // Rolling appliance upgrades: how often the rollout looks at the nodes, how long it waits for
  // another online node, for a drained node to be idle, and for an upgraded node to come back.
  LIFEBOAT_UPGRADE_POLL_SECONDS: z.coerce.number().positive().default(5),
  LIFEBOAT_UPGRADE_PEER_WAIT_SECONDS: z.coerce.number().positive().default(600),
  LIFEBOAT_UPGRADE_IDLE_TIMEOUT_SECONDS: z.coerce.number().positive().default(43_200),
  LIFEBOAT_UPGRADE_RETURN_TIMEOUT_SECONDS: z.coerce.number().positive().default(900),
});

export type Config = z.infer<typeof configSchema>;

/** The AIMD bounds of the node worker's block writes (per snapshot and per node), checked for order. */
export function writeConcurrencyOf(config: Config) {
  const bounds = (prefix: 'SNAPSHOT' | 'NODE') => {
    const min = config[`LIFEBOAT_${prefix}_WRITES_MIN`];
    const max = config[`LIFEBOAT_${prefix}_WRITES_MAX`];
    if (min > max)
      throw new ConfigError(
        `Invalid configuration:\n  LIFEBOAT_${prefix}_WRITES_MIN: ${min} is above LIFEBOAT_${prefix}_WRITES_MAX (${max})`,
      );
    return {
      min,
      max,
      initial: config[`LIFEBOAT_${prefix}_WRITES_INITIAL`],
      decreaseFactor: config.LIFEBOAT_WRITES_DECREASE_FACTOR,
    };
  };
  return { snapshot: bounds('SNAPSHOT'), node: bounds('NODE') };
}

let cached: Config | undefined;

/**
 * Forget the parsed process environment: the next loadConfig() reads it again. For tools that set
 * variables after a module already read them at import time (a benchmark's EC2 pacing rates).
 */
export function reloadConfig(): Config {
  cached = undefined;
  return loadConfig();
}

/** Parse the environment; a bad value fails fast with the variable's name. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  if (env === process.env && cached) return cached;
  const config = parseEnv(configSchema, env);
  if (env === process.env) cached = config;
  return config;
}

function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The Temporal frontend address the processes dial. */
export function temporalAddress(config: Config): string {
  return config.TEMPORAL_ADDRESS ?? `127.0.0.1:${config.TEMPORAL_PORT}`;
}

/** The API's public base URL (no trailing slash), for links to jobs in notifications. */
export function publicUrl(config: Config): string {
  return (config.LIFEBOAT_PUBLIC_URL ?? `http://${config.API_HOST}:${config.API_PORT}`).replace(/\/+$/, '');
}

/** The retry policy of notification deliveries. */
export function notifyRetry(config: Config) {
  return {
    initialIntervalMs: Math.round(config.LIFEBOAT_NOTIFY_RETRY_INITIAL_SECONDS * 1000),
    maximumIntervalMs: Math.round(config.LIFEBOAT_NOTIFY_RETRY_MAX_INTERVAL_SECONDS * 1000),
    giveUpAfterMs: Math.round(config.LIFEBOAT_NOTIFY_RETRY_HOURS * 3600_000),
    ...(config.LIFEBOAT_NOTIFY_MAX_ATTEMPTS ? { maximumAttempts: config.LIFEBOAT_NOTIFY_MAX_ATTEMPTS } : {}),
  };
}

/** The AWS endpoint override, or undefined for the real AWS endpoints. */
export function awsEndpoint(config: Config): string | undefined {
  if (config.LIFEBOAT_AWS_ENDPOINT === 'aws') return undefined;
  if (config.LIFEBOAT_AWS_ENDPOINT === 'moto') return `http://127.0.0.1:${config.MOTO_PORT}`;
  return config.LIFEBOAT_AWS_ENDPOINT;
}

/** Whether the AWS SDK will find credentials in the environment (else loopback endpoints get dummy ones). */
export function awsEnvCredentials(config: Config): boolean {
  return Boolean(config.AWS_ACCESS_KEY_ID || config.AWS_PROFILE);
}

/**
 * Values of this process's environment variables whose names look secret (AWS_SECRET_ACCESS_KEY,
 * TEMPORAL_API_KEY…): operator scripts' output is redacted of them. Read here, once, so the
 * environment has one door.
 */
export function environmentSecretValues(env: NodeJS.ProcessEnv = process.env): string[] {
  return secretValues(env);
}

/** The CLI's settings: where the API is and the token to use (flags win over these). */
export const cliConfigSchema = z.object({
  LIFEBOAT_URL: z.url().default('http://127.0.0.1:8080'),
  LIFEBOAT_TOKEN: z.string().optional(),
});
export type CliConfig = z.infer<typeof cliConfigSchema>;

export function loadCliConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  return parseEnv(cliConfigSchema, env);
}

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/lifeboat';

export function databaseUrl(config: Config): string {
  return config.DATABASE_URL ?? DEFAULT_DATABASE_URL;
}

/**
 * The value of an environment variable the operator names on the command line
 * (`lifeboat secrets set NAME --from-env VAR`): a secret handed over without shell history.
 */
export function operatorEnvValue(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env[name];
}

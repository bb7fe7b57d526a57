import type { EC2Client } from '@aws-sdk/client-ec2';
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import type { Config } from '../lib/config';
import type { Db } from '../schema/db';
import type { AuthEnv } from './auth/middleware';
import { validationHook } from './errors';
import type { DependencyName, HealthProbe } from './health';

export type { AuthEnv };

/** What the app and every concern router are built from. */
export interface AppDeps {
  config: Config;
  db: Db;
  /** Temporal client for schedules, workflow starts, queries (lazy connection). */
  temporal: Client;
  probes: Record<DependencyName, HealthProbe>;
  /** Tests only: SDK middleware for the EC2 clients the API makes (the strict layer, test/helpers/aws-layers.ts). */
  awsClientHooks?: { ec2?: (client: EC2Client) => void };
}

/** A router for one concern under /v1; every one gets the same validation hook. */
export const v1Router = () => new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });

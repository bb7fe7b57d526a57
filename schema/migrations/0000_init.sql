CREATE TYPE "public"."token_role" AS ENUM('viewer', 'operator', 'admin');--> statement-breakpoint
CREATE TYPE "public"."step_status" AS ENUM('pending', 'running', 'completed', 'failed', 'skipped', 'cancelled');--> statement-breakpoint
CREATE TYPE "public"."job_kind" AS ENUM('replication', 'test-recovery', 'full-recovery', 'migration', 'cleanup', 'verify', 'reverse-replication');--> statement-breakpoint
CREATE TYPE "public"."job_status" AS ENUM('pending', 'running', 'completed', 'partially-completed', 'failed', 'cancelled');--> statement-breakpoint
CREATE TYPE "public"."node_kind" AS ENUM('replication-appliance', 'cloud-connector');--> statement-breakpoint
CREATE TYPE "public"."node_state" AS ENUM('online', 'draining', 'offline', 'suspect');--> statement-breakpoint
CREATE TYPE "public"."site_kind" AS ENUM('aws', 'file');--> statement-breakpoint
CREATE TYPE "public"."site_role" AS ENUM('source', 'target');--> statement-breakpoint
CREATE TABLE "api_tokens" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"role" "token_role" NOT NULL,
	"prefix" text NOT NULL,
	"secret_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_tokens_name_unique" UNIQUE("name"),
	CONSTRAINT "api_tokens_secret_hash_unique" UNIQUE("secret_hash")
);
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"token_id" uuid,
	"actor" text NOT NULL,
	"method" text NOT NULL,
	"path" text NOT NULL,
	"action" text NOT NULL,
	"status" integer NOT NULL,
	"detail" jsonb
);
--> statement-breakpoint
CREATE TABLE "disks" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"vm_id" uuid NOT NULL,
	"name" text NOT NULL,
	"source_ref" text NOT NULL,
	"size_bytes" bigint NOT NULL,
	"device_name" text NOT NULL,
	CONSTRAINT "disks_vm_name" UNIQUE("vm_id","name")
);
--> statement-breakpoint
CREATE TABLE "job_steps" (
	"job_id" uuid NOT NULL,
	"key" text NOT NULL,
	"seq" integer NOT NULL,
	"name" text NOT NULL,
	"status" "step_status" DEFAULT 'pending' NOT NULL,
	"actor" text,
	"message" text,
	"progress" jsonb,
	"log" text,
	"started_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	CONSTRAINT "job_steps_job_id_key_pk" PRIMARY KEY("job_id","key")
);
--> statement-breakpoint
CREATE TABLE "jobs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"kind" "job_kind" NOT NULL,
	"status" "job_status" DEFAULT 'pending' NOT NULL,
	"plan_id" uuid,
	"workflow_id" text NOT NULL,
	"requested_by" text,
	"params" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"result" jsonb,
	"error" text,
	"remediation" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	CONSTRAINT "jobs_workflow_id_unique" UNIQUE("workflow_id")
);
--> statement-breakpoint
CREATE TABLE "nodes" (
	"id" text PRIMARY KEY NOT NULL,
	"site_id" uuid,
	"kind" "node_kind" NOT NULL,
	"version" text NOT NULL,
	"state" "node_state" DEFAULT 'online' NOT NULL,
	"task_queue" text NOT NULL,
	"active_jobs" integer DEFAULT 0 NOT NULL,
	"cpu_percent" double precision DEFAULT 0 NOT NULL,
	"last_heartbeat_at" timestamp with time zone DEFAULT now() NOT NULL,
	"registered_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "plans" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"description" text,
	"source_site_id" uuid NOT NULL,
	"target_site_id" uuid NOT NULL,
	"replication" jsonb NOT NULL,
	"checkpoints" jsonb NOT NULL,
	"pre_script" jsonb,
	"post_script" jsonb,
	"target_defaults" jsonb NOT NULL,
	"replication_paused" boolean DEFAULT false NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "plans_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "recovery_point_disks" (
	"recovery_point_id" uuid NOT NULL,
	"disk_id" uuid NOT NULL,
	"vm_id" uuid NOT NULL,
	"snapshot_id" text NOT NULL,
	"parent_snapshot_id" text,
	"source_snapshot_id" text,
	"volume_size_gib" integer NOT NULL,
	"total_blocks" integer NOT NULL,
	"changed_blocks" integer NOT NULL,
	"bytes_written" bigint NOT NULL,
	"duration_ms" integer NOT NULL,
	"node_id" text NOT NULL,
	CONSTRAINT "recovery_point_disks_recovery_point_id_disk_id_pk" PRIMARY KEY("recovery_point_id","disk_id")
);
--> statement-breakpoint
CREATE TABLE "recovery_points" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"plan_id" uuid NOT NULL,
	"vm_id" uuid,
	"workflow_id" text NOT NULL,
	"point_in_time" timestamp with time zone NOT NULL,
	"completed_at" timestamp with time zone DEFAULT now() NOT NULL,
	"bytes_written" bigint DEFAULT 0 NOT NULL,
	"changed_blocks" integer DEFAULT 0 NOT NULL,
	"duration_ms" integer DEFAULT 0 NOT NULL,
	"preserved" boolean DEFAULT false NOT NULL,
	"is_checkpoint" boolean DEFAULT false NOT NULL,
	"expires_at" timestamp with time zone,
	CONSTRAINT "recovery_points_workflow_id_unique" UNIQUE("workflow_id")
);
--> statement-breakpoint
CREATE TABLE "sites" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"role" "site_role" NOT NULL,
	"kind" "site_kind" NOT NULL,
	"settings" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sites_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "vms" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"plan_id" uuid NOT NULL,
	"name" text NOT NULL,
	"boot_order" integer NOT NULL,
	"replication_priority" integer NOT NULL,
	"spec" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "vms_plan_name" UNIQUE("plan_id","name")
);
--> statement-breakpoint
ALTER TABLE "disks" ADD CONSTRAINT "disks_vm_id_vms_id_fk" FOREIGN KEY ("vm_id") REFERENCES "public"."vms"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "job_steps" ADD CONSTRAINT "job_steps_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_plan_id_plans_id_fk" FOREIGN KEY ("plan_id") REFERENCES "public"."plans"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "nodes" ADD CONSTRAINT "nodes_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "plans" ADD CONSTRAINT "plans_source_site_id_sites_id_fk" FOREIGN KEY ("source_site_id") REFERENCES "public"."sites"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "plans" ADD CONSTRAINT "plans_target_site_id_sites_id_fk" FOREIGN KEY ("target_site_id") REFERENCES "public"."sites"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "recovery_point_disks" ADD CONSTRAINT "recovery_point_disks_recovery_point_id_recovery_points_id_fk" FOREIGN KEY ("recovery_point_id") REFERENCES "public"."recovery_points"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "recovery_point_disks" ADD CONSTRAINT "recovery_point_disks_disk_id_disks_id_fk" FOREIGN KEY ("disk_id") REFERENCES "public"."disks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "recovery_point_disks" ADD CONSTRAINT "recovery_point_disks_vm_id_vms_id_fk" FOREIGN KEY ("vm_id") REFERENCES "public"."vms"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD CONSTRAINT "recovery_points_plan_id_plans_id_fk" FOREIGN KEY ("plan_id") REFERENCES "public"."plans"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD CONSTRAINT "recovery_points_vm_id_vms_id_fk" FOREIGN KEY ("vm_id") REFERENCES "public"."vms"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "vms" ADD CONSTRAINT "vms_plan_id_plans_id_fk" FOREIGN KEY ("plan_id") REFERENCES "public"."plans"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "jobs_plan_kind_status" ON "jobs" USING btree ("plan_id","kind","status");--> statement-breakpoint
CREATE INDEX "recovery_points_plan_time" ON "recovery_points" USING btree ("plan_id","point_in_time");
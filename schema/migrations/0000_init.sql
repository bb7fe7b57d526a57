CREATE TYPE "public"."node_kind" AS ENUM('replication-appliance', 'cloud-connector');--> statement-breakpoint
CREATE TYPE "public"."node_state" AS ENUM('online', 'draining', 'offline', 'suspect');--> statement-breakpoint
CREATE TYPE "public"."site_kind" AS ENUM('aws', 'file');--> statement-breakpoint
CREATE TYPE "public"."site_role" AS ENUM('source', 'target');--> statement-breakpoint
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
ALTER TABLE "nodes" ADD CONSTRAINT "nodes_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE set null ON UPDATE no action;
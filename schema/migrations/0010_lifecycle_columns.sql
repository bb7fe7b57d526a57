ALTER TYPE "public"."job_kind" ADD VALUE 'checkpoint';--> statement-breakpoint
ALTER TYPE "public"."job_kind" ADD VALUE 'expiry';--> statement-breakpoint
ALTER TYPE "public"."job_kind" ADD VALUE 'consistency-check';--> statement-breakpoint
ALTER TYPE "public"."job_kind" ADD VALUE 'appliance-upgrade';--> statement-breakpoint
ALTER TYPE "public"."job_kind" ADD VALUE 'failback';--> statement-breakpoint
ALTER TABLE "recovery_points" ADD COLUMN "preserved_reason" text;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD COLUMN "lock_mode" text;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD COLUMN "locked_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD COLUMN "verification_state" text DEFAULT 'unverified' NOT NULL;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD COLUMN "verified_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD COLUMN "verification_failure" jsonb;
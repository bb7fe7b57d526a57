ALTER TABLE "plans" ADD COLUMN "failback_script" jsonb;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD COLUMN "direction" text DEFAULT 'forward' NOT NULL;
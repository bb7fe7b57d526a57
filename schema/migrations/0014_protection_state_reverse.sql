ALTER TABLE "plans" ADD COLUMN "failback_script" jsonb;--> statement-breakpoint
ALTER TABLE "plans" ADD COLUMN "protection_state" text DEFAULT 'protected' NOT NULL;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD COLUMN "direction" text DEFAULT 'forward' NOT NULL;
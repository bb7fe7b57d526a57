ALTER TABLE "job_steps" ADD COLUMN "attempt" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "waiting_until" timestamp with time zone;
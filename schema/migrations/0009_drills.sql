ALTER TYPE "public"."job_kind" ADD VALUE 'drill';--> statement-breakpoint
ALTER TABLE "plans" ADD COLUMN "drills" jsonb;
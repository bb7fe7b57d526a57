ALTER TABLE "jobs" DROP CONSTRAINT "jobs_workflow_id_unique";--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "run_id" text;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "plan_name" text;--> statement-breakpoint
CREATE INDEX "jobs_workflow_id" ON "jobs" USING btree ("workflow_id","run_id");
CREATE TABLE "job_reports" (
	"job_id" uuid PRIMARY KEY NOT NULL,
	"plan_id" uuid,
	"kind" text NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"verdict" text NOT NULL,
	"achieved_rpo_seconds" integer,
	"achieved_rto_seconds" integer,
	"built_at" timestamp with time zone NOT NULL,
	"report" jsonb NOT NULL
);
--> statement-breakpoint
ALTER TABLE "plans" ADD COLUMN "objectives" jsonb;--> statement-breakpoint
CREATE INDEX "job_reports_plan_kind_started" ON "job_reports" USING btree ("plan_id","kind","started_at");
CREATE TABLE "job_logs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"job_id" uuid NOT NULL,
	"time" timestamp with time zone DEFAULT now() NOT NULL,
	"level" text NOT NULL,
	"step_key" text,
	"node" text,
	"bytes" bigint,
	"message" text NOT NULL,
	"error" text,
	"remediation" text,
	"data" jsonb,
	"key" text,
	CONSTRAINT "job_logs_key_unique" UNIQUE("key")
);
--> statement-breakpoint
ALTER TABLE "job_logs" ADD CONSTRAINT "job_logs_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "job_logs_job_id" ON "job_logs" USING btree ("job_id","id");
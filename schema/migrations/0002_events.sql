CREATE TABLE "events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"time" timestamp with time zone DEFAULT now() NOT NULL,
	"type" text NOT NULL,
	"severity" text NOT NULL,
	"plan_id" uuid,
	"vm_id" uuid,
	"job_id" uuid,
	"node_id" text,
	"message" text NOT NULL,
	"remediation" text,
	"data" jsonb,
	"key" text,
	CONSTRAINT "events_key_unique" UNIQUE("key")
);
--> statement-breakpoint
CREATE INDEX "events_plan_time" ON "events" USING btree ("plan_id","id");--> statement-breakpoint
CREATE INDEX "events_type_time" ON "events" USING btree ("type","id");
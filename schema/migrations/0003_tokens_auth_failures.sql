CREATE TABLE "auth_failures" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"window_start" timestamp with time zone NOT NULL,
	"source" text NOT NULL,
	"reason" text NOT NULL,
	"token" text NOT NULL,
	"method" text NOT NULL,
	"path" text NOT NULL,
	"count" integer NOT NULL,
	"first_seen" timestamp with time zone NOT NULL,
	"last_seen" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "api_tokens" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
CREATE UNIQUE INDEX "auth_failures_key" ON "auth_failures" USING btree ("window_start","source","reason","token","method","path");--> statement-breakpoint
CREATE INDEX "auth_failures_last_seen" ON "auth_failures" USING btree ("last_seen");
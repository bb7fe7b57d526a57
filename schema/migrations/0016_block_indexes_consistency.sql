CREATE TABLE "block_index_chunks" (
	"recovery_point_id" uuid NOT NULL,
	"disk_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"data" "bytea" NOT NULL,
	CONSTRAINT "block_index_chunks_recovery_point_id_disk_id_seq_pk" PRIMARY KEY("recovery_point_id","disk_id","seq")
);
--> statement-breakpoint
CREATE TABLE "block_indexes" (
	"recovery_point_id" uuid NOT NULL,
	"disk_id" uuid NOT NULL,
	"node_id" text NOT NULL,
	"size_bytes" bigint NOT NULL,
	"block_count" integer NOT NULL,
	"chunk_blocks" integer NOT NULL,
	"chunk_count" integer NOT NULL,
	"compression" text DEFAULT 'deflate' NOT NULL,
	"digest" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "block_indexes_recovery_point_id_disk_id_pk" PRIMARY KEY("recovery_point_id","disk_id")
);
--> statement-breakpoint
ALTER TABLE "plans" ADD COLUMN "consistency_checks" jsonb;
ALTER TABLE "recovery_points" DROP CONSTRAINT "recovery_points_workflow_id_unique";--> statement-breakpoint
CREATE INDEX "recovery_points_workflow" ON "recovery_points" USING btree ("workflow_id");
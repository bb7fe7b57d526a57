ALTER TABLE "vms" DROP CONSTRAINT "vms_plan_name";--> statement-breakpoint
ALTER TABLE "recovery_point_disks" DROP CONSTRAINT "recovery_point_disks_disk_id_disks_id_fk";
--> statement-breakpoint
ALTER TABLE "recovery_point_disks" DROP CONSTRAINT "recovery_point_disks_vm_id_vms_id_fk";
--> statement-breakpoint
ALTER TABLE "recovery_points" DROP CONSTRAINT "recovery_points_plan_id_plans_id_fk";
--> statement-breakpoint
ALTER TABLE "recovery_points" DROP CONSTRAINT "recovery_points_vm_id_vms_id_fk";
--> statement-breakpoint
ALTER TABLE "recovery_point_disks" ADD COLUMN "vm_name" text;--> statement-breakpoint
ALTER TABLE "recovery_point_disks" ADD COLUMN "disk_name" text;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD COLUMN "plan_name" text;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD COLUMN "target_site_id" uuid;--> statement-breakpoint
ALTER TABLE "recovery_points" ADD CONSTRAINT "recovery_points_target_site_id_sites_id_fk" FOREIGN KEY ("target_site_id") REFERENCES "public"."sites"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "vms_plan_lower_name" ON "vms" USING btree ("plan_id",lower("name"));
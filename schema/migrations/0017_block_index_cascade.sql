-- Block-hash indexes go with their recovery point (issue 17.1). No foreign key is possible: the
-- node writes the index before the iteration records the point, so the delete cascades here.
CREATE OR REPLACE FUNCTION lifeboat_delete_block_indexes() RETURNS trigger AS $$
BEGIN
  DELETE FROM "block_indexes" WHERE "recovery_point_id" = OLD."id";
  DELETE FROM "block_index_chunks" WHERE "recovery_point_id" = OLD."id";
  RETURN OLD;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER "recovery_points_delete_block_indexes" AFTER DELETE ON "recovery_points"
  FOR EACH ROW EXECUTE FUNCTION lifeboat_delete_block_indexes();

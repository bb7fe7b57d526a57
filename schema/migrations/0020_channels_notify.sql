-- Every write to "channels" tells the workers (NOTIFY lifeboat_channels): they keep the enabled
-- channels in memory for matching events and reload them on this notice, instead of selecting
-- them for every event (activities/control/notifications).
CREATE OR REPLACE FUNCTION lifeboat_notify_channels_changed() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('lifeboat_channels', '');
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER "channels_notify_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "channels"
  FOR EACH STATEMENT EXECUTE FUNCTION lifeboat_notify_channels_changed();

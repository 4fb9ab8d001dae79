-- The change feed: every committed write a live view shows is announced on
-- the channel `sam_changes` with `<kind>:<user id>`, whichever replica made
-- it. NOTIFY is delivered at commit (never for a rolled-back write), and
-- identical notifications of one transaction are sent once.
CREATE OR REPLACE FUNCTION sam_announce_workspace_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('sam_changes', 'workspaces:' || OLD.owner);
    ELSE
        PERFORM pg_notify('sam_changes', 'workspaces:' || NEW.owner);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION sam_announce_sign_in_end() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sam_changes', 'sign-ins:' || OLD.user_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER workspaces_announce_insert_delete AFTER INSERT OR DELETE ON workspaces
    FOR EACH ROW EXECUTE FUNCTION sam_announce_workspace_change();

-- A heartbeat that brings no new activity changes nothing a view shows.
CREATE TRIGGER workspaces_announce_update AFTER UPDATE ON workspaces
    FOR EACH ROW
    WHEN (OLD.version IS DISTINCT FROM NEW.version
          OR OLD.last_activity_at IS DISTINCT FROM NEW.last_activity_at)
    EXECUTE FUNCTION sam_announce_workspace_change();

CREATE TRIGGER sessions_announce_delete AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sam_announce_sign_in_end();

-- Wakes the relay as soon as events commit: one notification per inserting statement
-- (notifications are delivered at commit, and duplicates within a transaction fold into one).
CREATE FUNCTION notify_events_appended() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('nmp_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_appended
    AFTER INSERT ON events
    FOR EACH STATEMENT
EXECUTE FUNCTION notify_events_appended();

-- How far each relay (one per NATS prefix) has published: the last event, in commit order,
-- whose publication NATS acknowledged.
CREATE TABLE relay_checkpoints
(
    relay_name      text PRIMARY KEY,
    tx_id           xid8   NOT NULL,
    global_position bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The inbox service's columns, and delivery receipts (docs/inbox.md). V003, not V002: the
-- roles' migration (notipipe_sink, notipipe_reader) may come before it; the grants at the end
-- apply when those roles exist.

-- Archived by the user, through the inbox service; the sink never writes it (nor read_at).
ALTER TABLE inbox ADD COLUMN archived_at timestamptz;

-- Pages of a user's inbox, newest first, by the stable cursor (created_at, delivery_id).
DROP INDEX inbox_user_created;
-- COLLATE "C": ids compare byte by byte, as the service compares cursors, whatever the locale.
CREATE INDEX inbox_user_newest ON inbox (user_id, created_at DESC, delivery_id COLLATE "C" DESC);
-- The unread badge counts what is neither read nor archived.
DROP INDEX inbox_user_unread;
CREATE INDEX inbox_user_unread ON inbox (user_id) WHERE read_at IS NULL AND archived_at IS NULL;

-- The latest receipt per delivery, as the gateways reported it (connectors/jdbc-receipts.json
-- upserts the DeliveryStatus records of notifications.receipts here).
CREATE TABLE delivery_receipts (
    delivery_id  text        PRIMARY KEY,
    user_id      text        NOT NULL,
    channel      text        NOT NULL,  -- EMAIL, SMS, PUSH, IN_APP
    status       text        NOT NULL,  -- DELIVERED, OPENED, BOUNCED, FAILED
    reason       text,
    provider     text,
    reported_at  timestamptz NOT NULL,  -- when the provider says it happened
    received_at  timestamptz NOT NULL,  -- when the webhook took it
    stored_at    timestamptz NOT NULL DEFAULT now()
);

-- The latest status of each delivery, next to what was sent. Kept by the triggers below from
-- delivery_receipts: a receipt may be stored before its delivery_log row (two sinks, each at its
-- own pace), and the JDBC sink's upsert overwrites unconditionally.
ALTER TABLE delivery_log
    ADD COLUMN status             text,
    ADD COLUMN status_reason      text,
    ADD COLUMN status_provider    text,
    ADD COLUMN status_reported_at timestamptz;

-- Receipts arrive in any order (retries, several gateways): an older one arriving late must not
-- replace a newer status. Same instant: the later stage wins (a bounce or failure over a delivery
-- report, an open over a delivery). Returning NULL from a BEFORE UPDATE trigger skips the update
-- the sink's INSERT ... ON CONFLICT DO UPDATE asked for.
CREATE FUNCTION receipt_stage(status text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE status WHEN 'DELIVERED' THEN 1 WHEN 'OPENED' THEN 2 ELSE 3 END $$;

CREATE FUNCTION delivery_receipts_keep_latest() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF (NEW.reported_at, receipt_stage(NEW.status)) < (OLD.reported_at, receipt_stage(OLD.status)) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER keep_latest BEFORE UPDATE ON delivery_receipts
    FOR EACH ROW EXECUTE FUNCTION delivery_receipts_keep_latest();

-- Both directions take the same lock, so a receipt and its delivery_log row stored at the same
-- moment by the two sinks cannot miss each other. One lock for every delivery, not one each: the
-- sinks write batches of rows in their own orders, and a lock per row taken in two orders
-- deadlocks. It serializes the two sinks' transactions with each other (not the inbox sink's).
-- SECURITY DEFINER: the sinks' roles need no rights on the other sink's table.
CREATE FUNCTION delivery_receipts_to_log() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('delivery_status'));
    UPDATE delivery_log
       SET status = NEW.status, status_reason = NEW.reason, status_provider = NEW.provider,
           status_reported_at = NEW.reported_at
     WHERE delivery_id = NEW.delivery_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER to_delivery_log AFTER INSERT OR UPDATE ON delivery_receipts
    FOR EACH ROW EXECUTE FUNCTION delivery_receipts_to_log();

CREATE FUNCTION delivery_log_status_from_receipts() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('delivery_status'));
    SELECT status, reason, provider, reported_at
      INTO NEW.status, NEW.status_reason, NEW.status_provider, NEW.status_reported_at
      FROM delivery_receipts WHERE delivery_id = NEW.delivery_id;
    RETURN NEW;
END
$$;

CREATE TRIGGER status_from_receipts BEFORE INSERT ON delivery_log
    FOR EACH ROW EXECUTE FUNCTION delivery_log_status_from_receipts();

-- Least privilege, where the roles exist: the inbox service reads the inbox and writes only the
-- user's marks; the receipts sink writes only its own table.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'notipipe_reader') THEN
        GRANT SELECT ON inbox TO notipipe_reader;
        GRANT UPDATE (read_at, archived_at) ON inbox TO notipipe_reader;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'notipipe_sink') THEN
        GRANT SELECT ON delivery_receipts TO notipipe_sink;
        GRANT INSERT (delivery_id, user_id, channel, status, reason, provider, reported_at, received_at),
              UPDATE (delivery_id, user_id, channel, status, reason, provider, reported_at, received_at)
            ON delivery_receipts TO notipipe_sink;
    END IF;
END
$$;

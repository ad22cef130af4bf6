-- Tables the JDBC sinks write (connectors/jdbc-inbox.json, connectors/jdbc-delivery-log.json).
-- The project owns this DDL; the connectors run with schema.evolution=none and never create or
-- alter a table. Applied by `notipipe stack up` (stack/migrations.py) before connectors are
-- registered; an applied file is never edited: add V002__... instead.
--
-- Columns the sinks write are exactly the fields each connector's ReplaceField SMT keeps from the
-- Delivery record (schemas/delivery.avsc); upsert on delivery_id only updates those, so columns
-- the sinks do not write (read_at, stored_at) survive a redelivered record.

-- In-app notifications, one row per delivery, for an app's notification centre.
CREATE TABLE inbox (
    delivery_id       text        PRIMARY KEY,
    user_id           text        NOT NULL,
    kind              text        NOT NULL,  -- SINGLE or DIGEST
    category          text        NOT NULL,
    priority          text        NOT NULL,  -- LOW, NORMAL, HIGH, CRITICAL
    title             text        NOT NULL,
    body              text        NOT NULL,
    item_count        integer     NOT NULL,
    event_ids         text[]      NOT NULL,
    digest_key        text,
    created_at        timestamptz NOT NULL,  -- when the router decided to send it
    first_occurred_at timestamptz NOT NULL,
    -- Owned by the app, never written by the sink: when the user read or dismissed it.
    read_at           timestamptz,
    stored_at         timestamptz NOT NULL DEFAULT now()
);

-- "Newest notifications of a user", and "how many unread".
CREATE INDEX inbox_user_created ON inbox (user_id, created_at DESC);
CREATE INDEX inbox_user_unread ON inbox (user_id) WHERE read_at IS NULL;

-- Every delivery on every channel, as decided by the router (what was sent where, and why).
CREATE TABLE delivery_log (
    delivery_id       text        PRIMARY KEY,
    user_id           text        NOT NULL,
    channel           text        NOT NULL,  -- EMAIL, SMS, PUSH, IN_APP
    address           text,
    kind              text        NOT NULL,
    category          text        NOT NULL,
    priority          text        NOT NULL,
    title             text        NOT NULL,
    body              text        NOT NULL,
    item_count        integer     NOT NULL,
    event_ids         text[]      NOT NULL,
    digest_key        text,
    reason            text        NOT NULL,  -- immediate, critical, digest_window, ...
    created_at        timestamptz NOT NULL,
    first_occurred_at timestamptz NOT NULL,
    stored_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX delivery_log_user_created ON delivery_log (user_id, created_at DESC);
CREATE INDEX delivery_log_created ON delivery_log (created_at);

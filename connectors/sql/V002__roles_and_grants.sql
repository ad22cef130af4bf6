-- Who may do what (docs/security.md). The owner role (the one running these migrations) owns every
-- table; the JDBC sinks connect as notipipe_sink, an inbox service as notipipe_reader. Neither may
-- create, alter or drop anything. Their passwords are not here: `notipipe stack up` / `stack init`
-- set them (stack/db_roles.py) from NOTIPIPE_POSTGRES_SINK_PASSWORD / _READER_PASSWORD or, on the
-- local stack, its generated secrets.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'notipipe_sink') THEN
        CREATE ROLE notipipe_sink LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'notipipe_reader') THEN
        CREATE ROLE notipipe_reader LOGIN;
    END IF;
    -- Only these roles (and the owner) may connect; nobody else may make temporary tables.
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO notipipe_sink, notipipe_reader', current_database());
END
$$;

-- Nothing is created in the schema but by its owner (PostgreSQL 15 already denies PUBLIC that).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO notipipe_sink, notipipe_reader;

-- The JDBC sinks upsert exactly the columns of their ReplaceField SMT (connectors/jdbc-*.json),
-- never read_at (the app's) or stored_at.
GRANT SELECT ON inbox, delivery_log TO notipipe_sink;
GRANT INSERT (delivery_id, user_id, kind, category, priority, title, body, item_count, event_ids,
              digest_key, created_at, first_occurred_at),
      UPDATE (delivery_id, user_id, kind, category, priority, title, body, item_count, event_ids,
              digest_key, created_at, first_occurred_at)
    ON inbox TO notipipe_sink;
GRANT INSERT (delivery_id, user_id, channel, address, kind, category, priority, title, body,
              item_count, event_ids, digest_key, reason, created_at, first_occurred_at),
      UPDATE (delivery_id, user_id, channel, address, kind, category, priority, title, body,
              item_count, event_ids, digest_key, reason, created_at, first_occurred_at)
    ON delivery_log TO notipipe_sink;

-- An inbox service: reads a user's notifications and marks them read; nothing else.
GRANT SELECT ON inbox TO notipipe_reader;
GRANT UPDATE (read_at) ON inbox TO notipipe_reader;

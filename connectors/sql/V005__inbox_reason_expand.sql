-- migration: no-transaction
-- Expand: the inbox gets why each notification went out (delivery_log has it: immediate,
-- critical, digest_window, quiet_hours, throttle_window), so the app can say "held during your
-- quiet hours"; and an index for a user's notifications of one category (a filter tab).
-- Neither blocks the sinks' writes: a nullable column without a default changes the catalogue
-- only, and the index is built concurrently (outside a transaction, hence the first line). The
-- jdbc-inbox connector names the column from this version on; V006 makes it required.
ALTER TABLE inbox ADD COLUMN IF NOT EXISTS reason text;
-- The sinks write exactly the columns their connector names (V002).
GRANT INSERT (reason), UPDATE (reason) ON inbox TO notipipe_sink;
CREATE INDEX CONCURRENTLY IF NOT EXISTS inbox_user_category
    ON inbox (user_id, category, created_at DESC);

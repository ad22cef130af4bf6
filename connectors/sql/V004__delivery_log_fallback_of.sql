-- A fallback's link to the first delivery of its chain (Delivery.fallback_of): which deliveries
-- were sent again on another channel, and instead of which. Written by jdbc-delivery-log; null
-- for every other delivery. V004: V002 and V003 are taken by the roles and the inbox service.
ALTER TABLE delivery_log ADD COLUMN fallback_of text;

-- "What became of this delivery": its fallbacks, by the first delivery's id.
CREATE INDEX delivery_log_fallback_of ON delivery_log (fallback_of) WHERE fallback_of IS NOT NULL;

-- The JDBC sink writes it, as it writes the other columns it owns (V002).
GRANT INSERT (fallback_of), UPDATE (fallback_of) ON delivery_log TO notipipe_sink;

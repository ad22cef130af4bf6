-- migration: no-transaction
-- Contract: every writer writes inbox.reason now (the jdbc-inbox connector names it since V005),
-- so the rows written before are filled in from the delivery log, and the column becomes
-- required. Each statement commits on its own: the constraint is added NOT VALID (new writes are
-- checked, no scan under the table's lock), then validated, which reads the table without
-- blocking writes.
UPDATE inbox SET reason = l.reason FROM delivery_log l
    WHERE inbox.reason IS NULL AND l.delivery_id = inbox.delivery_id;
UPDATE inbox SET reason = 'unknown' WHERE reason IS NULL;
DO $$ BEGIN ALTER TABLE inbox ADD CONSTRAINT inbox_reason_required CHECK (reason IS NOT NULL) NOT VALID; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
ALTER TABLE inbox VALIDATE CONSTRAINT inbox_reason_required;

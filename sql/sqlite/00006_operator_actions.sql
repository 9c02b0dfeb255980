-- Operators steer single activations (batch retry, batch cancel; see
-- README "Operating"):
-- * state 'cancelled': a pending or selected activation an operator stopped
--   before its order; terminal, reported once like failed rows.
-- * activations.retries counts the times an operator put the row back
--   (batch retry). Each life of a row is reported once: report_items is
--   unique per (activation, retries), no longer per activation, so a
--   retried row that fails again or succeeds is in the next report.
-- * events.actor: who did it (the operator; empty for the job itself). The
--   why is the event's message.
--
-- SQLite cannot alter a CHECK constraint. Widening one is the edit SQLite's
-- documentation allows through writable_schema (no stored row can violate
-- the wider check); it leaves every other column, index and reference of
-- activations as it is. RESET makes this connection re-read the schema, and
-- the DDL below bumps the schema cookie, so every other connection re-reads
-- it too. The temporary table refuses the migration if the edit missed.
-- report_items is small and has no dependants: it is rebuilt.
-- +goose Up
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, '''provisioned'', ''qr_ready'', ''failed'')',
    '''provisioned'', ''qr_ready'', ''failed'', ''cancelled'')')
WHERE type = 'table' AND name = 'activations';
PRAGMA writable_schema = RESET;
CREATE TEMP TABLE migration_00006 (activations_state_check_widened integer CHECK (activations_state_check_widened = 1));
INSERT INTO migration_00006 SELECT COUNT(*) FROM sqlite_schema
WHERE type = 'table' AND name = 'activations' AND sql LIKE '%''failed'', ''cancelled'')%';
DROP TABLE migration_00006;

ALTER TABLE activations ADD COLUMN retries integer NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN actor text NOT NULL DEFAULT '';

CREATE TABLE report_items_new (
    report_id     bigint NOT NULL REFERENCES reports (id),
    activation_id bigint NOT NULL REFERENCES activations (id),
    retries       integer NOT NULL DEFAULT 0,
    UNIQUE (activation_id, retries)
);
INSERT INTO report_items_new (report_id, activation_id) SELECT report_id, activation_id FROM report_items;
DROP TABLE report_items;
ALTER TABLE report_items_new RENAME TO report_items;
CREATE INDEX report_items_report ON report_items (report_id);

DROP INDEX activations_unreported;
CREATE INDEX activations_unreported ON activations (id)
    WHERE reported_at IS NULL AND state IN ('qr_ready', 'provisioned', 'failed', 'cancelled');

-- +goose Down
-- The old schema knows neither cancelled rows nor a row in two reports:
-- cancelled rows become failed at step cancel, and each activation keeps
-- only the report of its latest life.
UPDATE activations SET state = 'failed', last_error_step = 'cancel', last_error_code = 'cancelled'
WHERE state = 'cancelled';
CREATE TABLE report_items_old (
    report_id     bigint NOT NULL REFERENCES reports (id),
    activation_id bigint NOT NULL UNIQUE REFERENCES activations (id)
);
INSERT INTO report_items_old (report_id, activation_id) SELECT i.report_id, i.activation_id FROM report_items i
WHERE NOT EXISTS (SELECT 1 FROM report_items j WHERE j.activation_id = i.activation_id AND j.retries > i.retries);
DROP TABLE report_items;
ALTER TABLE report_items_old RENAME TO report_items;
CREATE INDEX report_items_report ON report_items (report_id);

DROP INDEX activations_unreported;
CREATE INDEX activations_unreported ON activations (id)
    WHERE reported_at IS NULL AND state IN ('qr_ready', 'provisioned', 'failed');
ALTER TABLE events DROP COLUMN actor;
ALTER TABLE activations DROP COLUMN retries;

PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, '''provisioned'', ''qr_ready'', ''failed'', ''cancelled'')',
    '''provisioned'', ''qr_ready'', ''failed'')')
WHERE type = 'table' AND name = 'activations';
PRAGMA writable_schema = RESET;
CREATE INDEX migration_00006_down ON activations (id);
DROP INDEX migration_00006_down;

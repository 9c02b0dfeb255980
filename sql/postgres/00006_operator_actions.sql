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
-- +goose Up
ALTER TABLE activations DROP CONSTRAINT activations_state_check;
ALTER TABLE activations ADD CONSTRAINT activations_state_check CHECK (state IN
    ('pending', 'selected', 'ordering', 'submitted', 'completed',
     'provisioned', 'qr_ready', 'failed', 'cancelled'));
ALTER TABLE activations ADD COLUMN retries integer NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN actor text NOT NULL DEFAULT '';

ALTER TABLE report_items ADD COLUMN retries integer NOT NULL DEFAULT 0;
ALTER TABLE report_items DROP CONSTRAINT report_items_activation_id_key;
ALTER TABLE report_items ADD CONSTRAINT report_items_activation_retries_key UNIQUE (activation_id, retries);

DROP INDEX activations_unreported;
CREATE INDEX activations_unreported ON activations (id)
    WHERE reported_at IS NULL AND state IN ('qr_ready', 'provisioned', 'failed', 'cancelled');

-- +goose Down
-- The old schema knows neither cancelled rows nor a row in two reports:
-- cancelled rows become failed at step cancel, and each activation keeps
-- only the report of its latest life.
UPDATE activations SET state = 'failed', last_error_step = 'cancel', last_error_code = 'cancelled'
WHERE state = 'cancelled';
DELETE FROM report_items i WHERE EXISTS (SELECT 1 FROM report_items j
    WHERE j.activation_id = i.activation_id AND j.retries > i.retries);
DROP INDEX activations_unreported;
CREATE INDEX activations_unreported ON activations (id)
    WHERE reported_at IS NULL AND state IN ('qr_ready', 'provisioned', 'failed');
ALTER TABLE report_items DROP CONSTRAINT report_items_activation_retries_key;
ALTER TABLE report_items DROP COLUMN retries;
ALTER TABLE report_items ADD CONSTRAINT report_items_activation_id_key UNIQUE (activation_id);
ALTER TABLE events DROP COLUMN actor;
ALTER TABLE activations DROP COLUMN retries;
ALTER TABLE activations DROP CONSTRAINT activations_state_check;
ALTER TABLE activations ADD CONSTRAINT activations_state_check CHECK (state IN
    ('pending', 'selected', 'ordering', 'submitted', 'completed',
     'provisioned', 'qr_ready', 'failed'));

-- A run's numbers are another run's orphans only once that run has ended or
-- its lease has passed: a live run that lost its lock for a moment (or a
-- slow one) keeps what it holds. The lease is renewed at every claim batch.
-- +goose Up
ALTER TABLE runs ADD COLUMN lease_until TIMESTAMP;

-- +goose Down
ALTER TABLE runs DROP COLUMN lease_until;

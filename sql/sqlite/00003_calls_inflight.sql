-- A call is written before it is sent (outcome 'inflight') and completed
-- after, so the calls of a process killed mid-call still count against the
-- credential's budget. A fault 233 stores until when its method is blocked,
-- so the next process on the credential waits for it too.
-- +goose Up
ALTER TABLE calls ADD COLUMN blocked_until TIMESTAMP;
CREATE INDEX calls_blocked ON calls (credential, blocked_until) WHERE blocked_until IS NOT NULL;

-- +goose Down
DROP INDEX calls_blocked;
ALTER TABLE calls DROP COLUMN blocked_until;

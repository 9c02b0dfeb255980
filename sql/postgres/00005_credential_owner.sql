-- Credentials are the unit of scale: several Octane users of one account
-- work one database. A pending row belongs to no credential (''); the
-- credential that first claims it owns it from then on, and every claim,
-- release, reconcile and orphan check filters by it (docs/design.md,
-- "Credentials and ownership"). A reserved number belongs to the credential
-- that reserved it: Octane lets only that user select, order or unreserve it.
-- Rows and numbers from before take the credential of the run that last
-- claimed or reserved them.
-- +goose Up
ALTER TABLE activations ADD COLUMN credential text NOT NULL DEFAULT '';
ALTER TABLE reservations ADD COLUMN credential text NOT NULL DEFAULT '';
UPDATE activations a SET credential = ru.credential FROM runs ru WHERE ru.id = a.run_id;
UPDATE reservations r SET credential = ru.credential FROM runs ru WHERE ru.id = r.run_id;
CREATE INDEX reservations_credential_live ON reservations (credential, reserved_at, id) WHERE state IN ('free', 'assigned');

-- +goose Down
DROP INDEX reservations_credential_live;
ALTER TABLE reservations DROP COLUMN credential;
ALTER TABLE activations DROP COLUMN credential;

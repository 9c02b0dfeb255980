-- The Summary sheet counts the calls of the runs a report covers, by run:
-- run start times follow the job's clock, which send times (wall clock, as
-- Octane counts them) do not under BATCH_TIME_OFFSET or in the demo.
-- +goose Up
CREATE INDEX calls_run ON calls (run_id);

-- +goose Down
DROP INDEX calls_run;

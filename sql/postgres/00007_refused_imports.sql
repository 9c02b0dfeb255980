-- Files the import phase refused whole (no header, a missing column, not
-- UTF-8, not a readable workbook, too large): each
-- is listed once in the next report's Rejected imports sheet and in
-- `batch status`, instead of only in a log line and a note beside the file.
-- One row per file name and content: the same file refused again (after a
-- move that failed) is not listed twice. moved_to is the IMPORT_DIR
-- subfolder the file went to ('rejected').
-- +goose Up
CREATE TABLE refused_imports (
    id           bigserial PRIMARY KEY,
    file         text NOT NULL,
    content_hash text NOT NULL DEFAULT '',
    reason       text NOT NULL,
    moved_to     text NOT NULL DEFAULT '',
    refused_at   timestamptz NOT NULL,
    reported_at  timestamptz
);
CREATE UNIQUE INDEX refused_imports_file ON refused_imports (file, content_hash);
CREATE INDEX refused_imports_unreported ON refused_imports (id) WHERE reported_at IS NULL;

-- UNIQUE: no refused file is in two reports.
CREATE TABLE report_refused (
    report_id  bigint NOT NULL REFERENCES reports (id),
    refused_id bigint NOT NULL UNIQUE REFERENCES refused_imports (id)
);
CREATE INDEX report_refused_report ON report_refused (report_id);

ALTER TABLE reports ADD COLUMN refused integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE reports DROP COLUMN refused;
DROP TABLE report_refused;
DROP TABLE refused_imports;

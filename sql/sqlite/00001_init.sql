-- The esimbatch schema (SQLite). Times are TIMESTAMP text in one fixed UTC
-- format with six fractional digits, so they compare correctly as text.
-- The activation table is the queue;
-- events is the append-only log of every call and state change per
-- activation; calls is the call log that seeds the rate limiter.

-- +goose Up
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    credential  text NOT NULL DEFAULT '',
    phases      text NOT NULL DEFAULT '',
    dry_run     BOOLEAN NOT NULL DEFAULT false,
    outcome     text NOT NULL DEFAULT '',
    counts      text NOT NULL DEFAULT '{}',
    error       text NOT NULL DEFAULT ''
);

CREATE TABLE imports (
    id           INTEGER PRIMARY KEY,
    file_name    text NOT NULL,
    content_hash text NOT NULL UNIQUE,
    imported_at  TIMESTAMP NOT NULL,
    data_rows    integer NOT NULL DEFAULT 0,
    blank        integer NOT NULL DEFAULT 0,
    accepted     integer NOT NULL DEFAULT 0,
    duplicate    integer NOT NULL DEFAULT 0,
    rejected     integer NOT NULL DEFAULT 0
);

CREATE TABLE import_rejects (
    id          INTEGER PRIMARY KEY,
    import_id   bigint NOT NULL REFERENCES imports (id),
    file        text NOT NULL,
    line        integer NOT NULL,
    reason      text NOT NULL,
    raw         text NOT NULL DEFAULT '',
    imported_at TIMESTAMP NOT NULL,
    reported_at TIMESTAMP
);
CREATE INDEX import_rejects_unreported ON import_rejects (id) WHERE reported_at IS NULL;

CREATE TABLE activations (
    id                 INTEGER PRIMARY KEY,
    sales_ref          text NOT NULL UNIQUE,
    given_names        text NOT NULL DEFAULT '',
    surname            text NOT NULL DEFAULT '',
    email              text NOT NULL DEFAULT '',
    address_line1      text NOT NULL DEFAULT '',
    suburb             text NOT NULL DEFAULT '',
    addr_state         text NOT NULL DEFAULT '',
    postcode           text NOT NULL DEFAULT '',
    notes              text NOT NULL DEFAULT '',
    cust_no            bigint,
    plan_no            integer NOT NULL,
    sim_type           text NOT NULL DEFAULT 'esim' CHECK (sim_type IN ('esim', 'physical')),
    sim_serial         text NOT NULL DEFAULT '',
    state              text NOT NULL DEFAULT 'pending' CHECK (state IN
                         ('pending', 'selected', 'ordering', 'submitted', 'completed',
                          'provisioned', 'qr_ready', 'failed')),
    msn                text NOT NULL DEFAULT '',
    reserved_at        TIMESTAMP,
    order_id           text NOT NULL DEFAULT '',
    order_sent_at      TIMESTAMP,
    order_attempts     integer NOT NULL DEFAULT 0,
    qr_by_email        BOOLEAN NOT NULL DEFAULT false,
    adopted            BOOLEAN NOT NULL DEFAULT false,
    next_poll_at       TIMESTAMP,
    last_poll_at       TIMESTAMP,
    poll_count         integer NOT NULL DEFAULT 0,
    service_number     text NOT NULL DEFAULT '',
    completed_at       TIMESTAMP,
    activation_code    text NOT NULL DEFAULT '',
    qr_png             BLOB,
    iccid              text NOT NULL DEFAULT '',
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    TIMESTAMP NOT NULL,
    first_attempt_at   TIMESTAMP,
    last_attempt_at    TIMESTAMP,
    last_error_step    text NOT NULL DEFAULT '',
    last_error_code    text NOT NULL DEFAULT '',
    last_error_message text NOT NULL DEFAULT '',
    claim_token        text NOT NULL DEFAULT '',
    claim_until        TIMESTAMP,
    run_id             bigint,
    reported_at        TIMESTAMP,
    import_id          bigint REFERENCES imports (id),
    source_line        integer NOT NULL DEFAULT 0,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);
-- One partial index per phase: each claim reads only its own rows.
CREATE INDEX activations_submit ON activations (next_attempt_at, id) WHERE state IN ('pending', 'selected');
CREATE INDEX activations_ordering ON activations (id) WHERE state = 'ordering';
CREATE INDEX activations_poll ON activations (next_poll_at, id) WHERE state = 'submitted';
CREATE INDEX activations_qr ON activations (next_attempt_at, id) WHERE state = 'completed';
CREATE INDEX activations_release ON activations (reserved_at) WHERE state = 'selected';
CREATE INDEX activations_unreported ON activations (id)
    WHERE reported_at IS NULL AND state IN ('qr_ready', 'provisioned', 'failed');

CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    at            TIMESTAMP NOT NULL,
    run_id        bigint,
    activation_id bigint NOT NULL REFERENCES activations (id),
    kind          text NOT NULL CHECK (kind IN ('call', 'state')),
    step          text NOT NULL DEFAULT '',
    from_state    text NOT NULL DEFAULT '',
    to_state      text NOT NULL DEFAULT '',
    outcome       text NOT NULL DEFAULT '',
    code          text NOT NULL DEFAULT '',
    message       text NOT NULL DEFAULT '',
    duration_ns   bigint NOT NULL DEFAULT 0
);
CREATE INDEX events_activation ON events (activation_id, id);

CREATE TABLE calls (
    id            INTEGER PRIMARY KEY,
    run_id        bigint,
    activation_id bigint,
    credential    text NOT NULL,
    method        text NOT NULL,
    sent_at       TIMESTAMP NOT NULL,
    duration_ns   bigint NOT NULL DEFAULT 0,
    waited_ns     bigint NOT NULL DEFAULT 0,
    outcome       text NOT NULL DEFAULT '',
    code          text NOT NULL DEFAULT '',
    message       text NOT NULL DEFAULT '',
    msn           text NOT NULL DEFAULT '',
    order_id      text NOT NULL DEFAULT ''
);
CREATE INDEX calls_credential_sent ON calls (credential, sent_at);
CREATE INDEX calls_sent ON calls (sent_at);

CREATE TABLE reservations (
    id             INTEGER PRIMARY KEY,
    msn            text NOT NULL,
    reservation_id text NOT NULL DEFAULT '',
    run_id         bigint NOT NULL,
    reserved_at    TIMESTAMP NOT NULL,
    state          text NOT NULL CHECK (state IN ('free', 'assigned', 'consumed', 'released')),
    activation_id  bigint REFERENCES activations (id),
    updated_at     TIMESTAMP NOT NULL
);
-- A number is held at most once at a time.
CREATE UNIQUE INDEX reservations_live_msn ON reservations (msn) WHERE state IN ('free', 'assigned');
CREATE INDEX reservations_live ON reservations (reserved_at, id) WHERE state IN ('free', 'assigned');
CREATE INDEX reservations_activation ON reservations (activation_id) WHERE state = 'assigned';

CREATE TABLE reports (
    id           INTEGER PRIMARY KEY,
    number       bigint NOT NULL UNIQUE,
    created_at   TIMESTAMP NOT NULL,
    period_from  TIMESTAMP NOT NULL,
    period_to    TIMESTAMP NOT NULL,
    message_id   text NOT NULL DEFAULT '',
    file         text NOT NULL DEFAULT '',
    delivered_at TIMESTAMP,
    activations  integer NOT NULL DEFAULT 0,
    rejects      integer NOT NULL DEFAULT 0
);

-- UNIQUE: no activation and no reject can ever be in two reports.
CREATE TABLE report_items (
    report_id     bigint NOT NULL REFERENCES reports (id),
    activation_id bigint NOT NULL UNIQUE REFERENCES activations (id)
);
CREATE INDEX report_items_report ON report_items (report_id);

CREATE TABLE report_rejects (
    report_id bigint NOT NULL REFERENCES reports (id),
    reject_id bigint NOT NULL UNIQUE REFERENCES import_rejects (id)
);
CREATE INDEX report_rejects_report ON report_rejects (report_id);

-- Lease rows for the run lock where advisory locks are missing (SQLite).
CREATE TABLE run_locks (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE run_locks;
DROP TABLE report_rejects;
DROP TABLE report_items;
DROP TABLE reports;
DROP TABLE reservations;
DROP TABLE calls;
DROP TABLE events;
DROP TABLE activations;
DROP TABLE import_rejects;
DROP TABLE imports;
DROP TABLE runs;

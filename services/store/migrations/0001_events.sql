-- The event store: postgres-es's `events` table (with jsonb instead of json) extended with a
-- commit-safe global order. `global_position` numbers rows as they are inserted; `tx_id` is the
-- inserting transaction, so a reader that takes only rows with
-- tx_id < pg_snapshot_xmin(pg_current_snapshot()) in (tx_id, global_position) order never skips
-- an event whose transaction commits late. postgres-es's own inserts leave both columns alone.
CREATE TABLE events
(
    aggregate_type  text                         NOT NULL,
    aggregate_id    text                         NOT NULL,
    sequence        bigint CHECK (sequence >= 0) NOT NULL,
    event_type      text                         NOT NULL,
    event_version   text                         NOT NULL,
    payload         jsonb                        NOT NULL,
    metadata        jsonb                        NOT NULL,
    global_position bigint GENERATED ALWAYS AS IDENTITY,
    tx_id           xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position ON events (global_position);
CREATE INDEX events_commit_order ON events (tx_id, global_position);

-- Which Teams tenant each account is linked to, kept in the same transaction as the account's
-- events so a request for information can name its account at once. Derived from the events,
-- so it can be rebuilt from them.
CREATE TABLE account_tenants
(
    account_name text PRIMARY KEY,
    tenant_id    text NOT NULL
);
CREATE INDEX account_tenants_tenant ON account_tenants (tenant_id, account_name);

-- Responses kept for Repeatability-Request-ID, so a repeated request gets the first answer.
-- A row with a NULL status is a request still being carried out.
CREATE TABLE repeatable_requests
(
    request_id  text PRIMARY KEY,
    fingerprint text        NOT NULL,
    first_sent  timestamptz NOT NULL,
    status      smallint,
    headers     jsonb,
    body        bytea,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX repeatable_requests_created ON repeatable_requests (created_at);

-- Read models, built by the projector from the event stream. Each row keeps the version
-- (last applied sequence) of its aggregate, written in the same transaction as the row, so a
-- redelivered or older event changes nothing. `state` is the aggregate's state as the domain
-- serialises it; the other columns exist to filter, sort and count.

CREATE TABLE read_accounts
(
    name            text PRIMARY KEY,
    version         bigint      NOT NULL,
    deleted         boolean     NOT NULL DEFAULT false,
    teams_tenant_id text,
    services        text[]      NOT NULL DEFAULT '{}',
    sync_status     text        NOT NULL,
    number_count    bigint      NOT NULL DEFAULT 0,
    state           jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX read_accounts_live ON read_accounts (name) WHERE NOT deleted;
CREATE INDEX read_accounts_tenant ON read_accounts (teams_tenant_id) WHERE NOT deleted;

CREATE TABLE read_numbers
(
    telephone_number  text PRIMARY KEY,
    version           bigint      NOT NULL,
    deleted           boolean     NOT NULL DEFAULT false,
    account_name      text,
    services          text[]      NOT NULL DEFAULT '{}',
    usage             text,
    assignment_status text,
    sync_status       text        NOT NULL,
    custom_sip_header text,
    state             jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX read_numbers_account ON read_numbers (account_name, telephone_number) WHERE NOT deleted;
CREATE INDEX read_numbers_live ON read_numbers (telephone_number) WHERE NOT deleted;
CREATE INDEX read_numbers_sync ON read_numbers (sync_status, telephone_number) WHERE NOT deleted;
CREATE INDEX read_numbers_usage ON read_numbers (usage, telephone_number) WHERE NOT deleted;
CREATE INDEX read_numbers_services ON read_numbers USING gin (services) WHERE NOT deleted;

CREATE TABLE read_consents
(
    tenant_id           text PRIMARY KEY,
    version             bigint      NOT NULL,
    deleted             boolean     NOT NULL DEFAULT false,
    status              text,
    relationship_status text,
    sync_status         text        NOT NULL,
    state               jsonb,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Civic addresses and their locations, as the backend reports them for a tenant; `address`
-- is the API's TeamsCivicAddressResource.
CREATE TABLE read_civic_addresses
(
    civic_address_id  text PRIMARY KEY,
    version           bigint      NOT NULL,
    deleted           boolean     NOT NULL DEFAULT false,
    tenant_id         text,
    country           text,
    validation_status text,
    sync_status       text        NOT NULL,
    address           jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX read_civic_addresses_tenant ON read_civic_addresses (tenant_id, civic_address_id)
    WHERE NOT deleted;

-- One row per event: who, when, what, which ticket.
CREATE TABLE audit_log
(
    global_position bigint PRIMARY KEY,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL,
    event_type      text        NOT NULL,
    subject         text,
    roles           jsonb,
    ticket_id       text,
    correlation_id  text,
    client_request_id text,
    occurred_at     timestamptz NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (occurred_at DESC);
CREATE INDEX audit_log_aggregate ON audit_log (aggregate_type, aggregate_id, sequence);

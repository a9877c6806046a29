-- The provisioning saga's own state (services/saga). None of it is an event: it is what the
-- saga must remember between its calls to the Teams backend, so that a crash or a redelivery
-- never places an order twice, and so that several saga instances share the work.

-- What may need the backend: one row per aggregate the stream named, with the greatest event
-- sequence seen for it. The intake writes it before acknowledging the message; a worker claims
-- rows (FOR UPDATE SKIP LOCKED, then a lease), decides from the aggregate's current state what
-- the backend needs, and deletes the row once the backend has answered for every version up to
-- `version` (a newer change keeps it).
CREATE TABLE saga_work
(
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    version        bigint      NOT NULL,
    -- Transient failures so far, for the backoff; reset when the backend answers.
    attempts       integer     NOT NULL DEFAULT 0,
    not_before     timestamptz NOT NULL DEFAULT now(),
    leased_until   timestamptz,
    last_error     text,
    -- When the intake first recorded it: a short batch of young items may wait a moment for
    -- more to fill its call.
    first_seen     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
CREATE INDEX saga_work_due ON saga_work (aggregate_type, not_before);

-- Upload orders, written before they are placed: the row's id is the order id the backend
-- sees, and placing the same id again returns the order already placed. `body` is the order
-- as placed, `results` the backend's per-number results once it completed.
-- state: new (not yet known to be placed) -> placed -> done (outcomes recorded as commands,
-- results saved, the numbers it uploaded marked held). Unfinished orders are resumed after a
-- restart (placed again under their id, or polled), never re-batched.
CREATE TABLE saga_orders
(
    id           uuid PRIMARY KEY,
    tenant_id    text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('new', 'placed', 'done')),
    body         jsonb       NOT NULL,
    results      jsonb,
    attempts     integer     NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    leased_until timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    placed_at    timestamptz,
    completed_at timestamptz
);
CREATE INDEX saga_orders_open ON saga_orders (next_at) WHERE state <> 'done';

-- The changes each order carries: one number at the version of its change. A change is in at
-- most one order, ever, and a number in at most one unfinished order.
CREATE TABLE saga_order_items
(
    order_id         uuid    NOT NULL,
    telephone_number text    NOT NULL,
    for_version      bigint  NOT NULL,
    open             boolean NOT NULL DEFAULT true,
    PRIMARY KEY (order_id, telephone_number),
    UNIQUE (telephone_number, for_version)
);
CREATE UNIQUE INDEX saga_order_items_one_open ON saga_order_items (telephone_number) WHERE open;

-- The numbers the backend holds, and for which tenant: written when an upload order completes,
-- removed when the backend confirms a release. It decides between uploading and updating, and
-- where a release goes.
CREATE TABLE saga_held
(
    telephone_number text PRIMARY KEY,
    tenant_id        text        NOT NULL,
    since            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX saga_held_tenant ON saga_held (tenant_id);

-- The civic addresses the backend sync recorded, per tenant, so it can tell which ones the
-- backend no longer reports.
CREATE TABLE sync_civic_addresses
(
    civic_address_id text PRIMARY KEY,
    tenant_id        text NOT NULL
);
CREATE INDEX sync_civic_addresses_tenant ON sync_civic_addresses (tenant_id);

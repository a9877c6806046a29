-- Events the projector could not project after every retry (projections/src/projector.rs):
-- parked here, acknowledged on the stream, and counted (nmp_projector_parked_events_total),
-- instead of being redelivered for ever. Once the cause is fixed, `nmp projections rebuild`
-- (or the aggregate's next event) brings its row up to date; the rows stay as a record.
CREATE TABLE projection_dead_letters
(
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    subject         text        NOT NULL,
    stream_sequence bigint      NOT NULL,
    deliveries      bigint      NOT NULL,
    error           text        NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projection_dead_letters_aggregate
    ON projection_dead_letters (aggregate_type, aggregate_id);

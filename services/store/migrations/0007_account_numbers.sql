-- Number membership leaves the account's stream (services/store/src/membership.rs).
--
-- Until now every write of a number appended `NumbersAdded`/`NumbersRemoved` to its account's
-- stream as well, so all writes of one account's numbers queued on that stream's next sequence
-- and lost to each other under load. Which account holds a number, with the services it uses
-- there, is now a row of `account_numbers`, written in the same transaction as the number's own
-- events. Like `account_tenants` it is derived from the events and never read by anything but
-- the command side.
--
-- Writers that change a membership take the account's advisory lock in shared mode and check
-- that the account's stream is still at the version they decided on; the rare account changes
-- that depend on the memberships (deleting it, switching off a service, changing its Teams
-- tenant) take the lock exclusively and read the memberships under it.
CREATE TABLE account_numbers
(
    telephone_number text PRIMARY KEY,
    account_name     text   NOT NULL,
    -- The services the number uses, by their wire names.
    services         text[] NOT NULL
);
CREATE INDEX account_numbers_account ON account_numbers (account_name, telephone_number);

-- Memberships recorded on the account streams until now, replayed in the order they were
-- written (a number leaves one account before another can take it).
DO $$
DECLARE
    e record;
BEGIN
    FOR e IN
        SELECT aggregate_id, event_type, payload
          FROM events
         WHERE aggregate_type = 'account'
           AND event_type IN ('NumbersAdded', 'NumbersRemoved', 'AccountDeleted',
                              'AccountDeletionRequested')
         ORDER BY global_position
    LOOP
        IF e.event_type = 'NumbersAdded' THEN
            INSERT INTO account_numbers (telephone_number, account_name, services)
            SELECT m->>'telephone_number', e.aggregate_id,
                   ARRAY(SELECT jsonb_array_elements_text(m->'services'))
              FROM jsonb_array_elements(e.payload->'NumbersAdded'->'numbers') AS m
            ON CONFLICT (telephone_number) DO UPDATE
               SET account_name = EXCLUDED.account_name, services = EXCLUDED.services;
        ELSIF e.event_type = 'NumbersRemoved' THEN
            DELETE FROM account_numbers
             WHERE account_name = e.aggregate_id
               AND telephone_number IN
                   (SELECT jsonb_array_elements_text(e.payload->'NumbersRemoved'->'numbers'));
        ELSIF e.event_type = 'AccountDeleted' THEN
            DELETE FROM account_numbers WHERE account_name = e.aggregate_id;
        ELSE
            DELETE FROM account_numbers
             WHERE account_name = e.aggregate_id
               AND telephone_number IN (SELECT jsonb_array_elements_text(
                       e.payload->'AccountDeletionRequested'->'deleted_numbers'));
        END IF;
    END LOOP;
END
$$;

-- The account's lock: one advisory lock per account name, shared by membership writers.
CREATE FUNCTION nmp_account_lock_key(account text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT hashtextextended('nmp.account:' || account, 0) $$;

-- Takes the shared lock of each account (in name order, so writers never deadlock) and checks
-- that its stream is at the expected version; raises 40001 (serialization_failure) otherwise,
-- which the event store reports as a conflict. Each check runs after its lock is held, on a
-- snapshot of its own, so it sees whatever an exclusive holder committed.
CREATE FUNCTION nmp_share_accounts(accounts text[], versions bigint[]) RETURNS void
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    a record;
    current bigint;
BEGIN
    FOR a IN SELECT * FROM unnest(accounts, versions) AS w(name, version) ORDER BY name LOOP
        PERFORM pg_advisory_xact_lock_shared(nmp_account_lock_key(a.name));
        SELECT COALESCE(max(sequence), 0) INTO current
          FROM events WHERE aggregate_type = 'account' AND aggregate_id = a.name;
        IF current <> a.version THEN
            RAISE EXCEPTION 'account % is at version %, not %', a.name, current, a.version
                USING ERRCODE = '40001';
        END IF;
    END LOOP;
END
$$;

-- The read side keeps the counts of an account's numbers beside its row, recomputed from the
-- number rows by the projector (an account's events no longer change when its numbers do).
ALTER TABLE read_accounts ADD COLUMN number_counts jsonb NOT NULL DEFAULT '{}';
UPDATE read_accounts SET number_count = 0 WHERE number_count <> 0;
UPDATE read_accounts a
   SET number_count  = COALESCE(c.total, 0),
       number_counts = COALESCE(c.by_service, '{}')
  FROM (SELECT n.account_name,
               count(DISTINCT n.telephone_number) AS total,
               (SELECT jsonb_object_agg(s, k)
                  FROM (SELECT s, count(*) AS k
                          FROM read_numbers m, unnest(m.services) AS s
                         WHERE m.account_name = n.account_name AND NOT m.deleted
                         GROUP BY s) AS per) AS by_service
          FROM read_numbers n
         WHERE NOT n.deleted
         GROUP BY n.account_name) AS c
 WHERE c.account_name = a.name;
UPDATE read_accounts SET state = state - 'number_counts' WHERE state ? 'number_counts';

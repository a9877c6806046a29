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

-- Everything one command writes, in one statement (one round trip, and in autocommit no
-- BEGIN/COMMIT of its own): the shared account locks and their checks first, then the events
-- (their chain links already in `metadata`), the memberships and the tenant links.
-- `member_services` are text[] literals, one per member (arrays of arrays must be rectangular);
-- a NULL `tenant_ids` entry clears the account's link.
CREATE FUNCTION nmp_append(
    shared_accounts text[], shared_versions bigint[],
    aggregate_types text[], aggregate_ids text[], sequences bigint[], event_types text[],
    event_versions text[], payloads jsonb[], metadata jsonb[],
    member_numbers text[], member_accounts text[], member_services text[],
    removed_numbers text[],
    tenant_accounts text[], tenant_ids text[]) RETURNS void
    LANGUAGE plpgsql VOLATILE
    -- Its statements take arrays: custom plans (planned anew on every call, a fifth of the
    -- database's time per command) bring nothing over the generic ones.
    SET plan_cache_mode = force_generic_plan
    AS $$
BEGIN
    IF cardinality(shared_accounts) > 0 THEN
        PERFORM nmp_share_accounts(shared_accounts, shared_versions);
    END IF;
    IF cardinality(aggregate_ids) > 0 THEN
        INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                            payload, metadata)
        SELECT * FROM unnest(aggregate_types, aggregate_ids, sequences, event_types,
                             event_versions, payloads, metadata);
    END IF;
    IF cardinality(member_numbers) > 0 THEN
        INSERT INTO account_numbers (telephone_number, account_name, services)
        SELECT n, a, s::text[] FROM unnest(member_numbers, member_accounts, member_services)
                                        AS m(n, a, s)
        ON CONFLICT (telephone_number) DO UPDATE
           SET account_name = EXCLUDED.account_name, services = EXCLUDED.services;
    END IF;
    IF cardinality(removed_numbers) > 0 THEN
        DELETE FROM account_numbers WHERE telephone_number = ANY (removed_numbers);
    END IF;
    FOR i IN 1 .. coalesce(cardinality(tenant_accounts), 0) LOOP
        IF tenant_ids[i] IS NULL THEN
            DELETE FROM account_tenants WHERE account_name = tenant_accounts[i];
        ELSE
            INSERT INTO account_tenants (account_name, tenant_id)
            VALUES (tenant_accounts[i], tenant_ids[i])
            ON CONFLICT (account_name) DO UPDATE SET tenant_id = EXCLUDED.tenant_id;
        END IF;
    END LOOP;
END
$$;

-- The events of aggregates (types[i], ids[i]) after sequence after[i]: one index lookup each,
-- on a plan made once per connection.
CREATE FUNCTION nmp_events_after(types text[], ids text[], after bigint[])
    RETURNS TABLE (aggregate_type text, aggregate_id text, sequence bigint, event_type text,
                   event_version text, payload jsonb, hash text)
    LANGUAGE plpgsql STABLE
    SET plan_cache_mode = force_generic_plan
    AS $$
BEGIN
    RETURN QUERY
        SELECT w.t, e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload,
               e.metadata->'chain'->>'hash'
          FROM unnest(types, ids, after) AS w(t, i, a)
         CROSS JOIN LATERAL (SELECT * FROM events e
                              WHERE e.aggregate_type = w.t AND e.aggregate_id = w.i
                                AND e.sequence > w.a
                             OFFSET 0) AS e
         ORDER BY 1, 2, 3;
END
$$;

-- Several commands in one statement and one transaction (group commit, store/src/combiner.rs).
-- Command i's entries in each array run from the previous command's end (0 for the first)
-- + 1 to its own end in the matching `*_ends` array. Each command is written by `nmp_append`
-- in a subtransaction of its own: one that fails on a taken sequence (23505) or a moved account
-- (40001) is rolled back alone. Answers one code per command, in order: 'ok' or the SQLSTATE.
CREATE FUNCTION nmp_append_batch(
    shared_ends int[], shared_accounts text[], shared_versions bigint[],
    row_ends int[], aggregate_types text[], aggregate_ids text[], sequences bigint[],
    event_types text[], event_versions text[], payloads jsonb[], metadata jsonb[],
    member_ends int[], member_numbers text[], member_accounts text[], member_services text[],
    removed_ends int[], removed_numbers text[],
    tenant_ends int[], tenant_accounts text[], tenant_ids text[]) RETURNS SETOF text
    LANGUAGE plpgsql VOLATILE
    SET plan_cache_mode = force_generic_plan
    AS $$
DECLARE
    s int := 0; r int := 0; m int := 0; d int := 0; t int := 0;
BEGIN
    FOR i IN 1 .. cardinality(row_ends) LOOP
        BEGIN
            PERFORM nmp_append(
                shared_accounts[s + 1 : shared_ends[i]], shared_versions[s + 1 : shared_ends[i]],
                aggregate_types[r + 1 : row_ends[i]], aggregate_ids[r + 1 : row_ends[i]],
                sequences[r + 1 : row_ends[i]], event_types[r + 1 : row_ends[i]],
                event_versions[r + 1 : row_ends[i]], payloads[r + 1 : row_ends[i]],
                metadata[r + 1 : row_ends[i]],
                member_numbers[m + 1 : member_ends[i]], member_accounts[m + 1 : member_ends[i]],
                member_services[m + 1 : member_ends[i]],
                removed_numbers[d + 1 : removed_ends[i]],
                tenant_accounts[t + 1 : tenant_ends[i]], tenant_ids[t + 1 : tenant_ends[i]]);
            RETURN NEXT 'ok';
        EXCEPTION WHEN unique_violation OR serialization_failure THEN
            RETURN NEXT SQLSTATE;
        END;
        s := shared_ends[i]; r := row_ends[i]; m := member_ends[i];
        d := removed_ends[i]; t := tenant_ends[i];
    END LOOP;
END
$$;

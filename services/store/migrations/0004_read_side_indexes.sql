-- Indexes for the lists and counts across all numbers (issue 4's goals: a filtered, paged list
-- p99 <= 20 ms, a count <= 100 ms, with 1,000,000 numbers). A page is read key first: an
-- index-only scan finds the page's keys in key order, then the rows are fetched by key; so
-- every index a filter uses ends with the key, and the planner needs no sort.

-- Sync state and usage together (`serviceProvisioningStatus eq 'pending' and usage eq …`).
CREATE INDEX read_numbers_sync_usage ON read_numbers (sync_status, usage, telephone_number)
    WHERE NOT deleted;

-- Counts by usage: the narrowest entries, so `count(*)` reads fewer index pages than through
-- read_numbers_usage (measured 35 ms against 95 ms and more for 700,000 of 1,000,000). Lists
-- by usage keep read_numbers_usage, which is in key order.
CREATE INDEX read_numbers_usage_count ON read_numbers (usage) WHERE NOT deleted;

-- `service eq '<name>'`: the filter compiles it to `'<name>' = ANY(n.services)` with the
-- service's wire name as a literal (filter.rs, only for the fixed set of names), which the
-- planner matches to these partial indexes. `$1 = ANY(services)` could not use the GIN index
-- it replaces, and `services @> ARRAY[…]` on it counted 50,000 of 1,000,000 in 170 ms (7 ms
-- here). One index per service of `domain::Service::ALL`; a new service needs its own.
DROP INDEX read_numbers_services;
CREATE INDEX read_numbers_teams_operator_connect ON read_numbers (telephone_number)
    WHERE NOT deleted AND 'teamsOperatorConnect' = ANY(services);
CREATE INDEX read_numbers_teams_phone_mobile ON read_numbers (telephone_number)
    WHERE NOT deleted AND 'teamsPhoneMobile' = ANY(services);
CREATE INDEX read_numbers_teams_direct_routing ON read_numbers (telephone_number)
    WHERE NOT deleted AND 'teamsDirectRouting' = ANY(services);
CREATE INDEX read_numbers_zoom_phone_cloud_peering ON read_numbers (telephone_number)
    WHERE NOT deleted AND 'zoomPhoneCloudPeering' = ANY(services);
CREATE INDEX read_numbers_azure_operator_call_protection ON read_numbers (telephone_number)
    WHERE NOT deleted AND 'azureOperatorCallProtection' = ANY(services);

-- An account's row no longer carries the map of its numbers (about 44 KB with 1,000 numbers,
-- which the accounts list moved and parsed for every account), but how many of its numbers use
-- each service: `number_counts`, service wire name -> count, for every service. Rows written
-- before this change are converted here; rows written by the projector or a rebuild from now
-- on have the new shape (projections::write::account_row).
UPDATE read_accounts a
   SET state = (a.state - 'numbers') || jsonb_build_object('number_counts', (
       SELECT jsonb_object_agg(s.name, (
           SELECT count(*)
             FROM jsonb_each(coalesce(a.state -> 'numbers', '{}'::jsonb)) AS n(number, services)
            WHERE n.services ? s.name))
         FROM unnest(ARRAY['teamsOperatorConnect', 'teamsPhoneMobile', 'teamsDirectRouting',
                           'zoomPhoneCloudPeering', 'azureOperatorCallProtection']) AS s(name)))
 WHERE a.state IS NOT NULL AND a.state ? 'numbers';

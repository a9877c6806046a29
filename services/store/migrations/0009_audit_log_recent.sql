-- Recent activity (the dashboard's and the portal home's) reads the last events by time, then
-- by position. The events of one transaction share their time, so an index on the time alone
-- left PostgreSQL sorting every event of the last transaction (thousands after an import) to
-- find the first ten. Ordered by both, the index hands them out in order.
CREATE INDEX audit_log_recent ON audit_log (occurred_at DESC, global_position DESC);
DROP INDEX audit_log_time;

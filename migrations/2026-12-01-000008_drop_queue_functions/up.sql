-- The worker claims, re-checks and records one job at a time with plain statements
-- (crates/dunning-store/src/queue): the PL/pgSQL batch functions are read by nobody.
-- Run this migration only once every worker runs this release: a worker of an older
-- release still calls them.
DROP FUNCTION IF EXISTS dunning_claim_batch(text, text, double precision, text[], integer, boolean);
DROP FUNCTION IF EXISTS dunning_hold_batch(bigint[], timestamptz, timestamptz);
DROP FUNCTION IF EXISTS dunning_finish_many(bigint[], bigint[], text[], text[], text[], integer[]);

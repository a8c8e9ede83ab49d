-- No release after this one calls the dropped functions (their bodies are in
-- migrations 000004 and 000006). Placeholders with the same signatures keep the
-- older migrations' down steps, which drop them, working.
CREATE FUNCTION dunning_claim_batch(text, text, double precision, text[], integer, boolean)
RETURNS void LANGUAGE sql AS 'SELECT NULL';
CREATE FUNCTION dunning_hold_batch(bigint[], timestamptz, timestamptz)
RETURNS void LANGUAGE sql AS 'SELECT NULL';
CREATE FUNCTION dunning_finish_many(bigint[], bigint[], text[], text[], text[], integer[])
RETURNS void LANGUAGE sql AS 'SELECT NULL';

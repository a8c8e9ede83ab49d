DROP FUNCTION dunning_finish(bigint, bigint, text, text, text, integer);
DROP FUNCTION dunning_hold(bigint, bigint, text, timestamptz, timestamptz);
DROP FUNCTION dunning_claim(text, text, double precision, text[]);

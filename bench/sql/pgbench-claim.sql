-- scripts/bench, worker drain: the physical limit of a Postgres queue. One
-- statement per transaction claims the oldest unlocked job and deletes it.
DELETE FROM q WHERE id = (SELECT id FROM q ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1);

-- The open store's total in 64 rows instead of one. Every upload without a tenant updated the one
-- row (id = 1) and held its lock through its commit's WAL flush, so all of them queued on it.
-- Each upload now reserves in one row (a random one) within that row's share of the cap (a
-- sixty-fourth); one that does not fit its row locks all of them, in id order, and is refused only
-- if the sum leaves no room (the rows are then spread evenly again). No row ever holds more than
-- its share, so the sum never passes the cap; a report deleted gives its bytes back the same way.
ALTER TABLE open_storage DROP CONSTRAINT open_storage_id_check;
ALTER TABLE open_storage ADD CONSTRAINT open_storage_id_check CHECK (id BETWEEN 1 AND 64);
INSERT INTO open_storage (id, used_bytes) SELECT g, 0 FROM generate_series(1, 64) AS g
ON CONFLICT (id) DO NOTHING;
UPDATE open_storage o
SET used_bytes = t.total / 64 + CASE WHEN o.id <= t.total % 64 THEN 1 ELSE 0 END
FROM (SELECT sum(used_bytes) AS total FROM open_storage) t;

-- Counting and pruning jobs without reading every job ever made: failed jobs are counted from
-- their own partial index (queued and running ones from jobs_claim_idx), and done jobs are found
-- for pruning by when they finished.
CREATE INDEX jobs_failed_idx ON jobs (id) WHERE status = 'failed';
CREATE INDEX jobs_done_idx ON jobs (finished_at) WHERE status = 'done';

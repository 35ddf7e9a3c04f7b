-- The embedding job's dedupe key, built in one place for the SQL that needs it (re-queueing and
-- the photos' job lookup); `JobPayload::dedupe_key` builds the same in Rust, and a test checks
-- that they agree.
CREATE FUNCTION lookalike_embed_job_key(sha256 bytea, model_id integer) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 'embed:' || encode(sha256, 'hex') || ':' || model_id::text;

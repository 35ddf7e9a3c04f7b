-- Tenant-filtered vector search: HNSW iterative scan vs the exact query, for a small tenant
-- hidden among many closer vectors of a big tenant.
--
-- Run (psql only; PostgreSQL 16+ for random_normal(), pgvector 0.8+ for iterative scans):
--   psql "postgres://postgres@127.0.0.1:55432/postgres" -f benches/tenant_search.sql
-- Options (psql -v NAME=VALUE):
--   n_big=100000   big tenant's vectors (default 100000: ~45 s load, ~2 min HNSW build, ~4 min in all
--                  on 2 cores; 5000 for a 10-second smoke run)
--   n_small=20     small tenant's vectors
--   reps=7         timed repetitions per case (after one warm-up); the median is reported
--   keep=1         keep the database tenant_bench at the end (default: drop it)
-- It needs a role that may CREATE DATABASE and CREATE EXTENSION vector. It creates the database
-- tenant_bench (dropping any earlier one), works only there, and drops it at the end.
--
-- Data (adversarial): q is a random unit vector (the query). Each big-tenant vector is q plus
-- gaussian noise of norm ~0.5, normalised (cosine distance to q ~0.11); each small-tenant vector
-- is q plus noise of norm ~1.0 (distance ~0.29): every big-tenant vector is nearer to q than any
-- small-tenant one, so the HNSW walk meets big-tenant tuples first. One photo per report, one
-- model-1 embedding per photo, plus 10 model-2 embeddings (nearer still to q) so the index must
-- be the PARTIAL one for model 1.
--
-- Latencies are server-side (plpgsql EXECUTE ... USING the query vector, one-shot custom plans,
-- as the service's bind-parameter queries get), no client round trip; rows = rows of LIMIT 10.
-- The HNSW build runs with parallel workers, so the graph (and the exact tuple counts of the
-- iterative scan) varies a little between runs even though the data is seeded.

\set ON_ERROR_STOP on
\if :{?n_big} \else \set n_big 100000 \endif
\if :{?n_small} \else \set n_small 20 \endif
\if :{?reps} \else \set reps 7 \endif
\if :{?keep} \else \set keep 0 \endif
\set origdb :DBNAME
\pset pager off

DROP DATABASE IF EXISTS tenant_bench;
CREATE DATABASE tenant_bench;
\c tenant_bench
SET client_min_messages = warning;
CREATE EXTENSION vector;

CREATE TABLE reports (id uuid PRIMARY KEY, tenant_id text NOT NULL);
CREATE TABLE photos (id uuid PRIMARY KEY, report_id uuid NOT NULL, sha256 bytea NOT NULL);
CREATE TABLE embeddings (
    sha256    bytea        NOT NULL,
    model_id  integer      NOT NULL,
    embedding vector(1280) NOT NULL,
    PRIMARY KEY (sha256, model_id)
);
CREATE INDEX reports_tenant_idx ON reports (tenant_id);
CREATE INDEX photos_sha256_idx ON photos (sha256);
CREATE INDEX photos_report_idx ON photos (report_id);

-- Step timings and benchmark results, printed at the end.
CREATE TABLE bench_log (step text, ms numeric);
CREATE TABLE bench_results (id serial, label text, rows_returned bigint, median_ms numeric,
                            min_ms numeric, max_ms numeric, settings text);

-- ---------------------------------------------------------------- data
SELECT setseed(0.42);   -- random() and random_normal() share this seed: same data every run
SELECT clock_timestamp() AS t0 \gset

CREATE TABLE bench_q AS
SELECT l2_normalize(array_agg(random_normal())::vector(1280)) AS q FROM generate_series(1, 1280);

-- The small tenant's rows are spread evenly through the big one's (heap and HNSW insert order).
CREATE TEMP TABLE t AS
SELECT g,
       CASE WHEN g % ((:n_big + :n_small) / :n_small) = 0
             AND g / ((:n_big + :n_small) / :n_small) <= :n_small THEN 'small' ELSE 'big' END AS tenant
FROM generate_series(1, :n_big + :n_small) g;

INSERT INTO reports SELECT md5('r' || g)::uuid, tenant FROM t;
INSERT INTO photos SELECT md5('p' || g)::uuid, md5('r' || g)::uuid, sha256(convert_to('p' || g, 'UTF8')) FROM t;
-- noise per dimension: 0.5/sqrt(1280) (big), 1.0/sqrt(1280) (small)
INSERT INTO embeddings (sha256, model_id, embedding)
SELECT sha256(convert_to('p' || t.g, 'UTF8')), 1,
       l2_normalize(b.q + (SELECT array_agg(n.x * CASE WHEN t.tenant = 'big' THEN 0.5 ELSE 1.0 END / sqrt(1280))
                           FROM (SELECT random_normal() AS x FROM generate_series(1, 1280)) n)::vector(1280))
FROM t, bench_q b;
-- Model 2: 10 vectors very near q (noise norm ~0.2) on the first small-tenant photos.
INSERT INTO embeddings (sha256, model_id, embedding)
SELECT sha256(convert_to('p' || t.g, 'UTF8')), 2,
       l2_normalize(b.q + (SELECT array_agg(n.x * 0.2 / sqrt(1280)) FROM (SELECT random_normal() AS x FROM generate_series(1, 1280) WHERE t.g > 0) n)::vector(1280))
FROM (SELECT g FROM t WHERE tenant = 'small' ORDER BY g LIMIT 10) t, bench_q b;
VACUUM ANALYZE reports, photos, embeddings;
INSERT INTO bench_log SELECT 'load (' || count(*) || ' embeddings) + vacuum analyze',
       round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000) FROM embeddings;

SELECT tenant_id, count(*) FROM reports GROUP BY 1 ORDER BY 1;
SELECT r.tenant_id, e.model_id, count(*),
       round(min(e.embedding <=> b.q)::numeric, 4) AS min_dist, round(max(e.embedding <=> b.q)::numeric, 4) AS max_dist
FROM embeddings e JOIN photos p ON p.sha256 = e.sha256 JOIN reports r ON r.id = p.report_id, bench_q b
GROUP BY 1, 2 ORDER BY 1, 2;

-- ---------------------------------------------------------------- HNSW index (partial, model 1)
SET maintenance_work_mem = '2GB';
SELECT clock_timestamp() AS t0 \gset
CREATE INDEX embeddings_hnsw_m1 ON embeddings USING hnsw (embedding vector_cosine_ops) WHERE model_id = 1;
INSERT INTO bench_log SELECT 'CREATE INDEX hnsw partial model 1 (m=16, ef_construction=64, max_parallel_maintenance_workers=' || current_setting('max_parallel_maintenance_workers') || ')',
       round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000);
RESET maintenance_work_mem;
ANALYZE embeddings;
SELECT pg_size_pretty(pg_relation_size('embeddings_hnsw_m1')) AS hnsw_size,
       pg_size_pretty(pg_total_relation_size('embeddings')) AS embeddings_total;

-- ---------------------------------------------------------------- helpers
-- GUC settings are given as 'name=value'; each is set for the call only and restored after.
CREATE FUNCTION apply_settings(settings text[]) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE s text; old text[] := '{}';
BEGIN
  FOREACH s IN ARRAY settings LOOP
    old := old || (split_part(s, '=', 1) || '=' || current_setting(split_part(s, '=', 1)));
    PERFORM set_config(split_part(s, '=', 1), split_part(s, '=', 2), true);
  END LOOP;
  RETURN old;
END $$;

-- Runs sql (with $1, or the literal $Q, = the query vector) once to warm up, then reps times; records the median.
CREATE FUNCTION bench(p_label text, sql text, settings text[], reps int)
RETURNS TABLE (label text, rows_returned bigint, median_ms numeric, min_ms numeric, max_ms numeric) LANGUAGE plpgsql AS $$
DECLARE qv vector; t0 timestamptz; times float8[] := '{}'; n bigint; old text[];
BEGIN
  SELECT q INTO qv FROM bench_q;
  sql := replace(sql, '$Q', quote_literal(qv::text) || '::vector');  -- for EXECUTE of a prepared statement
  old := apply_settings(settings);
  EXECUTE sql USING qv;
  FOR i IN 1..reps LOOP
    t0 := clock_timestamp();
    EXECUTE sql USING qv;
    GET DIAGNOSTICS n = ROW_COUNT;
    times := times || extract(epoch FROM clock_timestamp() - t0) * 1000;
  END LOOP;
  PERFORM apply_settings(old);
  INSERT INTO bench_results (label, rows_returned, median_ms, min_ms, max_ms, settings)
  SELECT p_label, n, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 2),
         round(min(x)::numeric, 2), round(max(x)::numeric, 2), array_to_string(settings, ', ')
  FROM unnest(times) x;
  RETURN QUERY SELECT b.label, b.rows_returned, b.median_ms, b.min_ms, b.max_ms
               FROM bench_results b ORDER BY b.id DESC LIMIT 1;
END $$;

-- EXPLAIN (ANALYZE, BUFFERS) of sql with $1 = the query vector; the vector literal is shown as $q.
CREATE FUNCTION explain_q(sql text, settings text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE qv vector; line text; old text[];
BEGIN
  SELECT q INTO qv FROM bench_q;
  sql := replace(sql, '$Q', quote_literal(qv::text) || '::vector');  -- for EXECUTE of a prepared statement
  old := apply_settings(settings);
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, BUFFERS) ' || sql USING qv LOOP
    RETURN NEXT regexp_replace(line, '''\[[^]]*\]''::vector', '$q', 'g');
  END LOOP;
  PERFORM apply_settings(old);
END $$;

-- The service's query, model and tenant as literals; $1 = the query vector.
\set qsmall 'SELECT p.report_id, p.id, e.embedding <=> $1 AS distance FROM embeddings e JOIN photos p ON p.sha256 = e.sha256 JOIN reports r ON r.id = p.report_id WHERE e.model_id = 1 AND r.tenant_id = ''small'' ORDER BY e.embedding <=> $1 LIMIT 10'
\set qbig 'SELECT p.report_id, p.id, e.embedding <=> $1 AS distance FROM embeddings e JOIN photos p ON p.sha256 = e.sha256 JOIN reports r ON r.id = p.report_id WHERE e.model_id = 1 AND r.tenant_id = ''big'' ORDER BY e.embedding <=> $1 LIMIT 10'
-- Exact by construction: "+ 0" keeps the ORDER BY from matching the HNSW operator (no GUCs needed).
\set qsmall_plus0 'SELECT p.report_id, p.id, e.embedding <=> $1 AS distance FROM embeddings e JOIN photos p ON p.sha256 = e.sha256 JOIN reports r ON r.id = p.report_id WHERE e.model_id = 1 AND r.tenant_id = ''small'' ORDER BY (e.embedding <=> $1) + 0 LIMIT 10'
\set qbig_plus0 'SELECT p.report_id, p.id, e.embedding <=> $1 AS distance FROM embeddings e JOIN photos p ON p.sha256 = e.sha256 JOIN reports r ON r.id = p.report_id WHERE e.model_id = 1 AND r.tenant_id = ''big'' ORDER BY (e.embedding <=> $1) + 0 LIMIT 10'
\set idx '''hnsw.ef_search=100'', ''hnsw.iterative_scan=relaxed_order'''

-- ---------------------------------------------------------------- 0. planner's own choice, small tenant
\echo '== 0. small tenant, ef_search=100 + relaxed_order, planner free to choose'
SELECT explain_q(:'qsmall', ARRAY[:idx]);
SELECT * FROM bench('0 small, planner choice (iterative scan GUCs on)', :'qsmall', ARRAY[:idx], :reps);

-- ---------------------------------------------------------------- 1./2. forced HNSW index scan
-- enable_sort=off: the only way to order without a Sort is the HNSW index scan.
\echo '== 1. small tenant, HNSW iterative scan forced (enable_sort=off), max_scan_tuples default 20000'
SELECT explain_q(:'qsmall', ARRAY[:idx, 'enable_sort=off']);
SELECT * FROM bench('1 small, HNSW iterative, max_scan_tuples=20000', :'qsmall', ARRAY[:idx, 'enable_sort=off'], :reps);
-- The shape the planner uses when it does choose the index (case 5): a per-tuple index lookup in
-- photos and reports instead of a hash of the tenant's few rows.
\set nl '''enable_sort=off'', ''enable_hashjoin=off'', ''enable_mergejoin=off'', ''enable_material=off'''
SELECT explain_q(:'qsmall', ARRAY[:idx, :nl]);
SELECT * FROM bench('1 small, HNSW iterative, max_scan_tuples=20000, nested-loop lookups', :'qsmall', ARRAY[:idx, :nl], :reps);
\echo '== 2. small tenant, HNSW iterative scan, max_scan_tuples raised'
SELECT explain_q(:'qsmall', ARRAY[:idx, 'enable_sort=off', 'hnsw.max_scan_tuples=200000']);
SELECT * FROM bench('2 small, HNSW iterative, max_scan_tuples=50000', :'qsmall', ARRAY[:idx, 'enable_sort=off', 'hnsw.max_scan_tuples=50000'], :reps);
SELECT * FROM bench('2 small, HNSW iterative, max_scan_tuples=100000', :'qsmall', ARRAY[:idx, 'enable_sort=off', 'hnsw.max_scan_tuples=100000'], :reps);
SELECT * FROM bench('2 small, HNSW iterative, max_scan_tuples=200000', :'qsmall', ARRAY[:idx, 'enable_sort=off', 'hnsw.max_scan_tuples=200000'], :reps);
SELECT * FROM bench('2 small, HNSW iterative, max_scan_tuples=200000, nested-loop lookups', :'qsmall', ARRAY[:idx, :nl, 'hnsw.max_scan_tuples=200000'], :reps);
SELECT * FROM bench('2 small, HNSW iterative, max_scan_tuples=200000, ef_search=400', :'qsmall', ARRAY[:idx, 'enable_sort=off', 'hnsw.max_scan_tuples=200000', 'hnsw.ef_search=400'], :reps);
-- The iterative scan also ends when its memory passes work_mem * hnsw.scan_mem_multiplier
-- (4MB * 1 by default): raise that too, and the small tenant is found, but late and slowly.
SELECT * FROM bench('2 small, HNSW iterative, max_scan_tuples=100000, scan_mem_multiplier=16', :'qsmall', ARRAY[:idx, 'enable_sort=off', 'hnsw.max_scan_tuples=100000', 'hnsw.scan_mem_multiplier=16'], :reps);
SELECT * FROM bench('2 small, HNSW iterative, max_scan_tuples=200000, scan_mem_multiplier=16', :'qsmall', ARRAY[:idx, 'enable_sort=off', 'hnsw.max_scan_tuples=200000', 'hnsw.scan_mem_multiplier=16'], :reps);
\echo '== 2. how many tuples the iterative scan yields (model 1, no tenant filter), and where the small tenant comes'
SELECT q::text AS q FROM bench_q \gset
BEGIN;
SET LOCAL enable_sort = off; SET LOCAL hnsw.ef_search = 100; SET LOCAL hnsw.iterative_scan = relaxed_order;
SELECT 'default (max_scan_tuples=20000, 4MB)' AS limits, count(*) AS tuples_yielded
FROM (SELECT 1 FROM embeddings WHERE model_id = 1 ORDER BY embedding <=> :'q' LIMIT 1000000) s;
SET LOCAL hnsw.max_scan_tuples = 200000;
SELECT 'max_scan_tuples=200000, 4MB' AS limits, count(*) AS tuples_yielded
FROM (SELECT 1 FROM embeddings WHERE model_id = 1 ORDER BY embedding <=> :'q' LIMIT 1000000) s;
SET LOCAL hnsw.max_scan_tuples = 1000000; SET LOCAL hnsw.scan_mem_multiplier = 1000;
CREATE TEMP TABLE walk AS
SELECT row_number() OVER () AS n, sha256
FROM (SELECT sha256 FROM embeddings WHERE model_id = 1 ORDER BY embedding <=> :'q' LIMIT 1000000) s;
SELECT 'unlimited' AS limits, count(*) AS tuples_yielded,
       (SELECT count(*) FROM embeddings WHERE model_id = 1) AS model1_vectors FROM walk;
SELECT count(*) AS small_rows_yielded, min(n) AS first_small_at, max(n) AS last_small_at
FROM walk w JOIN photos p USING (sha256) JOIN reports r ON r.id = p.report_id WHERE r.tenant_id = 'small';
ROLLBACK;

-- ---------------------------------------------------------------- 3. exact
\echo '== 3. small tenant, exact: enable_indexscan=off (what the service''s SearchMode::Exact sets)'
SELECT explain_q(:'qsmall', ARRAY['enable_indexscan=off']);
SELECT * FROM bench('3 small, exact, enable_indexscan=off', :'qsmall', ARRAY['enable_indexscan=off'], :reps);
\echo '== 3. small tenant, exact: ORDER BY (distance) + 0, no GUCs'
SELECT explain_q(:'qsmall_plus0', ARRAY[]::text[]);
SELECT * FROM bench('3 small, exact, ORDER BY d + 0', :'qsmall_plus0', ARRAY[]::text[], :reps);
\echo '== 3. big tenant, exact: enable_indexscan=off'
SELECT explain_q(:'qbig', ARRAY['enable_indexscan=off']);
SELECT * FROM bench('3 big, exact, enable_indexscan=off', :'qbig', ARRAY['enable_indexscan=off'], :reps);
SELECT * FROM bench('3 big, exact, ORDER BY d + 0', :'qbig_plus0', ARRAY[]::text[], :reps);
SELECT * FROM bench('3 big, exact, enable_indexscan=off, jit=off', :'qbig', ARRAY['enable_indexscan=off', 'jit=off'], :reps);

-- ---------------------------------------------------------------- 5. big tenant via the index
\echo '== 5. big tenant, HNSW iterative scan (planner''s choice)'
SELECT explain_q(:'qbig', ARRAY[:idx]);
SELECT * FROM bench('5 big, HNSW iterative (planner choice)', :'qbig', ARRAY[:idx], :reps);

-- ---------------------------------------------------------------- 4. partial index vs bind parameter
-- model_id as a bind parameter ($2): a generic plan cannot prove "model_id = 1", so it cannot use
-- the partial index; a custom plan (parameter values known at planning) can, like a literal.
PREPARE by_param(vector, int, text) AS
SELECT p.report_id, p.id, e.embedding <=> $1 AS distance
FROM embeddings e JOIN photos p ON p.sha256 = e.sha256 JOIN reports r ON r.id = p.report_id
WHERE e.model_id = $2 AND r.tenant_id = $3 ORDER BY e.embedding <=> $1 LIMIT 10;
\echo '== 4. big tenant, model_id = $2, plan_cache_mode=force_generic_plan'
SELECT explain_q('EXECUTE by_param($Q, 1, ''big'')', ARRAY[:idx, 'plan_cache_mode=force_generic_plan']);
SELECT * FROM bench('4 big, model_id bind param, generic plan', 'EXECUTE by_param($Q, 1, ''big'')', ARRAY[:idx, 'plan_cache_mode=force_generic_plan'], :reps);
\echo '== 4. big tenant, model_id = $2, plan_cache_mode=force_custom_plan'
SELECT explain_q('EXECUTE by_param($Q, 1, ''big'')', ARRAY[:idx, 'plan_cache_mode=force_custom_plan']);
SELECT * FROM bench('4 big, model_id bind param, custom plan', 'EXECUTE by_param($Q, 1, ''big'')', ARRAY[:idx, 'plan_cache_mode=force_custom_plan'], :reps);
\echo '== 4. small tenant, model_id = $2, generic plan (tenant a parameter too)'
SELECT explain_q('EXECUTE by_param($Q, 1, ''small'')', ARRAY[:idx, 'plan_cache_mode=force_generic_plan']);
SELECT * FROM bench('4 small, model_id bind param, generic plan', 'EXECUTE by_param($Q, 1, ''small'')', ARRAY[:idx, 'plan_cache_mode=force_generic_plan'], :reps);
SELECT * FROM bench('4 small, model_id bind param, custom plan', 'EXECUTE by_param($Q, 1, ''small'')', ARRAY[:idx, 'plan_cache_mode=force_custom_plan'], :reps);
-- plan_cache_mode=auto (the default, what the service's sqlx prepared statements get): after 5
-- custom plans PostgreSQL may switch to the generic plan if it looks no costlier. Run it 1 + reps times.
PREPARE by_param_auto(vector, int, text) AS
SELECT p.report_id, p.id, e.embedding <=> $1 AS distance
FROM embeddings e JOIN photos p ON p.sha256 = e.sha256 JOIN reports r ON r.id = p.report_id
WHERE e.model_id = $2 AND r.tenant_id = $3 ORDER BY e.embedding <=> $1 LIMIT 10;
\echo '== 4. plan_cache_mode=auto, big tenant, model_id = $2: plans chosen over 1 + reps executions'
SELECT * FROM bench('4 big, model_id bind param, plan_cache_mode=auto', 'EXECUTE by_param_auto($Q, 1, ''big'')', ARRAY[:idx], :reps);
SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'by_param_auto';
DEALLOCATE by_param_auto;
DEALLOCATE by_param;

-- ---------------------------------------------------------------- summary
\echo '== build/load timings'
SELECT step, ms FROM bench_log;
\echo '== results (median of' :reps 'runs, server-side ms)'
SELECT label, rows_returned AS rows, median_ms, min_ms, max_ms FROM bench_results ORDER BY id;

\c :origdb
\if :keep
\echo 'kept database tenant_bench'
\else
DROP DATABASE tenant_bench;
\endif

-- The store at a million photos: HNSW over `vector(1280)` (4 bytes a dimension) against
-- `halfvec(1280)` (2 bytes), on the same synthetic, clustered embeddings: build time, index size,
-- search latency p50/p99 without and with filters, recall@10 against exact search.
--
-- Run through the driver (it runs the phases in order and logs each):
--   scripts/million.sh 100000            # ~100k vectors: load, both builds, queries
--   scripts/million.sh 1000000           # the million (hours of HNSW build on 2 shared cores)
-- or one phase by hand:
--   psql "postgres://postgres@127.0.0.1:55432/postgres" -v n=100000 -v phase=load -f benches/million.sql
-- Options (psql -v NAME=VALUE):
--   n=100000      vectors stored
--   phase=load    load | build | query | drop
--   type=vector   build/query: vector | halfvec (which column's index)
--   q=100         query vectors (latency and recall are over these)
--   mwm=4GB       maintenance_work_mem for the build (the graph must fit, or the build slows a lot)
--   truth=vector  load: vector keeps the float4 table as the truth; halfvec stores only the halfvec
--                 table and takes exact search over it as the truth (at 100k both gave the same
--                 top 10 on 40 queries), which halves the disk and time a million needs
-- It needs a role that may CREATE DATABASE and CREATE EXTENSION vector; it works only in the
-- database million_bench (made by `load`, dropped by `drop`).
--
-- Data (synthetic, shaped like pooled CNN features): 256 "breed" centroids, sparse and
-- non-negative (as ReLU features are; about 30% of dimensions non-zero), unit norm; each stored
-- vector is a breed centroid + a "subject" offset (norm ~0.6, from a pool of 8192: the same
-- animal photographed again) + a per-photo noise (norm ~0.35, from a pool of 8191), normalised.
-- Query vectors are a breed + a stored subject + fresh noise: a new photo of an animal the store
-- holds, which is the lost-and-found search. The float4 column is the truth; the halfvec column
-- is its cast, as migration 0015 converts stored rows. Filters mirror the service's: kind and
-- species (~25% of rows pass) and one tenant (~1%, through the iterative scan).
-- Latencies are server-side (plpgsql EXECUTE ... USING the query vector: a one-shot custom
-- plan, as the service's bind-parameter query gets), no client round trip; ef_search = 100 and
-- iterative_scan = relaxed_order, the service's defaults.

\set ON_ERROR_STOP on
\if :{?n} \else \set n 100000 \endif
\if :{?phase} \else \set phase load \endif
\if :{?type} \else \set type vector \endif
\if :{?q} \else \set q 100 \endif
\if :{?mwm} \else \set mwm 4GB \endif
\if :{?truth} \else \set truth vector \endif
\pset pager off
\timing off

SELECT :'truth' = 'halfvec' AS half_only,
       CASE WHEN :'truth' = 'halfvec' THEN 'half' ELSE 'vec' END AS truth_tbl,
       CASE WHEN :'truth' = 'halfvec' THEN '::halfvec(1280)' ELSE '' END AS truth_cast \gset
SELECT :'phase' = 'load' AS is_load, :'phase' = 'build' AS is_build, :'phase' = 'query' AS is_query,
       :'phase' = 'drop' AS is_drop \gset

\if :is_load
DROP DATABASE IF EXISTS million_bench;
CREATE DATABASE million_bench;
\c million_bench
SET client_min_messages = warning;
CREATE EXTENSION vector;
SELECT setseed(0.25);
CREATE TABLE breed AS
  SELECT b AS id, l2_normalize((SELECT array_agg(greatest(0, random_normal(-0.5, 1)))::real[]
                                FROM generate_series(1, 1280) WHERE b >= 0)::vector) AS v
  FROM generate_series(0, 255) b;
CREATE TABLE subject AS
  SELECT s AS id, (SELECT array_agg(random_normal(0, 0.0168))::real[]
                   FROM generate_series(1, 1280) WHERE s >= 0)::vector AS v
  FROM generate_series(0, 8191) s;
CREATE TABLE noise AS
  SELECT p AS id, (SELECT array_agg(random_normal(0, 0.0098))::real[]
                   FROM generate_series(1, 1280) WHERE p >= 0)::vector AS v
  FROM generate_series(0, 8190) p;
CREATE UNIQUE INDEX ON breed (id);
CREATE UNIQUE INDEX ON subject (id);
CREATE UNIQUE INDEX ON noise (id);
-- One table per type, so each index is built and scanned alone, as the service would have one.
\echo loading :n vectors
\if :half_only
CREATE UNLOGGED TABLE half (id bigint PRIMARY KEY, kind text NOT NULL, species text NOT NULL,
                            tenant int NOT NULL, embedding halfvec(1280) NOT NULL);
\timing on
INSERT INTO half
  SELECT i, CASE WHEN i % 2 = 0 THEN 'lost' ELSE 'found' END,
         CASE WHEN (i * 7919) % 256 % 2 = 0 THEN 'dog' ELSE 'cat' END, i % 100,
         l2_normalize(b.v + s.v + p.v)::halfvec(1280)
  FROM generate_series(0::bigint, :n - 1) i
  JOIN breed b ON b.id = (i * 7919) % 256
  JOIN subject s ON s.id = (i / 3) % 8192
  JOIN noise p ON p.id = (i * 2654435761) % 8191;
\timing off
\else
CREATE UNLOGGED TABLE vec (id bigint PRIMARY KEY, kind text NOT NULL, species text NOT NULL,
                           tenant int NOT NULL, embedding vector(1280) NOT NULL);
\timing on
INSERT INTO vec
  SELECT i, CASE WHEN i % 2 = 0 THEN 'lost' ELSE 'found' END,
         CASE WHEN (i * 7919) % 256 % 2 = 0 THEN 'dog' ELSE 'cat' END, i % 100,
         l2_normalize(b.v + s.v + p.v)
  FROM generate_series(0::bigint, :n - 1) i
  JOIN breed b ON b.id = (i * 7919) % 256
  JOIN subject s ON s.id = (i / 3) % 8192
  JOIN noise p ON p.id = (i * 2654435761) % 8191;
CREATE UNLOGGED TABLE half (id bigint PRIMARY KEY, kind text NOT NULL, species text NOT NULL,
                            tenant int NOT NULL, embedding halfvec(1280) NOT NULL);
INSERT INTO half SELECT id, kind, species, tenant, embedding::halfvec(1280) FROM vec;
\timing off
\endif
-- Queries: a stored subject in its breed, fresh noise (a pool no stored row uses).
SELECT setseed(0.5);
CREATE TABLE queries AS
  SELECT k AS id, l2_normalize(b.v + s.v + (SELECT array_agg(random_normal(0, 0.0098))::real[]
                                            FROM generate_series(1, 1280) WHERE k >= 0)::vector) AS v
  FROM generate_series(0, :q - 1) k
  JOIN breed b ON b.id = ((k * 3 * 97) * 7919) % 256
  JOIN subject s ON s.id = (k * 97) % 8192;
ANALYZE;
-- Exact top-10 per query and filter: the truth recall is measured against (float4, or halfvec
-- with truth=halfvec; no index). A 1280-d vector is over PostgreSQL's 2 kB TOAST threshold, so
-- the table keeps it out of line and every exact scan would fetch each row's vector through the
-- TOAST index (about an hour for the million's 300 scans): the scans read an inline (STORAGE
-- PLAIN) copy instead, the same values.
CREATE UNLOGGED TABLE exact (LIKE :truth_tbl);
ALTER TABLE exact ALTER COLUMN embedding SET STORAGE PLAIN;
\timing on
INSERT INTO exact SELECT * FROM :truth_tbl;
\timing off
ANALYZE exact;
SET enable_indexscan = off;
CREATE TABLE truth (qid int, filter text, ids bigint[]);
\timing on
INSERT INTO truth
  SELECT q.id, f.name, (SELECT array_agg(id) FROM (
           SELECT id FROM exact
           WHERE (f.name = 'none') OR (f.name = 'kind_species' AND kind = 'found' AND species = 'cat')
                 OR (f.name = 'tenant' AND tenant = 7)
           ORDER BY embedding <=> (q.v):truth_cast LIMIT 10) t)
  FROM queries q CROSS JOIN (VALUES ('none'), ('kind_species'), ('tenant')) f(name);
DROP TABLE exact;
\timing off
-- The shape of the data: cosine distance from a query to its nearest stored vector, to its
-- 10th, and to a stored vector at random (real pet embeddings: same animal ~0.1-0.2, unrelated ~0.4+).
SELECT round(avg((SELECT embedding <=> (q.v):truth_cast FROM :truth_tbl WHERE id = t.ids[1]))::numeric, 3) AS d_nearest,
       round(avg((SELECT embedding <=> (q.v):truth_cast FROM :truth_tbl WHERE id = t.ids[10]))::numeric, 3) AS d_10th,
       round(avg((SELECT embedding <=> (q.v):truth_cast FROM :truth_tbl WHERE id = (q.id * 7777) % :n))::numeric, 3) AS d_random
FROM truth t JOIN queries q ON q.id = t.qid WHERE t.filter = 'none';
SELECT pg_size_pretty(pg_table_size(to_regclass('vec'))) AS vec_table,
       pg_size_pretty(pg_table_size('half')) AS half_table;
\endif

\if :is_build
\c million_bench
SELECT CASE WHEN :'type' = 'halfvec' THEN 'half' ELSE 'vec' END AS tbl,
       CASE WHEN :'type' = 'halfvec' THEN 'half_hnsw' ELSE 'vec_hnsw' END AS idx,
       CASE WHEN :'type' = 'halfvec' THEN 'halfvec_cosine_ops' ELSE 'vector_cosine_ops' END AS ops \gset
DROP INDEX IF EXISTS :idx;
SET maintenance_work_mem = :'mwm';
\echo building HNSW over :tbl (:ops), maintenance_work_mem :mwm
\timing on
CREATE INDEX :idx ON :tbl USING hnsw (embedding :ops);
\timing off
SELECT :'type' AS type, (SELECT count(*) FROM :tbl) AS rows,
       pg_size_pretty(pg_relation_size(:'idx')) AS index_size,
       pg_relation_size(:'idx') AS index_bytes,
       pg_size_pretty(pg_table_size(:'tbl')) AS table_size;
\endif

\if :is_query
\c million_bench
SET client_min_messages = warning;
SELECT CASE WHEN :'type' = 'halfvec' THEN 'half' ELSE 'vec' END AS tbl,
       CASE WHEN :'type' = 'halfvec' THEN '::halfvec(1280)' ELSE '' END AS cast \gset
SET bench.tbl = :'tbl';
SET bench.qcast = :'cast';
SET hnsw.ef_search = 100;
SET hnsw.iterative_scan = relaxed_order;
CREATE TEMP TABLE runs (qid int, filter text, ms float8, ids bigint[]);
DO $$
DECLARE
  qv vector; f text; cond text; t0 timestamptz; got bigint[]; rep int; i int;
BEGIN
  FOREACH f IN ARRAY ARRAY['none', 'kind_species', 'tenant'] LOOP
    cond := CASE f WHEN 'none' THEN 'true'
                   WHEN 'kind_species' THEN 'kind = ''found'' AND species = ''cat'''
                   ELSE 'tenant = 7' END;
    -- One warm-up pass over the queries (reads the index into the cache), then the timed one.
    FOR rep IN 0..1 LOOP
      FOR i IN 0..(SELECT count(*) - 1 FROM queries) LOOP
        SELECT v INTO qv FROM queries WHERE id = i;
        t0 := clock_timestamp();
        EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM %I WHERE %s ORDER BY embedding <=> $1%s LIMIT 10) t',
                       current_setting('bench.tbl'), cond, current_setting('bench.qcast'))
          INTO got USING qv;
        IF rep = 1 THEN
          INSERT INTO runs VALUES (i, f, extract(epoch FROM clock_timestamp() - t0) * 1000, got);
        END IF;
      END LOOP;
    END LOOP;
  END LOOP;
END $$;
SELECT :'type' AS type, r.filter,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS p50_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS p99_ms,
       round(avg(cardinality(r.ids))::numeric, 2) AS avg_rows,
       round(avg((SELECT count(*) FROM unnest(r.ids) x WHERE x = ANY (t.ids))::numeric
                 / greatest(1, cardinality(t.ids))), 4) AS recall_at_10
FROM runs r JOIN truth t ON t.qid = r.qid AND t.filter = r.filter
GROUP BY r.filter ORDER BY r.filter;
\endif

\if :is_drop
DROP DATABASE IF EXISTS million_bench;
\endif

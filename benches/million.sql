-- The store at a million photos: HNSW over `vector(1280)` (4 bytes a dimension) against
-- `halfvec(1280)` (2 bytes), on the same synthetic, clustered embeddings: build time, index size,
-- search latency p50/p99 without and with filters, recall@10 against exact search (of the ids, and
-- ann-benchmarks' recall by distance).
--
-- Run through the driver (it runs the phases in order and logs each):
--   scripts/million.sh 100000            # ~100k vectors: load, both builds, queries
--   scripts/million.sh 1000000           # the million (hours of HNSW build on 2 shared cores)
-- or one phase by hand:
--   psql "postgres://postgres@127.0.0.1:55432/postgres" -v n=100000 -v phase=load -f benches/million.sql
-- Options (psql -v NAME=VALUE):
--   n=100000      vectors stored
--   phase=load    load | shape (after the truth is loaded) | build | query | drop
--   type=vector   build/query: vector | halfvec (which column's index)
--   q=100         query vectors (latency and recall are over these)
--   ef=100        query: hnsw.ef_search (the service's default is 100)
--   m=16 efc=64   build: the index's m and ef_construction (pgvector's defaults, the service's)
--   mwm=4GB       maintenance_work_mem for the build (the graph must fit, or the build slows a lot)
--   truth=vector  load: vector keeps the float4 table as the truth; halfvec stores only the halfvec
--                 table and takes exact search over it as the truth (at 100k both gave the same
--                 top 10 on 40 queries), which halves the disk and time a million needs
-- It needs a role that may CREATE DATABASE and CREATE EXTENSION vector; it works only in the
-- database million_bench (made by `load`, dropped by `drop`).
--
-- Data (synthetic, shaped like pooled CNN features): 256 "breed" centroids, sparse and
-- non-negative (as ReLU features are; about 30% of dimensions non-zero), unit norm; every animal
-- has 3 photos, each its breed's centroid + the animal's own offset (norm ~0.6, the sum of one
-- vector from each of two pools, so that every animal of the million is another) + a per-photo
-- noise (norm ~0.35, from a pool of 8191), normalised. (Before, the offsets came from one pool of
-- 8192: at the million every animal had about 40 near-equal copies, which no store holds.)
-- Query vectors are a stored animal's breed and offset + fresh noise: a new photo of an animal
-- the store holds, which is the lost-and-found search. The float4 column is the truth; the halfvec column
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
\if :{?ef} \else \set ef 100 \endif
\if :{?m} \else \set m 16 \endif
\if :{?efc} \else \set efc 64 \endif
\if :{?truth} \else \set truth vector \endif
\pset pager off
\timing off

SELECT :'truth' = 'halfvec' AS half_only,
       CASE WHEN :'truth' = 'halfvec' THEN 'half' ELSE 'vec' END AS truth_tbl,
       CASE WHEN :'truth' = 'halfvec' THEN '::halfvec(1280)' ELSE '' END AS truth_cast \gset
SELECT :'phase' = 'load' AS is_load, :'phase' = 'shape' AS is_shape, :'phase' = 'build' AS is_build,
       :'phase' = 'query' AS is_query, :'phase' = 'drop' AS is_drop \gset

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
-- Two pools whose sums name up to 67 million distinct animals (each pool at 1/sqrt(2) of the
-- offset's spread, so that a sum has the spread of one offset).
CREATE TABLE subject AS
  SELECT s AS id, (SELECT array_agg(random_normal(0, 0.01188))::real[]
                   FROM generate_series(1, 1280) WHERE s >= 0)::vector AS v
  FROM generate_series(0, 8191) s;
CREATE TABLE subject_b AS
  SELECT s AS id, (SELECT array_agg(random_normal(0, 0.01188))::real[]
                   FROM generate_series(1, 1280) WHERE s >= 0)::vector AS v
  FROM generate_series(0, 8190) s;
CREATE TABLE noise AS
  SELECT p AS id, (SELECT array_agg(random_normal(0, 0.0098))::real[]
                   FROM generate_series(1, 1280) WHERE p >= 0)::vector AS v
  FROM generate_series(0, 8190) p;
CREATE UNIQUE INDEX ON breed (id);
CREATE UNIQUE INDEX ON subject (id);
CREATE UNIQUE INDEX ON subject_b (id);
CREATE UNIQUE INDEX ON noise (id);
-- One table per type, so each index is built and scanned alone, as the service would have one.
\echo loading :n vectors
\if :half_only
CREATE UNLOGGED TABLE half (id bigint PRIMARY KEY, kind text NOT NULL, species text NOT NULL,
                            tenant int NOT NULL, embedding halfvec(1280) NOT NULL);
\timing on
INSERT INTO half
  SELECT i, CASE WHEN i % 2 = 0 THEN 'lost' ELSE 'found' END,
         CASE WHEN (i / 3 * 7919) % 256 % 2 = 0 THEN 'dog' ELSE 'cat' END, i % 100,
         l2_normalize(b.v + sa.v + sb.v + p.v)::halfvec(1280)
  FROM generate_series(0::bigint, :n - 1) i
  JOIN breed b ON b.id = (i / 3 * 7919) % 256
  JOIN subject sa ON sa.id = (i / 3) % 8192
  JOIN subject_b sb ON sb.id = (i / 3 / 8192) % 8191
  JOIN noise p ON p.id = (i * 2654435761) % 8191;
\timing off
\else
CREATE UNLOGGED TABLE vec (id bigint PRIMARY KEY, kind text NOT NULL, species text NOT NULL,
                           tenant int NOT NULL, embedding vector(1280) NOT NULL);
\timing on
INSERT INTO vec
  SELECT i, CASE WHEN i % 2 = 0 THEN 'lost' ELSE 'found' END,
         CASE WHEN (i / 3 * 7919) % 256 % 2 = 0 THEN 'dog' ELSE 'cat' END, i % 100,
         l2_normalize(b.v + sa.v + sb.v + p.v)
  FROM generate_series(0::bigint, :n - 1) i
  JOIN breed b ON b.id = (i / 3 * 7919) % 256
  JOIN subject sa ON sa.id = (i / 3) % 8192
  JOIN subject_b sb ON sb.id = (i / 3 / 8192) % 8191
  JOIN noise p ON p.id = (i * 2654435761) % 8191;
CREATE UNLOGGED TABLE half (id bigint PRIMARY KEY, kind text NOT NULL, species text NOT NULL,
                            tenant int NOT NULL, embedding halfvec(1280) NOT NULL);
INSERT INTO half SELECT id, kind, species, tenant, embedding::halfvec(1280) FROM vec;
\timing off
\endif
-- Queries: a stored animal (breed and subject), fresh noise (a pool no stored row uses).
SELECT setseed(0.5);
CREATE TABLE queries AS
  SELECT g.k::int AS id, g.j AS animal, l2_normalize(b.v + sa.v + sb.v + (SELECT array_agg(random_normal(0, 0.0098))::real[]
                                                      FROM generate_series(1, 1280) WHERE g.k >= 0)::vector) AS v
  FROM (SELECT k, (k * 2654435761) % (:n / 3) AS j FROM generate_series(0::bigint, :q - 1) k) g
  JOIN breed b ON b.id = (g.j * 7919) % 256
  JOIN subject sa ON sa.id = g.j % 8192
  JOIN subject_b sb ON sb.id = (g.j / 8192) % 8191;
ANALYZE;
-- The truth recall is measured against: the exact top 10 per query and filter, over the float4
-- table (or the halfvec one with truth=halfvec), no index. scripts/million.sh computes it with
-- benches/million_truth.py from binary dumps and loads it here (PostgreSQL's own exact search
-- takes about 10 s a query at the million: hours for every query and filter).
CREATE TABLE truth (qid int, filter text, ids bigint[]);
SELECT pg_size_pretty(pg_table_size(to_regclass('vec'))) AS vec_table,
       pg_size_pretty(pg_table_size('half')) AS half_table;
\endif

\if :is_shape
\c million_bench
-- The shape of the data: cosine distance from a query to its nearest stored vector, to its
-- 10th, and to a stored vector at random (real pet embeddings: same animal ~0.1-0.2, unrelated ~0.4+).
SELECT round(avg((SELECT embedding <=> (q.v):truth_cast FROM :truth_tbl WHERE id = t.ids[1]))::numeric, 3) AS d_nearest,
       round(avg((SELECT embedding <=> (q.v):truth_cast FROM :truth_tbl WHERE id = t.ids[10]))::numeric, 3) AS d_10th,
       round(avg((SELECT embedding <=> (q.v):truth_cast FROM :truth_tbl WHERE id = (q.id * 7777) % :n))::numeric, 3) AS d_random
FROM truth t JOIN queries q ON q.id = t.qid WHERE t.filter = 'none';
\endif

\if :is_build
\c million_bench
SELECT CASE WHEN :'type' = 'halfvec' THEN 'half' ELSE 'vec' END AS tbl,
       CASE WHEN :'type' = 'halfvec' THEN 'half_hnsw' ELSE 'vec_hnsw' END AS idx,
       CASE WHEN :'type' = 'halfvec' THEN 'halfvec_cosine_ops' ELSE 'vector_cosine_ops' END AS ops \gset
DROP INDEX IF EXISTS :idx;
SET maintenance_work_mem = :'mwm';
\echo building HNSW over :tbl (:ops), m :m, ef_construction :efc, maintenance_work_mem :mwm
\timing on
CREATE INDEX :idx ON :tbl USING hnsw (embedding :ops) WITH (m = :m, ef_construction = :efc);
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
SET hnsw.ef_search = :ef;
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
SELECT :'type' AS type, :ef AS ef_search, r.filter,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS p50_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS p99_ms,
       round(avg(cardinality(r.ids))::numeric, 2) AS avg_rows,
       round(avg((SELECT count(*) FROM unnest(r.ids) x WHERE x = ANY (t.ids))::numeric
                 / greatest(1, cardinality(t.ids))), 4) AS recall_at_10,
       -- ann-benchmarks' recall: a result counts when it is as near as the true 10th (+ 0.001),
       -- so that one of many near-equal copies of a subject in place of another is no miss.
       round(avg((SELECT count(*) FROM unnest(r.ids) x JOIN :tbl h ON h.id = x
                  WHERE (h.embedding <=> (q.v):cast) <= 0.001 + (
                    SELECT h2.embedding <=> (q.v):cast FROM :tbl h2
                    WHERE h2.id = t.ids[cardinality(t.ids)]))::numeric
                 / greatest(1, cardinality(t.ids))), 4) AS recall_eps,
       -- The lost-and-found measure: of the query animal's other photos that pass the filter
       -- (ids 3a to 3a + 2), the share among the 10 results (queries with none left out).
       round(avg((SELECT count(*) FROM unnest(r.ids) x WHERE x / 3 = q.animal)::numeric
                 / nullif(a.passing, 0)), 4) AS animal_recall,
       count(*) FILTER (WHERE a.passing > 0) AS animal_queries
FROM runs r JOIN truth t ON t.qid = r.qid AND t.filter = r.filter JOIN queries q ON q.id = r.qid
CROSS JOIN LATERAL (
  SELECT count(*) AS passing FROM :tbl h
  WHERE h.id BETWEEN 3 * q.animal AND 3 * q.animal + 2
    AND CASE r.filter WHEN 'none' THEN true
          WHEN 'kind_species' THEN h.kind = 'found' AND h.species = 'cat'
          ELSE h.tenant = 7 END) a
GROUP BY r.filter ORDER BY r.filter;
\endif

\if :is_drop
DROP DATABASE IF EXISTS million_bench;
\endif

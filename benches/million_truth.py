#!/usr/bin/env python3
"""Exact top-10 neighbours for benches/million.sql's queries, computed with numpy from binary
COPY dumps of the stored vectors and the queries (scripts/million.sh runs it between its load
and its queries). PostgreSQL's exact search takes about 10 s per query over a million halfvec
rows here (every row's vector converted and compared one at a time); a matrix product over the
same values takes about a second for all of them, so recall is measured against every query.

  million_truth.py STORED QUERIES OUT
    STORED   COPY (SELECT id, (kind = 'found' AND species = 'cat')::int, tenant, embedding
             FROM half|vec) TO STDOUT (FORMAT binary): embedding halfvec(1280) or vector(1280)
    QUERIES  COPY (SELECT id, v FROM queries) TO STDOUT (FORMAT binary): v vector(1280)
    OUT      a COPY text file for the table truth (qid, filter, ids bigint[])

The distance is pgvector's cosine distance on the stored values, the query cast to the stored
type first (as the SQL truth casts it): 1 - a.b / (|a| |b|), in float32 as pgvector computes it.
Filters as million.sql's: none, kind_species (kind 'found' and species 'cat'), tenant (7).
"""

import sys

import numpy as np

HEADER = 19  # "PGCOPY\n\377\r\n\0", int32 flags, int32 header extension length (0)
K = 10
TENANT = 7
CHUNK = 65536


def rows(path, element):
    """The dump's rows as a structured array (every row has the same size: fixed-width fields)."""
    with open(path, "rb") as f:
        head = f.read(HEADER + 2 + 4 + 8 + 4 + 4 + 4 + 4 + 4 + 2)
    if head[:11] != b"PGCOPY\n\xff\r\n\x00":
        sys.exit(f"{path}: not a binary COPY")
    dim = int.from_bytes(head[-2:], "big", signed=True)
    fields = [("n", ">i2"), ("l_id", ">i4"), ("id", ">i8"), ("l_ks", ">i4"), ("ks", ">i4"),
              ("l_t", ">i4"), ("tenant", ">i4"), ("l_v", ">i4"), ("dim", ">i2"),
              ("unused", ">i2"), ("v", element, (dim,))]
    dtype = np.dtype(fields)
    data = np.memmap(path, mode="r", offset=HEADER)
    count = (len(data) - 2) // dtype.itemsize  # the trailer: int16 -1
    out = np.ndarray((count,), dtype=dtype, buffer=data, offset=0)
    if count and (out["n"][0] != 4 or out["l_id"][0] != 8 or out["dim"][0] != dim):
        sys.exit(f"{path}: unexpected row layout")
    return out


def queries(path):
    """(id, vector) per query, by id (rows of int4 and vector(1280): read one at a time)."""
    with open(path, "rb") as f:
        raw = f.read()
    pos, out = HEADER, []
    while True:
        n = int.from_bytes(raw[pos:pos + 2], "big", signed=True)
        pos += 2
        if n == -1:
            return sorted(out)
        qid = int.from_bytes(raw[pos + 4:pos + 8], "big", signed=True)
        pos += 8
        length = int.from_bytes(raw[pos:pos + 4], "big")
        dim = int.from_bytes(raw[pos + 4:pos + 6], "big")
        v = np.frombuffer(raw, dtype=">f4", count=dim, offset=pos + 8).astype(np.float32)
        pos += 4 + length
        out.append((qid, v))


def main():
    stored_path, queries_path, out_path = sys.argv[1:4]
    with open(stored_path, "rb") as f:
        head = f.read(HEADER + 2 + 12 + 8 + 8 + 4)
    vec_len = int.from_bytes(head[-4:], "big")
    # The length covers dim and unused (4 bytes), then 2 bytes a dimension (halfvec) or 4 (vector).
    if vec_len == 4 + 2 * 1280:
        half = True
    elif vec_len == 4 + 4 * 1280:
        half = False
    else:
        sys.exit(f"{stored_path}: vectors of {vec_len} bytes are neither halfvec(1280) nor vector(1280)")
    data = rows(stored_path, ">u2" if half else ">f4")
    qs = queries(queries_path)
    qids = [q for q, _ in qs]
    qm = np.stack([v for _, v in qs])
    if half:
        qm = qm.astype(np.float16).astype(np.float32)  # the query cast to halfvec, as in SQL
    qm /= np.linalg.norm(qm, axis=1, keepdims=True)
    filters = ("none", "kind_species", "tenant")
    # Per filter: the best K distances and ids so far, per query.
    best = {f: (np.full((len(qs), K), np.inf, np.float32), np.full((len(qs), K), -1, np.int64))
            for f in filters}
    for start in range(0, len(data), CHUNK):
        chunk = data[start:start + CHUNK]
        raw = np.ascontiguousarray(chunk["v"])
        # halfvec: big-endian IEEE half bits, made native and read as float16
        m = (raw.astype("<u2").view(np.float16) if half else raw).astype(np.float32)
        norms = np.linalg.norm(m, axis=1)
        dist = 1.0 - (qm @ m.T) / np.where(norms > 0, norms, 1.0)[None, :]
        ids = chunk["id"].astype(np.int64)
        masks = {"none": None, "kind_species": chunk["ks"] == 1, "tenant": chunk["tenant"] == TENANT}
        for f in filters:
            d, i = (dist, ids) if masks[f] is None else (dist[:, masks[f]], ids[masks[f]])
            if d.shape[1] == 0:
                continue
            bd, bi = best[f]
            cd = np.concatenate([bd, d], axis=1)
            ci = np.concatenate([bi, np.broadcast_to(i, d.shape)], axis=1)
            top = np.argsort(cd, axis=1, kind="stable")[:, :K]
            best[f] = (np.take_along_axis(cd, top, 1), np.take_along_axis(ci, top, 1))
    with open(out_path, "w") as out:
        for f in filters:
            bd, bi = best[f]
            for row, qid in enumerate(qids):
                got = [str(x) for x, dd in zip(bi[row], bd[row]) if x >= 0 and np.isfinite(dd)]
                out.write(f"{qid}\t{f}\t{{{','.join(got)}}}\n")
    print(f"truth: {len(qs)} queries x {len(filters)} filters over {len(data)} "
          f"{'halfvec' if half else 'vector'} rows")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A tighter subject box from what the first model run already computes (issue 22): training-free
localisers compared by their box (IoU with the true box) and by the recall of the crop's vector.

On benches/subject_eval.py's set (models/subject_eval_set.py), every photo gets the shipped
Lite0 graph's first run with a few of its inner tensors also read out (reading an inner tensor
changes no output's value; the service would need them added as graph outputs): the head's 7x7
features ("head.relu6", 1280 channels), the 14x14 features of stage 5 ("b10.residual", 112
channels) and of stage 6's expansion ("b11.expand.relu6", 672), the CAM ("cam") and the graph's
56x56 subject weights (CAM x colour rarity, "cam.subject_pixels"; the rarity alone,
"cam.rarity.weight"). A localiser turns one map into a box:

  map       scda7   the head's channel sum (SCDA: Wei et al. 2017, "Selective convolutional
                    descriptor aggregation"), 7x7
            scda14  stage 5's channel sum, 14x14; scda14e the same of b11's expansion
            cam     the graph's CAM (top-5 classes, animal prior), 7x7
            cam14   the CAM upsampled to 14x14 x scda14 (what is both the class and an object)
            camrar  the graph's 56x56 CAM x colour rarity; rar the rarity alone
            fc14e   feature contrast: 1 - cos(a cell's b11 expansion features, their mean), 14x14
            a*b     products at 56x56 (with_products): rar*scda7 (the 7x7 map repeated per
                    cell), rar*scda7^2 (bilinear, squared; rarity blurred 3x3), camrar*scda7,
                    rar*scda7*fc14e
  cut       mean    cells above the map's mean (SCDA); otsu: Otsu's threshold; fN: N x its max
  region    cc      the largest 8-connected component (by its summed map), its box; all: the box
                    of every cell over the cut (the cam-crop method's box, with cam f0.35)

A box is then grown by a margin (a fraction of its size a side; negative shrinks), squared as the
service crops (src/inference/subject.rs), cut from the decoded photo and run again; a box over
max_area of the photo is no crop (the first run's cam_embedding, as the service falls back). The
crop's vector: its "cam_embedding" (what the service stores), its plain "embedding", and +flip
(the crop's vector + its mirror image's, unit length: one more run).

Parameters are chosen on the tuning half (box by mean IoU, then margin and vector by recall@1);
the held-out half and the 2 dlib dogs are reported with them. Run:

  .cache/venv/bin/python benches/locate_eval.py --set .cache/eval/subject-set \
      --model models/efficientnet_lite0.onnx [--json /var/tmp/locate.json] [--cache /var/tmp/first.pkl]
  .cache/venv/bin/python benches/locate_eval.py --set .cache/eval/subject-set \
      --model models/efficientnet_lite0.onnx --dump /var/tmp/locate-maps.bin   # then
  rustc -O --edition 2021 benches/locate/box_timing.rs -o /var/tmp/locate-box-timing
  /var/tmp/locate-box-timing /var/tmp/locate-maps.bin

Measured (2026-12-06; about 101 queries a half, so +-0.045 on a recall): no map's peak falls in
the true box for more than 0.66 of the tuning photos (rar*scda7*fc14e; the CAM 0.24: the set's
subjects are objects, not animals); the best boxes (rarity x the head's channel sum, largest
component) reach mean IoU 0.36-0.38, 0.40 of photos at IoU >= 0.5 (the cam-crop box 0.15, 0.03).
Cropped at margin 0.3, their crop's cam_embedding gives recall@1 0.36 tuning, 0.27-0.31 held out
(ties on tuning), against 0.14 / 0.18 for the shipped cam-colour-r1 in the same run; the dogs
fall from 4/4 to 3/4; every photo is cropped (a second run on 0.96-1.00 of photos, against none
for cam-colour-r1). Recall@1 is 0.83-0.94 where both boxes of a pair have IoU >= 0.5 and 0.10-0.15
where neither has: the box decides, and these maps do not find it often enough (0.80 held out
needs about nine photos in ten boxed at IoU >= 0.5). A flip of the crop (a third run) does not
help an imperfect box. The box itself costs about 50 us in Rust (box_timing.rs).
"""
import argparse
import itertools
import json
import os
import pickle
import sys
import time

import numpy as np
import onnx
from onnx import helper
from PIL import ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "models")]
import build_model as bm  # noqa: E402
import subject_eval as se  # noqa: E402

INNER = {"head": "head.relu6", "s5": "b10.residual", "s6e": "b11.expand.relu6",
         "camrar": "cam.subject_pixels", "rar": "cam.rarity.weight"}


def session(model_path, threads):
    import onnxruntime as ort
    model = onnx.load(model_path)
    for name in INNER.values():
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def contrast(features):
    """Feature contrast [n, n] of a [channels, n, n] map: 1 - the cosine of each cell's features
    with the mean of all cells' (unit) features; the background is most of the photo, so the
    cells unlike it stand out."""
    x = features.reshape(features.shape[0], -1).T
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    mean = x.mean(0)
    n = features.shape[1]
    return (1 - x @ (mean / max(np.linalg.norm(mean), 1e-6))).reshape(n, n)


def first_run(sess, im):
    """The first run's outputs and maps of a decoded photo: {name: array} (maps as square grids)."""
    names = ["embedding", "cam", "cam_embedding"] + list(INNER.values())
    out = dict(zip(names, (o[0] for o in sess.run(names, {"input": se.tensor(im)[None]}))))
    sq = lambda a: a.reshape(int(round(np.sqrt(a.size))), -1)
    cam7 = sq(out["cam"])
    s14 = out[INNER["s5"]].sum(0)
    cam14 = np.kron(cam7, np.ones((2, 2)))  # nearest: keeps the CAM's cells as they are
    maps = {
        "scda7": out[INNER["head"]].sum(0),
        "fc14e": contrast(out[INNER["s6e"]]),
        "scda14": s14,
        "scda14e": out[INNER["s6e"]].sum(0),
        "cam": cam7,
        "cam14": cam14 * np.maximum(s14, 0),
        "camrar": sq(out[INNER["camrar"]].ravel()),
        "rar": sq(out[INNER["rar"]].ravel()),
    }
    return {"cam_embedding": out["cam_embedding"], "embedding": out["embedding"], "maps": maps}


def norm(m):
    """The map's positive part over its maximum (all zeros stays zeros)."""
    m = np.maximum(m, 0)
    return m / max(float(m.max()), 1e-12)


def blur(m, k):
    """A k x k box blur (edges repeated)."""
    if k <= 1:
        return m
    p = np.pad(m, k // 2, mode="edge")
    c = np.pad(np.cumsum(np.cumsum(p, 0), 1), ((1, 0), (1, 0)))
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def with_products(maps):
    """The first run's maps plus products at 56x56: colour rarity (what stands out from the
    background) x the head's channel sum (what the network sees as an object), the 7x7 map
    repeated per cell ("rar*scda7"), or bilinearly upsampled as the graph upsamples the CAM,
    squared, the rarity blurred 3x3 ("rar*scda7^2"); and x the 14x14 feature contrast."""
    rar, scda = norm(maps["rar"]), norm(maps["scda7"])
    kron = np.kron(scda, np.ones((rar.shape[0] // scda.shape[0],) * 2))
    bil = norm((bm.upsample_matrix(scda.shape[0], rar.shape[0]) @ scda.ravel()).reshape(rar.shape))
    side = rar.shape[0]
    fc = norm((bm.upsample_matrix(maps["fc14e"].shape[0], side) @ maps["fc14e"].ravel()).reshape(rar.shape))
    return {**maps, "rar*scda7": rar * kron, "rar*scda7^2": blur(rar, 3) * bil ** 2,
            "camrar*scda7": norm(maps["camrar"]) * kron, "rar*scda7*fc14e": rar * kron * fc}


def otsu(v):
    """Otsu's threshold of the values v (64 bins)."""
    hist, edges = np.histogram(v, 64)
    mids = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * mids) / np.maximum(w0, 1)
    m1 = (np.sum(hist * mids) - np.cumsum(hist * mids)) / np.maximum(w1, 1)
    return mids[int(np.argmax(w0 * w1 * (m0 - m1) ** 2))]


def components(mask):
    """8-connected components of a boolean grid: a label grid (0 = none) and the label count."""
    lab = np.zeros(mask.shape, np.int32)
    n = 0
    H, W = mask.shape
    for y, x in zip(*np.nonzero(mask)):
        if lab[y, x]:
            continue
        n += 1
        stack = [(y, x)]
        lab[y, x] = n
        while stack:
            cy, cx = stack.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = cy + dy, cx + dx
                    if 0 <= yy < H and 0 <= xx < W and mask[yy, xx] and not lab[yy, xx]:
                        lab[yy, xx] = n
                        stack.append((yy, xx))
    return lab, n


def box_of(m, cut, region):
    """The box (fractions x0, y0, x1, y1) of map m's cells over the cut, or None (flat map)."""
    if not np.isfinite(m).all() or m.max() <= m.min():
        return None
    if cut == "mean":
        t = m.mean()
    elif cut == "otsu":
        t = otsu(m.ravel())
    else:
        t = float(cut[1:]) * m.max()
    mask = m > t if cut in ("mean", "otsu") else m >= t
    if not mask.any():
        return None
    if region == "cc":
        lab, n = components(mask)
        mass = [m[lab == i].sum() for i in range(1, n + 1)]
        mask = lab == 1 + int(np.argmax(mass))
    ys, xs = np.nonzero(mask)
    H, W = m.shape
    return (xs.min() / W, ys.min() / H, (xs.max() + 1) / W, (ys.max() + 1) / H)


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def peak(m):
    """The centre of the map's highest cell (fractions x, y)."""
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return ((x + 0.5) / m.shape[1], (y + 0.5) / m.shape[0])


def inside(point, box):
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def grown(box, margin, max_area):
    """The box grown by margin of its size a side (within the photo), or None over max_area."""
    if box is None:
        return None
    w, h = box[2] - box[0], box[3] - box[1]
    b = (max(0.0, box[0] - margin * w), max(0.0, box[1] - margin * h),
         min(1.0, box[2] + margin * w), min(1.0, box[3] + margin * h))
    return None if (b[2] - b[0]) * (b[3] - b[1]) > max_area else b


def true_boxes(meta, photos):
    out = {}
    for s in meta["scenes"]:
        W, H = photos[s["file"]].size
        x0, y0, x1, y1 = s["box"]
        out[s["file"]] = (x0 / W, y0 / H, x1 / W, y1 / H)
    return out


def by_box_quality(meta, v, boxes, truth):
    """recall@1 of the queries per split grouped by how many of the pair's two boxes (query and
    stored scene) have IoU >= 0.5 with the true box: {split: {0|1|2: (queries, recall@1)}}."""
    out = {}
    for split in ("tuning", "heldout"):
        scenes = [s for s in meta["scenes"] if s["split"] == split]
        stored = [s for s in scenes if s["role"] == "stored"]
        index = {s["subject"]: i for i, s in enumerate(stored)}
        gallery = np.stack([v[s["file"]] for s in stored])
        groups = {}
        for q in (s for s in scenes if s["role"] == "query"):
            t = index[q["subject"]]
            good = sum(boxes[f] is not None and iou(boxes[f], truth[f]) >= 0.5 for f in (q["file"], stored[t]["file"]))
            sims = gallery @ v[q["file"]]
            groups.setdefault(good, []).append(bool((sims > sims[t]).sum() < 1))
        out[split] = {k: (len(x), float(np.mean(x))) for k, x in sorted(groups.items())}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=5, help="maps whose best box (tuning IoU) is run again")
    ap.add_argument("--margins", type=float, nargs="*", default=[-0.1, 0.0, 0.15, 0.3],
                    help="box margins (a fraction of its size a side) tried on every chosen box")
    ap.add_argument("--max-area", type=float, default=0.8, help="a bigger box is no crop (the manifest's)")
    ap.add_argument("--json")
    ap.add_argument("--dump", help="only write the maps and the boxes of rar*scda7 f0.35 cc "
                                   "(benches/locate/box_timing.rs reads them)")
    ap.add_argument("--cache", help="keep the first runs' outputs here (a pickle) between runs")
    args = ap.parse_args()
    with open(os.path.join(args.set, "set.json")) as f:
        meta = json.load(f)
    photos = se.load_photos(args.set, meta)
    sess = session(args.model, args.threads)
    decoded = {f: se.decoded(im, se.SIZE) for f, im in photos.items()}
    t0 = time.perf_counter()
    if args.cache and os.path.exists(args.cache):
        with open(args.cache, "rb") as fh:
            first = pickle.load(fh)
    else:
        first = {f: first_run(sess, im) for f, im in decoded.items()}
        if args.cache:
            with open(args.cache, "wb") as fh:
                pickle.dump(first, fh)
    print(f"{len(photos)} photos; first runs {time.perf_counter() - t0:.0f}s", flush=True)
    truth = true_boxes(meta, photos)
    tuning = [s["file"] for s in meta["scenes"] if s["split"] == "tuning"]
    heldout = [s["file"] for s in meta["scenes"] if s["split"] == "heldout"]
    results = []

    def report(method, v, cropped):
        r = se.evaluate(meta, v)
        results.append({"method": method, "cropped": cropped, **{k: list(x) for k, x in r.items()}})
        print(f"{method:<52} tuning {r['tuning'][0]:.3f}/{r['tuning'][1]:.3f}  "
              f"heldout {r['heldout'][0]:.3f}/{r['heldout'][1]:.3f}  dogs {r['dogs'][0]:.2f}/{r['dogs'][1]:.2f}"
              f"  cropped {cropped:.2f}", flush=True)
        return r["tuning"][0]

    # 1. Boxes: every localiser's IoU with the true box (no model run).
    t = time.perf_counter()
    maps = {f: with_products(first[f]["maps"]) for f in photos}
    print(f"product maps: {(time.perf_counter() - t) / len(photos) * 1e6:.0f} us/photo (numpy, all four)")
    print("\npointing (the map's peak cell inside the true box), tuning:",
          ", ".join(f"{mp} {np.mean([inside(peak(maps[f][mp]), truth[f]) for f in tuning]):.2f}"
                    for mp in maps[tuning[0]]))
    if args.dump:
        with open(args.dump, "wb") as fh:
            for f in photos:
                m = first[f]["maps"]
                b = box_of(maps[f]["rar*scda7"], "f0.35", "cc")
                fh.write(m["rar"].astype("<f4").tobytes() + m["scda7"].astype("<f4").tobytes()
                         + np.array(b if b is not None else (-1.0,) * 4, "<f8").tobytes())
        print(f"maps of {len(photos)} photos written to {args.dump}")
        return
    cuts = ["mean", "otsu", "f0.2", "f0.35", "f0.5", "f0.65"]
    stats = []
    for mp, cut, region in itertools.product(maps[tuning[0]], cuts, ["cc", "all"]):
        t = time.perf_counter()
        boxes = {f: box_of(maps[f][mp], cut, region) for f in photos}
        us = (time.perf_counter() - t) / len(photos) * 1e6
        row = {"map": mp, "cut": cut, "region": region, "us": us, "boxes": boxes}
        for split, files in (("tuning", tuning), ("heldout", heldout)):
            ious = np.array([0.0 if boxes[f] is None else iou(boxes[f], truth[f]) for f in files])
            row[split] = (ious.mean(), (ious >= 0.5).mean())
        # Share cropped: the box with the service's margin 0.15 within max_area.
        row["cropped"] = np.mean([grown(boxes[f], 0.15, args.max_area) is not None for f in photos])
        stats.append(row)
    stats.sort(key=lambda r: -r["tuning"][0])
    print("\nbox vs true box: mean IoU / share IoU>=0.5 (tuning, heldout); share cropped at margin 0.15;"
          " CPU per photo (Python, pure-Python components)")
    for r in stats:
        print(f"  {r['map']:<12} {r['cut']:<5} {r['region']:<3}  tuning {r['tuning'][0]:.3f}/{r['tuning'][1]:.2f}"
              f"  heldout {r['heldout'][0]:.3f}/{r['heldout'][1]:.2f}  cropped {r['cropped']:.2f}"
              f"  {r['us']:7.1f} us", flush=True)

    # 2. Recall: the shipped one-run vector, today's cam crop box, and each map's best box (by
    # tuning IoU) cropped again, at several margins.
    report("whole (first run's embedding)", {f: first[f]["embedding"] for f in photos}, 0.0)
    report("cam-colour-r1 (shipped: first run's cam_embedding)", {f: first[f]["cam_embedding"] for f in photos}, 0.0)
    today = next(r for r in stats if (r["map"], r["cut"], r["region"]) == ("cam", "f0.35", "all"))
    best_per_map = {}
    for r in stats:
        best_per_map.setdefault(r["map"], r)
    chosen = [today] + [r for r in best_per_map.values() if r is not today][:args.top]
    oracle = {"map": "oracle", "cut": "-", "region": "-", "boxes": {f: truth.get(f) for f in photos}}
    # The dogs have no true box: they keep today's cam box.
    for f in photos:
        if oracle["boxes"][f] is None:
            oracle["boxes"][f] = today["boxes"][f]
    graph = se.Graph(sess)

    def vectors(boxes, margin, flip):
        out, n = {"cam_embedding": {}, "embedding": {}}, 0
        for f, im in decoded.items():
            b = grown(boxes[f], margin, args.max_area)
            if b is None:
                out["cam_embedding"][f], out["embedding"][f] = first[f]["cam_embedding"], first[f]["embedding"]
                continue
            n += 1
            c = se.crop(im, b, True)
            emb, cam_emb = graph(c, ("embedding", "cam_embedding"))
            if flip:
                e2, c2 = graph(ImageOps.mirror(c), ("embedding", "cam_embedding"))
                emb, cam_emb = se.l2(emb + e2), se.l2(cam_emb + c2)
            out["cam_embedding"][f], out["embedding"][f] = cam_emb, emb
        return out, n / len(decoded)

    best = (-1.0, None)
    for r in chosen + [oracle]:
        name = f"{r['map']} {r['cut']} {r['region']}"
        for margin in args.margins:
            v, cropped = vectors(r["boxes"], margin, False)
            for kind in ("cam_embedding", "embedding"):
                score = report(f"{name} m={margin} {kind}", v[kind], cropped)
                if r is not oracle and score > best[0]:
                    best = (score, (r, name, margin, kind), v[kind])
    # How far the box decides it: the best's recall by the number of good boxes in the pair.
    r, name, margin, kind = best[1]
    print(f"{name} m={margin} {kind}: recall@1 by the pair's boxes with IoU >= 0.5 (0, 1, 2): "
          + "; ".join(f"{split} " + ", ".join(f"{k}: {n} queries {x:.2f}" for k, (n, x) in g.items())
                      for split, g in by_box_quality(meta, best[2], r["boxes"], truth).items()), flush=True)
    # The flip-averaged vector (one more run on the mirrored crop) of the best on the tuning half.
    for r, name, margin, kind in [best[1], (oracle, "oracle - -", margin, kind)]:
        v, cropped = vectors(r["boxes"], margin, True)
        report(f"{name} m={margin} {kind} +flip (3 runs)", v[kind], cropped)
    print(f"second runs: {graph.runs}, {graph.seconds / max(graph.runs, 1) * 1e3:.1f} ms a run "
          f"({args.threads} thread(s), onnxruntime from Python; the shared machine's load included)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"boxes": [{k: v for k, v in r.items() if k != "boxes"} for r in stats],
                       "results": results}, f, indent=1, default=float)


if __name__ == "__main__":
    main()

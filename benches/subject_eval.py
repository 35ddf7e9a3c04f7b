#!/usr/bin/env python3
"""Same subject, different scene: recall@1/@5 of ways to embed a photo (choosing the method).

The set comes from models/subject_eval_set.py (scripts/setup-eval.sh fetches its material). For
each subject, its query scene searches a gallery of every stored scene of its split (exact
cosine); a hit is its own stored scene. Methods, all on the shipped EfficientNet-Lite0 graph (run
here with its 7x7 head features as an extra output; any graph built the same way works, its input
size read from it: benches/ceiling_eval.py builds Lite1/Lite2 and reuses the functions below):

  whole          the whole photo, pooled (today's embedding)
  cam_pool       the class activation map (CAM) of the top-k classes as pooling weights
  crop           a second run on the CAM's box, cut from the decoded pixels, pooled
  crop_cam       the crop, pooled by its own CAM
  fuse(a, b, w)  sqrt(w)*a ++ sqrt(1-w)*b: cosine = w*cos_a + (1-w)*cos_b
  cam crop       the service's cam-crop method (src/pipeline.rs) on the graph's own outputs: the
                 "cam" box cut and run again, its "cam_embedding" (the animal prior included:
                 models/build_model.py). The shipped cam-colour-r1 is one run, the whole photo's
                 "cam_embedding" (benches/subject_colour.py, "cam_embedding (first run)")
  oracle         the crop_cam of the true box (what a perfect localiser would give)
  detector       NanoDet's best non-person box (models/convert_detector.py; --detector, any
                 --size, fp32 or INT8 from models/quantize_detector.py), else the cam crop's box
                 (benches/detector_eval.py evaluates the variants, their cost and other crop rules)

Parameters are chosen on the "tuning" half; the "heldout" half is reported with them. Run:

  .cache/venv/bin/python benches/subject_eval.py --set .cache/eval/subject-set \
      --model models/efficientnet_lite0.onnx [--grid]
"""
import argparse
import json
import os
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper
from PIL import Image

SIZE, MEAN, STD = 224, 127.0, 128.0


def load(model_path, threads):
    import onnxruntime as ort
    model = onnx.load(model_path)
    model.graph.output.append(helper.make_tensor_value_info("head.relu6", onnx.TensorProto.FLOAT, None))
    inits = {i.name: i for i in model.graph.initializer}
    fc_w = numpy_helper.to_array(inits["fc.w"]).astype(np.float32)  # [1000, 1280]
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess, fc_w


def input_size(sess):
    """The model's square input side (224 for Lite0; benches/ceiling_eval.py's bigger models differ)."""
    return int(sess.get_inputs()[0].shape[2])


def tensor(im, size=SIZE):
    im = im.resize((size, size), Image.BILINEAR)
    return ((np.asarray(im, np.float32) - MEAN) / STD).transpose(2, 0, 1)


def l2(v):
    return v / max(np.linalg.norm(v), 1e-12)


class Runner:
    def __init__(self, sess, fc_w):
        self.sess, self.fc_w, self.runs, self.seconds = sess, fc_w, 0, 0.0
        self.size = input_size(sess)

    def run(self, im):
        t = time.perf_counter()
        emb, logits, fmap = self.sess.run(["embedding", "logits", "head.relu6"],
                                          {"input": tensor(im, self.size)[None]})
        self.seconds += time.perf_counter() - t
        self.runs += 1
        return emb[0], logits[0], fmap[0].reshape(1280, -1)  # [1280, cells]: 7x7 for Lite0


def cam(fc_w, logits, fmap, k):
    """The top-k classes' activation map over the head's cells (7x7 = 49 for Lite0), ReLU."""
    top = np.argsort(-logits)[:k]
    p = np.exp(logits[top] - logits[top].max())
    p /= p.sum()
    m = (p[:, None] * (fc_w[top] @ fmap)).sum(0)  # [49]
    return np.maximum(m, 0)


def cam_pool(fmap, m, gamma):
    w = m ** gamma
    if w.sum() <= 0:
        return l2(fmap.mean(1))
    return l2(fmap @ w / w.sum())


def cam_box(m, thr, margin, square):
    """The box (fractions of the photo) of the map's cells (a square grid, 7x7 for Lite0) at or
    above thr*max, with a margin."""
    n = int(round(np.sqrt(m.size)))
    g = m.reshape(n, n)
    if g.max() <= 0:
        return (0.0, 0.0, 1.0, 1.0)
    ys, xs = np.nonzero(g >= thr * g.max())
    x0, x1, y0, y1 = xs.min() / n, (xs.max() + 1) / n, ys.min() / n, (ys.max() + 1) / n
    w, h = x1 - x0, y1 - y0
    x0, x1, y0, y1 = x0 - margin * w, x1 + margin * w, y0 - margin * h, y1 + margin * h
    return (max(0.0, x0), max(0.0, y0), min(1.0, x1), min(1.0, y1))


def crop(im, box, square):
    W, H = im.size
    x0, y0, x1, y1 = box[0] * W, box[1] * H, box[2] * W, box[3] * H
    if square:  # grow the short side to a square in pixels (within the photo): no stretching
        side = max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        side = min(side, W, H)
        x0, y0 = min(max(0, cx - side / 2), W - side), min(max(0, cy - side / 2), H - side)
        x1, y1 = x0 + side, y0 + side
    x0, y0 = int(x0), int(y0)
    x1, y1 = max(x0 + 1, int(round(x1))), max(y0 + 1, int(round(y1)))
    return im.crop((x0, y0, x1, y1))


def decoded(im, cover):
    """As the service decodes: the JPEG at the DCT scale (1, 1/2, 1/4, 1/8) whose short side still covers `cover`."""
    s = min(im.size)
    for f in (8, 4, 2):
        if s // f >= cover:
            return im.resize((im.size[0] // f, im.size[1] // f), Image.BILINEAR)
    return im


def recall(queries, gallery, targets):
    sims = queries @ gallery.T
    ranks = np.array([(sims[i] > sims[i, t]).sum() for i, t in enumerate(targets)])
    return float((ranks < 1).mean()), float((ranks < 5).mean())


def load_photos(set_dir, meta):
    """Every scene and dog photo of the set, decoded whole: {file: RGB image}."""
    return {s["file"]: Image.open(os.path.join(set_dir, s["file"])).convert("RGB")
            for s in meta["scenes"] + meta["dogs"]}


def evaluate(meta, v):
    """recall@1/@5 of vectors v ({file: unit vector}) per split, and of the dogs."""
    res = {}
    for split in ("tuning", "heldout"):
        sc = [s for s in meta["scenes"] if s["split"] == split]
        stored = [s for s in sc if s["role"] == "stored"]
        index = {s["subject"]: i for i, s in enumerate(stored)}
        gallery = np.stack([v[s["file"]] for s in stored])
        queries = [s for s in sc if s["role"] == "query"]
        res[split] = recall(np.stack([v[s["file"]] for s in queries]), gallery,
                            [index[s["subject"]] for s in queries])
    # dogs: each shot searches the other shots of both dogs plus the held-out stored scenes
    dogs = meta["dogs"]
    hits1 = hits5 = 0
    held = [v[s["file"]] for s in meta["scenes"] if s["split"] == "heldout" and s["role"] == "stored"]
    for q in dogs:
        others = [d for d in dogs if d["shot"] != q["shot"]]
        gallery = np.stack([v[d["file"]] for d in others] + held)
        t = next(i for i, d in enumerate(others) if d["subject"] == q["subject"])
        r1, r5 = recall(v[q["file"]][None], gallery, [t])
        hits1 += r1
        hits5 += r5
    # a set without dogs (models/animal_eval_set.py: its dogs are pairs among its animals)
    res["dogs"] = (hits1 / len(dogs), hits5 / len(dogs)) if dogs else (float("nan"),) * 2
    return res


class Graph:
    """The built graph's own outputs, as src/pipeline.rs runs it (input at the model's size), timed."""

    def __init__(self, sess):
        self.sess, self.size, self.seconds, self.runs = sess, input_size(sess), 0.0, 0

    def __call__(self, im, outputs=("embedding", "cam", "cam_embedding")):
        t = time.perf_counter()
        out = self.sess.run(list(outputs), {"input": tensor(im, self.size)[None]})
        self.seconds, self.runs = self.seconds + time.perf_counter() - t, self.runs + 1
        return [o[0] for o in out]


def cam_crop_box(im, cam_map, thr=0.35, margin=0.15):
    """The cam-crop method's crop of the decoded photo, or None where its box is the whole photo
    (thr and margin: the manifest's, models/build_model.py's SUBJECT)."""
    box = cam_box(cam_map, thr, margin, True)
    if (box[2] - box[0]) * (box[3] - box[1]) > 0.8:  # the whole photo is the subject
        return None
    return crop(im, box, True)


def cam_crop_vectors(graph, photos, thr=0.35, margin=0.15):
    """The service's cam-crop method on this graph (src/pipeline.rs): the CAM box cut from the
    decoded pixels and run again, its cam_embedding; the whole photo's where the box covers most
    of it. (The shipped cam-colour-r1 is one run: the whole photo's cam_embedding.)"""
    v = {}
    for f, im in photos.items():
        im = decoded(im, graph.size)
        _, cam_map, cam_emb = graph(im)
        c = cam_crop_box(im, cam_map, thr, margin)
        if c is not None:
            cam_emb = graph(c)[2]
        v[f] = cam_emb
    return v


def oracle_crops(photos, meta, size, margin=0.15):
    """The true subject box of every scene (grown by `margin` of its size a side, squared), cut
    from the photo decoded for a model of input `size`: {file: crop} (the dogs have no box)."""
    out = {}
    for s in meta["scenes"]:
        im = photos[s["file"]]
        W, H = im.size
        x0, y0, x1, y1 = s["box"]
        w, h = (x1 - x0) / W, (y1 - y0) / H
        box = (max(0, x0 / W - margin * w), max(0, y0 / H - margin * h),
               min(1, x1 / W + margin * w), min(1, y1 / H + margin * h))
        out[s["file"]] = crop(decoded(im, size), box, True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", action="store_true", help="also sweep the parameters (tuning half)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--detector", help="NanoDet ONNX (models/convert_detector.py): also evaluate it")
    args = ap.parse_args()
    with open(os.path.join(args.set, "set.json")) as f:
        meta = json.load(f)
    sess, fc_w = load(args.model, args.threads)
    runner = Runner(sess, fc_w)

    photos = load_photos(args.set, meta)
    size = runner.size
    first = {f: runner.run(decoded(im, size)) for f, im in photos.items()}
    first_ms = runner.seconds / runner.runs * 1e3

    def crop_vectors(params):
        """(crop pooled, crop CAM-pooled) per photo for box params (k, thr, margin, square, cover)."""
        k, thr, margin, square, cover, gamma = params
        out = {}
        for f, im in photos.items():
            emb, logits, fmap = first[f]
            box = cam_box(cam(fc_w, logits, fmap, k), thr, margin, square)
            c = crop(decoded(im, cover), box, square)
            e2, l2_, f2 = runner.run(c)
            out[f] = (l2(e2), cam_pool(f2, cam(fc_w, l2_, f2, k), gamma))
        return out

    def vectors(method, crops=None, k=5, gamma=1.0):
        v = {}
        for f in photos:
            emb, logits, fmap = first[f]
            whole = l2(emb)
            pooled = cam_pool(fmap, cam(fc_w, logits, fmap, k), gamma)
            name, *rest = method
            if name == "whole":
                v[f] = whole
            elif name == "cam_pool":
                v[f] = pooled
            elif name == "crop":
                v[f] = crops[f][0]
            elif name == "crop_cam":
                v[f] = crops[f][1]
            elif name == "fuse":
                parts, weights = rest
                table = {"whole": whole, "cam_pool": pooled,
                         "crop": crops[f][0] if crops else None, "crop_cam": crops[f][1] if crops else None}
                v[f] = np.concatenate([np.sqrt(w) * table[p] for p, w in zip(parts, weights)])
        return v

    results = []

    def report(label, v, runs):
        r = evaluate(meta, v)
        results.append({"method": label, "runs": runs, **{k: list(x) for k, x in r.items()}})
        print(f"{label:<58} tuning {r['tuning'][0]:.3f}/{r['tuning'][1]:.3f}  "
              f"heldout {r['heldout'][0]:.3f}/{r['heldout'][1]:.3f}  dogs {r['dogs'][0]:.2f}/{r['dogs'][1]:.2f}",
              flush=True)

    print(f"{len(photos)} photos; first run {first_ms:.1f} ms/photo ({args.threads} thread(s))")
    report("whole", vectors(("whole",)), 1)
    for k in (1, 5):
        for gamma in (1.0, 2.0):
            report(f"cam_pool k={k} gamma={gamma}", vectors(("cam_pool",), k=k, gamma=gamma), 1)
    for w in (0.7, 0.85):
        report(f"fuse cam_pool+whole w={w}", vectors(("fuse", ("cam_pool", "whole"), (w, 1 - w))), 1)

    grid = [(5, 0.35, 0.15, False, size, 1.0), (5, 0.35, 0.15, True, 448, 1.0)]
    if args.grid:
        grid += [(5, 0.5, 0.15, True, 448, 1.0), (5, 0.25, 0.15, True, 448, 1.0),
                 (5, 0.35, 0.3, True, 448, 1.0), (5, 0.35, 0.15, True, size, 1.0),
                 (1, 0.35, 0.15, True, 448, 1.0), (5, 0.35, 0.15, True, 10000, 1.0)]
    for params in grid:
        before = (runner.runs, runner.seconds)
        crops = crop_vectors(params)
        crop_ms = (runner.seconds - before[1]) / (runner.runs - before[0]) * 1e3
        tag = "k={} thr={} margin={} square={} cover={}".format(*params[:5])
        report(f"crop {tag}", vectors(("crop",), crops), 2)
        report(f"crop_cam {tag}", vectors(("crop_cam",), crops), 2)
        for w in (0.6, 0.8):
            report(f"fuse crop_cam+whole w={w} {tag}",
                   vectors(("fuse", ("crop_cam", "whole"), (w, 1 - w)), crops), 2)
        report(f"fuse crop_cam+cam_pool 0.5 {tag}",
               vectors(("fuse", ("crop_cam", "cam_pool"), (0.5, 0.5)), crops), 2)
        report(f"fuse crop+crop_cam 0.5 {tag}",
               vectors(("fuse", ("crop", "crop_cam"), (0.5, 0.5)), crops), 2)
        print(f"   second run {crop_ms:.1f} ms/photo")
    # The cam crop, from the graph's outputs (cam, cam_embedding), as src/pipeline.rs runs it.
    names = [o.name for o in sess.get_outputs()]
    if "cam" in names:
        graph = Graph(sess)
        v = cam_crop_vectors(graph, photos)
        report("cam crop (cam-crop-r1's box) of the graph's cam_embedding", v, graph.runs / len(photos))
        print(f"   {graph.seconds / len(photos) * 1e3:.1f} ms/photo of model runs")
        oracle = dict(v)
        for f, c in oracle_crops(photos, meta, size).items():
            oracle[f] = graph(c)[2]
        report("oracle box (true subject box), crop_cam", oracle, 2)
        if args.detector:
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
            det = ort.InferenceSession(args.detector, so, providers=["CPUExecutionProvider"])
            side = int(det.get_inputs()[0].shape[2])  # any convert_detector.py --size, fp32 or INT8
            mean, std = np.array([103.53, 116.28, 123.675]), np.array([57.375, 57.12, 58.395])
            dv, dt_total = {}, 0.0
            for f, im in photos.items():
                im = decoded(im, size)
                x = ((np.asarray(im.resize((side, side), Image.BILINEAR), np.float32)[..., ::-1] - mean) / std)
                t = time.perf_counter()
                outs = dict(zip([o.name for o in det.get_outputs()],
                                det.run(None, {"input": x.astype(np.float32).transpose(2, 0, 1)[None].copy()})))
                dt_total += time.perf_counter() - t
                best = (0.0, None)
                for stride in (8, 16, 32):
                    sc = outs[f"scores_{stride}"][0].copy()
                    sc[:, 0] = 0  # people are not the subject
                    bx = outs[f"boxes_{stride}"][0].reshape(-1, 4, 11)
                    p = np.exp(bx - bx.max(2, keepdims=True))
                    d = (p / p.sum(2, keepdims=True) * np.arange(11)).sum(2) * stride
                    i = int(sc.max(1).argmax())
                    g = side // stride
                    cx, cy = (i % g + 0.5) * stride, (i // g + 0.5) * stride
                    box = ((cx - d[i, 0]) / side, (cy - d[i, 1]) / side, (cx + d[i, 2]) / side, (cy + d[i, 3]) / side)
                    best = max(best, (float(sc[i].max()), box), key=lambda b: b[0])
                score, box = best
                if score >= 0.3:
                    w, h = box[2] - box[0], box[3] - box[1]
                    box = (max(0, box[0] - 0.15 * w), max(0, box[1] - 0.15 * h),
                           min(1, box[2] + 0.15 * w), min(1, box[3] + 0.15 * h))
                    dv[f] = graph(crop(im, box, True))[2]
                else:
                    dv[f] = v[f]
            report("detector (NanoDet best non-person box >= 0.3, else shipped)", dv, 3)
            print(f"   detector {dt_total / len(photos) * 1e3:.1f} ms/photo")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"first_run_ms": first_ms, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

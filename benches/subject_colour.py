#!/usr/bin/env python3
"""Same subject, different scene, with one model run: the subject's colour and other single-run
vectors, against the shipped CAM crop (issue 22; benches/subject_eval.py has the crop methods).

Every vector here comes from the first run of the shipped graph (its "cam" and "cam_embedding"
outputs, plus the 7x7 head features as an extra output) and the model's own 224x224 input pixels:

  cnn(map)       the head features pooled with a 7x7 weight map, L2-normalised
  colour(map)    a soft-binned joint colour histogram (Lab or opponent space) of the 224 px input
                 average-pooled to 56x56, each pixel weighted by the map (bilinearly upsampled);
                 Hellinger-normalised (square root of the L1-normalised histogram): unit length,
                 mirror- and scale-invariant
  fuse           sqrt(w)*cnn ++ sqrt(1-w)*colour, cosine = w*cos_cnn + (1-w)*cos_colour; the CNN
                 part drops the channels with the smallest fc-weight norm (those the classifier
                 uses least) so the fused vector keeps the store's 1280 dimensions
  maps           cam (the graph's, with the animal prior), cam^2, dist (how far each cell's
                 feature is from the photo's mean feature: what stands out), cam*dist, uniform

Besides the subject set (tuning / heldout / dogs, as benches/subject_eval.py), every method is
scored on the edited copies of benches/retrieval.rs (same originals, tiles and edits), whose
recall@1 must stay high. Parameters are chosen on the tuning half; held-out is reported. Run:

  .cache/venv/bin/python benches/subject_colour.py --set .cache/eval/subject-set \
      --samples .cache/samples --model models/efficientnet_lite0.onnx [--cache /var/tmp/feats.pkl]
"""
import argparse
import io
import json
import os
import pickle
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper
from PIL import Image, ImageOps

import subject_eval as se

REAL_PHOTOS = ["astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png",
               "coins.png", "color.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
               "moon.png", "motorcycle_left.png", "page.png", "retina.jpg", "rocket.jpg"]
GRID, POOLED = 7, 56  # head cells per side; colour pixels per side (224 / 4)
MID = "b10.residual"  # stage 5's output: 112 channels at 14x14 (intermediate features)


def load(model_path, threads):
    import onnxruntime as ort
    model = onnx.load(model_path)
    for name in ("head.relu6", MID):
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    inits = {i.name: i for i in model.graph.initializer}
    fc_w = numpy_helper.to_array(inits["fc.w"]).astype(np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]), fc_w


def features(sess, im):
    """One run: the graph's outputs, the head features and the 56x56 pooled input pixels."""
    small = im.resize((se.SIZE, se.SIZE), Image.BILINEAR)
    x = ((np.asarray(small, np.float32) - se.MEAN) / se.STD).transpose(2, 0, 1)
    emb, logits, cam, cam_emb, head, mid = sess.run(
        ["embedding", "logits", "cam", "cam_embedding", "head.relu6", MID], {"input": x[None]})
    # The 4x4 average of the model's input, back in 0..255 (what the graph's AveragePool gives).
    px = (x.reshape(3, POOLED, 4, POOLED, 4).mean((2, 4)) * se.STD + se.MEAN).reshape(3, -1).T
    return {"emb": emb[0], "logits": logits[0], "cam": cam[0], "cam_emb": cam_emb[0],
            "head": head[0].reshape(1280, -1), "mid": mid[0].reshape(mid.shape[1], -1),
            "px": px.astype(np.float32)}


def upsample_matrix(side=POOLED):
    """[side^2, 7*7]: bilinear weights (half-pixel centres, clamped edges) of the map's cells."""
    u = np.zeros((side, GRID))
    for o in range(side):
        s = min(max((o + 0.5) * GRID / side - 0.5, 0.0), GRID - 1.0)
        i = min(int(np.floor(s)), GRID - 2)
        f = s - i
        u[o, i] += 1 - f
        u[o, i + 1] += f
    return np.kron(u, u).astype(np.float32)


UP, UP14 = upsample_matrix(), upsample_matrix(14)


def lab(rgb):
    c = rgb / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]]) / np.array([0.95047, 1.0, 1.08883])[:, None]
    xyz = np.maximum(lin @ m.T, 0)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    L, a, b = 116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])
    return np.stack([L / 100, (a + 64) / 128, (b + 64) / 128], 1)  # ~[0, 1] each


def opponent(rgb):
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    return np.stack([(r - g + 255) / 510, (r + g - 2 * b + 510) / 1020, (r + g + b) / 765], 1)


def soft_bins(v, n):
    """[pixels] in ~[0, 1] -> [n, pixels] triangular weights over n bins (sum 1 per pixel)."""
    t = np.clip(v * n - 0.5, 0, n - 1)
    return np.maximum(0, 1 - np.abs(t[None, :] - np.arange(n)[:, None]))


def colour(px, weights, space, bins, contrast=0.0):
    c = lab(px) if space == "lab" else opponent(px) if space == "opp" else px / 255.0
    a, b, d = (soft_bins(c[:, i], n) for i, n in enumerate(bins))
    w = weights / max(weights.sum(), 1e-12)
    h = np.einsum("n,an,bn,cn->abc", w, a, b, d).ravel()
    if contrast > 0:  # the colours of the subject less those of the rest of the photo
        rest = 1 - weights / max(weights.max(), 1e-12)
        rest = rest / max(rest.sum(), 1e-12)
        h = np.maximum(h - contrast * np.einsum("n,an,bn,cn->abc", rest, a, b, d).ravel(), 0)
    h = h / max(h.sum(), 1e-12)
    return np.sqrt(h)


def weight_map(f, name):
    cam = np.maximum(f["cam"], 0)
    if name == "cam":
        return cam + 1e-6
    if name == "cam2":
        return cam ** 2 + 1e-6
    if name == "uniform":
        return np.ones(GRID * GRID, np.float32)
    head = f["head"]
    cells = head / np.maximum(np.linalg.norm(head, axis=0, keepdims=True), 1e-12)
    mean = se.l2(head.mean(1))
    dist = np.maximum(1 - mean @ cells, 0)
    dist = dist / max(dist.max(), 1e-12)
    if name == "dist":
        return dist + 1e-6
    if name == "camdist":
        return cam * dist + 1e-6
    if name == "dist2":
        return dist ** 2 + 1e-6
    raise ValueError(name)


def rarity(f, bins=(4, 8, 8), power=4.0):
    """Each pixel's colour rarity in its photo: (1 - its colour's frequency / the most frequent
    colour's)^power + 1e-6, frequencies from a soft joint Lab histogram (histogram contrast)."""
    c = lab(f["px"])
    a, b, d = (soft_bins(c[:, i], n) for i, n in enumerate(bins))
    h = np.einsum("an,bn,cn->abc", a, b, d)
    p = np.einsum("abc,an,bn,cn->n", h, a, b, d)
    return np.maximum(1 - p / max(p.max(), 1e-12), 0) ** power + 1e-6


def subject_pixels(f, cam_power=1, power=4.0):
    """The subject's weight on each of the 56x56 pixels: the map (upsampled) x the colour rarity."""
    return memo(("px", id(f), cam_power, power),
                lambda: (UP @ (f["cam"] ** cam_power)) * (rarity(f, power=power) if power else 1.0))


def cells_of(pixels):
    return pixels.reshape(GRID, POOLED // GRID, GRID, POOLED // GRID).mean((1, 3)).ravel()


def cam_colour(f, kept, cam_power=1, power=4.0, bins=(2, 6, 6), w=0.7):
    """The cam-colour method (models/build_model.py's "cam_embedding"): the head pooled by the
    subject's cell weights ++ the subject's colour, sqrt(w) : sqrt(1 - w)."""
    px = subject_pixels(f, cam_power, power)
    a = se.l2(cnn(f, cells_of(px))[kept])
    b = memo(("sc", id(f), cam_power, power, bins), lambda: colour(f["px"], px, "lab", bins))
    return np.concatenate([np.sqrt(w) * a, np.sqrt(1 - w) * b])


def cnn(f, m):
    return se.l2(f["head"] @ (m / m.sum()))


_MEMO = {}


def memo(key, make):
    """Vectors shared by many methods, computed once (keys hold the features' id)."""
    if key not in _MEMO:
        _MEMO[key] = make()
    return _MEMO[key]


def colour_of(f, m, space, bins, contrast=0.0):
    return memo(("colour", id(f), m, space, bins, contrast),
                lambda: colour(f["px"], UP @ weight_map(f, m), space, bins, contrast))


def cnn_of(f, m):
    if m.startswith("mid:"):  # stage 5's features pooled by the map (upsampled to 14x14)
        w = UP14 @ weight_map(f, m[4:])
        return memo(("cnn", id(f), m), lambda: se.l2(f["mid"] @ (w / w.sum())))
    if m.startswith("gem:"):  # generalized mean (p = 3) of the features, weighted by the map
        w = weight_map(f, m[4:])
        return memo(("cnn", id(f), m), lambda: se.l2(((f["head"] ** 3) @ (w / w.sum())) ** (1 / 3)))
    return memo(("cnn", id(f), m), lambda: cnn(f, weight_map(f, m)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", required=True)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", help="pickle of the model runs (made if absent)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="only the main methods")
    args = ap.parse_args()
    with open(os.path.join(args.set, "set.json")) as fh:
        meta = json.load(fh)
    sess, fc_w = load(args.model, args.threads)
    drop_order = np.argsort(np.linalg.norm(fc_w, axis=0))  # channels the classifier uses least first

    if args.cache and os.path.exists(args.cache):
        with open(args.cache, "rb") as fh:
            feats, crops, copies, seconds = pickle.load(fh)
    else:
        t0 = time.perf_counter()
        feats, crops = {}, {}
        files = [s["file"] for s in meta["scenes"]] + [d["file"] for d in meta["dogs"]]
        for file in files:
            im = se.decoded(Image.open(os.path.join(args.set, file)).convert("RGB"), se.SIZE)
            feats[file] = features(sess, im)
            box = se.cam_box(feats[file]["cam"], 0.35, 0.15, True)
            if (box[2] - box[0]) * (box[3] - box[1]) <= 0.8:  # the shipped crop (its second run)
                crops[file] = features(sess, se.crop(im, box, True))
        seconds = (time.perf_counter() - t0) / (len(files) + len(crops))
        copies = retrieval_features(sess, args.samples)
        if args.cache:
            with open(args.cache, "wb") as fh:
                pickle.dump((feats, crops, copies, seconds), fh)
    print(f"{len(feats)} scenes, {len(crops)} shipped crops; {seconds * 1e3:.1f} ms per run+features")

    results = []

    def report(label, vec, runs, crop_vec=None, floors=False):
        """vec(features) -> vector; crop_vec(features of the crop) for the photos with one."""
        def v_of(file, store):
            f = store[file]
            if crop_vec is not None and file in crops:
                return crop_vec(crops[file])
            return vec(f)
        v = {file: v_of(file, feats) for file in feats}
        r = se.evaluate(meta, v)
        cg, cq = copies
        gal = np.stack([vec(f) for f in cg])
        qs = [(i, vec(f)) for i, f in cq]
        r["copies"] = se.recall(np.stack([q for _, q in qs]), gal, [i for i, _ in qs])
        if floors:
            r["floor"] = floor_table(meta, v, gal[:len(REAL_PHOTOS)], qs)
        results.append({"method": label, "runs": runs, **{k: list(x) for k, x in r.items()}})
        print(f"{label:<64} tuning {r['tuning'][0]:.3f}/{r['tuning'][1]:.3f}  heldout "
              f"{r['heldout'][0]:.3f}/{r['heldout'][1]:.3f}  dogs {r['dogs'][0]:.2f}/{r['dogs'][1]:.2f}  "
              f"copies {r['copies'][0]:.3f}/{r['copies'][1]:.3f}  runs {runs:.2f}", flush=True)
        for row in r.get("floor", []):
            print("    floor {:.2f}: copies precision {:.3f} recall {:.3f} | same subject, other scene "
                  "(held out) precision {:.3f} recall {:.3f} | dogs {}/4".format(*row))

    crop_runs = 1 + len(crops) / len(feats)
    report("whole", lambda f: se.l2(f["emb"]), 1, floors=True)
    report("cam_embedding (first run)", lambda f: f["cam_emb"], 1)
    report("shipped (cam crop)", lambda f: f["cam_emb"], crop_runs, lambda f: f["cam_emb"])

    def fuse(a, b, w):
        return np.concatenate([np.sqrt(w) * a, np.sqrt(1 - w) * b])

    def fused(cnn_map, col_map, space, bins, w, contrast=0.0, keep=True, cnn_vec=None):
        k = int(np.prod(bins))
        kept = np.sort(drop_order[k:]) if keep else np.arange(1280)

        def vec(f):
            a = cnn_vec(f) if cnn_vec else cnn_of(f, cnn_map)
            a = se.l2(a[kept])
            b = colour_of(f, col_map, space, bins, contrast)
            return fuse(a, b, w)
        return vec

    # Colour alone, by map, space and bins.
    maps = ["uniform", "cam", "cam2", "dist", "camdist"] if not args.quick else ["cam", "camdist"]
    for m in maps:
        for space, bins in [("lab", (4, 4, 4)), ("lab", (2, 6, 6)), ("lab", (4, 6, 6)), ("opp", (4, 4, 4))]:
            report(f"colour {m} {space} {bins}",
                   lambda f, m=m, s=space, b=bins: colour_of(f, m, s, b), 1)
    for m in (["cam", "cam2", "dist", "camdist", "dist2", "gem:cam", "gem:uniform", "mid:cam", "mid:uniform"]
              if not args.quick else ["cam"]):
        report(f"cnn {m}", lambda f, m=m: cnn_of(f, m), 1)
    for w in (0.5, 0.7):  # intermediate features beside the head's (dimension aside)
        report(f"fuse cnn cam + cnn mid:cam w={w}",
               lambda f, w=w: np.concatenate([np.sqrt(w) * cnn_of(f, "cam"),
                                              np.sqrt(1 - w) * cnn_of(f, "mid:cam")]), 1)
    # Fusions (1 run).
    for cm in (["cam", "cam2", "camdist"] if not args.quick else ["cam"]):
        for colm in (["cam", "cam2", "camdist"] if not args.quick else ["cam"]):
            for space, bins in [("lab", (4, 4, 4)), ("lab", (2, 6, 6)), ("lab", (4, 6, 6))]:
                for w in (0.3, 0.5, 0.7):
                    report(f"fuse cnn {cm} + colour {colm} {space} {bins} w={w}",
                           fused(cm, colm, space, bins, w), 1,
                           floors=(cm, colm, space, bins, w) == ("cam", "cam", "lab", (4, 4, 4), 0.5))
    for contrast in (0.5, 1.0):
        report(f"fuse cnn cam + colour cam lab (4,4,4) contrast {contrast} w=0.5",
               fused("cam", "cam", "lab", (4, 4, 4), 0.5, contrast), 1)
    report("fuse cnn cam + colour cam lab (4,4,4) w=0.5, all 1280 cnn channels (1344 dims)",
           fused("cam", "cam", "lab", (4, 4, 4), 0.5, keep=False), 1)
    # The shipped crop with the crop's colour (2 runs where it crops).
    for w in (0.5, 0.7):
        vec = fused("cam", "cam", "lab", (4, 4, 4), w, cnn_vec=lambda f: f["cam_emb"])
        report(f"shipped crop + colour cam lab (4,4,4) w={w}", vec, crop_runs, vec)
    # The map times the colour rarity (a histogram-contrast saliency) as the subject's weights.
    for cam_power in (1, 2):
        for power in (0, 2, 4, 8):
            for bins in ((2, 6, 6), (4, 4, 4)):
                for w in (0.3, 0.5, 0.7):
                    kept = np.sort(drop_order[int(np.prod(bins)):])
                    chosen = (cam_power, power, bins, w) == (1, 4, (2, 6, 6), 0.7)
                    report(f"cam-colour: cam^{cam_power} x rarity^{power} {bins} w={w}"
                           + (" (shipped: cam-colour-r1)" if chosen else ""),
                           lambda f, a=cam_power, g=power, b=bins, w=w, k=kept: cam_colour(f, k, a, g, b, w), 1,
                           floors=chosen)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"ms_per_run": seconds * 1e3, "results": results}, fh, indent=1)


def floor_table(meta, v, originals, copies):
    """Precision and recall of the relevance floor: on the edited copies (gallery: the originals;
    right: the query's original) and on the held-out scenes (gallery: the stored scenes; right:
    the same subject), and how many of the 4 dog photos keep the other photo of their dog."""
    held = [s for s in meta["scenes"] if s["split"] == "heldout"]
    stored = [s for s in held if s["role"] == "stored"]
    index = {s["subject"]: i for i, s in enumerate(stored)}
    sg = np.stack([v[s["file"]] for s in stored])
    sq = [(index[s["subject"]], v[s["file"]]) for s in held if s["role"] == "query"]
    dogs = meta["dogs"]
    rows = []
    for floor in (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
        row = [floor]
        for gallery, queries in ((originals, copies), (sg, sq)):
            right = shown = found = 0
            for t, q in queries:
                s = gallery @ q
                shown += int((s >= floor).sum())
                right += int(s[t] >= floor)
                found += int(s[t] >= floor)
            row += [right / max(shown, 1), found / len(queries)]
        row.append(sum(int(v[a["file"]] @ v[b["file"]] >= floor) for a in dogs for b in dogs
                       if a["subject"] == b["subject"] and a["shot"] != b["shot"]))
        rows.append(row)
    return rows


def retrieval_features(sess, samples):
    """benches/retrieval.rs's set: originals + their 3x3 tiles as the gallery, 8 edits as queries."""
    def run(im):
        return features(sess, se.decoded(im, se.SIZE))

    def jpeg(im, q):
        b = io.BytesIO()
        im.save(b, "JPEG", quality=q)
        return Image.open(io.BytesIO(b.getvalue())).convert("RGB")

    def brighten(im, d):
        return Image.fromarray(np.clip(np.asarray(im, np.int16) + d, 0, 255).astype(np.uint8))

    originals = [Image.open(os.path.join(samples, n)).convert("RGB") for n in REAL_PHOTOS]
    gallery = [run(im) for im in originals]
    for im in originals:
        tw, th = im.width // 3, im.height // 3
        gallery += [run(im.crop(((i % 3) * tw, (i // 3) * th, (i % 3) * tw + tw, (i // 3) * th + th)))
                    for i in range(9)]
    queries = []
    for i, im in enumerate(originals):
        w, h = im.size
        for e in [im.crop((w // 10, h // 10, w // 10 + w * 8 // 10, h // 10 + h * 8 // 10)),
                  im.crop((w // 5, 0, w // 5 + w * 6 // 10, h * 6 // 10)),
                  im.resize((w * 2 // 5, h * 2 // 5), Image.BILINEAR), jpeg(im, 20),
                  brighten(im, 40), brighten(im, -40), im.rotate(-7, Image.BILINEAR),
                  ImageOps.mirror(im)]:
            queries.append((i, run(e)))
    return gallery, queries


if __name__ == "__main__":
    main()

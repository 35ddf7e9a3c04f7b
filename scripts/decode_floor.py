#!/usr/bin/env python3
"""The decode floor of issue 25: photos per second the cores reach when they only decode PHOTO at
the reduced DCT scale a 224-px model input needs (libjpeg-turbo through Pillow's draft mode), one
process per core, nothing else. No service can embed that photo faster on this machine.

    python decode_floor.py PHOTO [SECONDS] [PROCESSES] [MODEL]

Prints one line: `decode floor: N photos/s (P processes, S s, WxH -> wxh)`.

With MODEL (an ONNX file with a 224x224 NCHW input), each decode is followed by one run of the
model (ONNX Runtime, one thread per process, on the photo's tensor made once), and the line starts
with `decode+model floor:`. That is the ceiling of any service embedding the photo with that model
on this machine: the decode and one model run, no resize, no HTTP, no hash, no copies.
"""
import io
import multiprocessing
import os
import sys
import time

from PIL import Image

SIDE = 224


def decode(data):
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (SIDE, SIDE))
    img.load()
    return img


def model_step(model, first):
    """A function that runs `model` once per decoded photo (None: nothing to run).

    The input is the first photo's tensor, made once: resizing and scaling in Python would cost
    more than in any service, and the floor is an upper bound."""
    if model is None:
        return lambda img: None
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    # The service's input: RGB resized to 224x224, (x - 127) / 128, NCHW.
    pixels = np.asarray(first.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR), np.float32)
    feed = {name: np.ascontiguousarray(((pixels - 127.0) / 128.0).transpose(2, 0, 1)[None])}
    return lambda img: session.run(None, feed)


def work(args):
    data, seconds, model = args
    first = decode(data)
    step = model_step(model, first)
    step(first)  # warm: the library's tables, the allocator, the model's first run
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(decode(data))
        count += 1
    return count / (time.perf_counter() - start)


def main():
    path = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    processes = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
    model = sys.argv[4] if len(sys.argv) > 4 else None
    with open(path, "rb") as f:
        data = f.read()
    full = Image.open(io.BytesIO(data)).size
    small = decode(data).size
    with multiprocessing.Pool(processes) as pool:
        rates = pool.map(work, [(data, seconds, model)] * processes)
    what = "decode+model floor" if model else "decode floor"
    print(
        f"{what}: {sum(rates):.1f} photos/s ({processes} processes, {seconds:g} s, "
        f"{full[0]}x{full[1]} -> {small[0]}x{small[1]})"
    )


if __name__ == "__main__":
    main()

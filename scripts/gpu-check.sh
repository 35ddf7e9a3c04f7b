#!/usr/bin/env bash
# The GPU path end to end, for anyone with an NVIDIA GPU (driver for CUDA 13): one command.
#
#   scripts/gpu-check.sh            # or: LOOKALIKE_CUDA_PYTHON_ENV=/opt/torch/.venv scripts/gpu-check.sh
#
# 1. sets up the CPU runtime, model and samples, and the GPU runtime (scripts/setup-runtime.sh --gpu);
# 2. builds the release binary;
# 3. agreement: every sample photo embedded on the CPU and on the GPU, with TF32 and without;
#    fails unless the cosines reach 0.999 (TF32) and 0.9999 (no TF32);
# 4. a start with a device that does not exist fails with a clear message, not on the CPU;
# 5. model throughput per batch size on the GPU (criterion, `cargo bench --bench inference`);
# 6. the whole service's /v1/embeddings at 64 clients, and the decode-bound ceiling: the same load
#    with 1, 2, 4 … decode permits up to the cores (`cargo bench --bench load`).
# Figures go to the terminal and to .cache/gpu-check/ (each step's output).
source "$(dirname "$0")/common.sh"
cd "$ROOT"
OUT="$CACHE/gpu-check"
mkdir -p "$OUT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lookalike-target}"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
scripts/setup-runtime.sh >/dev/null
scripts/setup-model.sh >/dev/null
scripts/setup-samples.sh >/dev/null
gpu_env=$(scripts/setup-runtime.sh --gpu)
set -a; source "$gpu_env"; set +a
cargo build --release --locked
BIN="$CARGO_TARGET_DIR/release/lookalike"
photos=("$CACHE"/samples/*.png "$CACHE"/samples/*.jpg)

log "3. agreement between the CPU and the GPU"
LOOKALIKE_DEVICE=cpu LOOKALIKE_ORT_LIBRARY="$ORT_LIB" "$BIN" embed --full "${photos[@]}" > "$OUT/cpu.jsonl"
"$BIN" embed --full "${photos[@]}" > "$OUT/gpu-tf32.jsonl"
"$BIN" embed --full --cuda-tf32 false "${photos[@]}" > "$OUT/gpu-fp32.jsonl"
python3 - "$OUT" <<'PY' | tee "$OUT/agreement.txt"
import json, math, sys
out = sys.argv[1]
def load(name):
    return [json.loads(line)["embedding"] for line in open(f"{out}/{name}.jsonl") if line.strip()]
def cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
cpu = load("cpu")
failed = False
for name, floor in (("gpu-tf32", 0.999), ("gpu-fp32", 0.9999)):
    gpu = load(name)
    assert len(gpu) == len(cpu), f"{name}: {len(gpu)} embeddings, the CPU made {len(cpu)}"
    c = sorted(cos(a, b) for a, b in zip(cpu, gpu))
    ok = c[0] >= floor
    failed |= not ok
    print(f"{name}: {len(c)} photos, cosine to the CPU min {c[0]:.6f} median {c[len(c)//2]:.6f} (needs >= {floor}): {'ok' if ok else 'FAILED'}")
sys.exit(1 if failed else 0)
PY

log "4. a device that does not exist stops the start"
if "$BIN" embed --device cuda:99 "${photos[0]}" > "$OUT/missing-device.txt" 2>&1; then
  die "--device cuda:99 ran: it must refuse"
fi
grep -q "cuda:99" "$OUT/missing-device.txt" || die "the error does not name the device: $(cat "$OUT/missing-device.txt")"
tail -n1 "$OUT/missing-device.txt"

log "5. model throughput per batch size on the GPU"
cargo bench --locked --bench inference 2>&1 | tee "$OUT/inference.txt" | grep -E "^model/|thrpt"

log "6. /v1/embeddings at 64 clients, and the decode concurrency the GPU needs"
cores=$(nproc)
for permits in 1 2 4 8 16 "$cores"; do
  [ "$permits" -le "$cores" ] || continue
  echo "--- decode permits $permits"
  LOOKALIKE_DECODE_PERMITS=$permits cargo bench --locked --bench load -- --clients 64 --seconds 15 --max-batch 32 2>&1 \
    | tee "$OUT/load-decode-$permits.txt" | grep -E "photos/s|p50|clients"
done
log "done: figures in $OUT"

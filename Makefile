# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,tensorboard,ray]'
	@# optional families (Box2D's LunarLander, highway-env): their tests are skipped if these fail to install
	$(BIN)/pip install --quiet -e '.[box2d,highway]' || echo "optional extras box2d/highway not installed: their tests will be skipped"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/metadqn demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/dqn_vs_sb3.py
	$(BIN)/python benchmarks/meta_update.py
	$(BIN)/python benchmarks/context_inner_loop.py
	$(BIN)/python benchmarks/choose_once.py
	$(BIN)/python benchmarks/meta_train_throughput.py --family gridnav
	$(BIN)/python benchmarks/meta_train_throughput.py --family driving
	$(BIN)/python benchmarks/scaling.py

clean:
	rm -rf $(VENV) runs .pytest_cache

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

# the suite on every core (at most 4 workers; CI has 2): each test runs single-threaded, so two
# workers take about half the time of one
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow -n auto --maxprocesses 4

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

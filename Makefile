# The front door: `make demo`, `make test`, `make bench`, `make lint`.
PY := .venv/bin/python

.PHONY: venv demo replay-demo test test-fast fuzz bench bench-model soak lint schemas clean

venv:
	@scripts/dev-env

demo: venv
	@scripts/demo

replay-demo: venv
	@scripts/replay-demo

# tests in TEST_PROCESSES processes side by side, each with its own local broker; an idle
# process takes tests from a busy one's queue (worksteal), so the long real-broker tests
# do not end up queued behind each other
TEST_PROCESSES ?= 6
test: venv
	@scripts/test-tools
	$(PY) -m pytest -q -n $(TEST_PROCESSES) --dist worksteal $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -q -m "not kafka and not slow" $(PYTEST_ARGS)

# not part of `make test` (which runs the same tests with 150 examples each): every reader of
# outside bytes fed FUZZ_EXAMPLES generated inputs per test, seeded afresh each run; no per-test
# timeout (the suite's 600 s stopped the JSONL test, its lists of events the slowest to generate)
FUZZ_EXAMPLES ?= 125000
fuzz: venv
	LIFECYCLE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) LIFECYCLE_FUZZ_RANDOM=1 $(PY) -m pytest -q -p no:cacheprovider \
		--timeout=0 --hypothesis-show-statistics tests/fuzz $(PYTEST_ARGS)

bench: venv
	$(PY) bench/replay_bench.py
	$(PY) bench/heavy_customer_bench.py
	$(PY) bench/engagement_bench.py

# the published CDNOW fits reproduced, and the time to fit 100k customers
bench-model: venv
	$(PY) bench/model_bench.py

# not part of `make test`: ~5 min of SIGKILLs, a broker restart, a worker joining and leaving
soak: venv
	$(PY) bench/soak.py $(SOAK_ARGS)

lint: venv
	$(PY) -m ruff check stream tests bench
	$(PY) -m mypy

schemas: venv
	.venv/bin/lifecycle schemas

clean:
	rm -rf var .pytest_cache .hypothesis

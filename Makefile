# Fulmen — everything a fresh machine needs goes through these targets.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen

.PHONY: deps setup browser demo dashboard test test-unit test-integration lint typecheck kafka-jars kube-bins kafka-up kafka-down bench-producer bench-store bench-streams bench-trainer bench-learn bench-gateway bench-capacity chaos clean clean-caches

deps:  ## Install uv (if missing) and the locked dependencies
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

setup: deps  ## …and Kafka's jars and the Kubernetes test binaries (cached in ~/.cache/fulmen)
	$(RUN) fulmen kafka jars
	$(RUN) fulmen kube bins

# The dashboard's browser tests drive Debian's Chromium through its ChromeDriver.
browser:  ## Debian's chromium and chromium-driver (once; apt-get needs root)
	@test -x /usr/bin/chromium && test -x /usr/bin/chromedriver || { \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }

demo: deps  ## The main job on the embedded default (no broker, no server)
	$(RUN) fulmen demo

dashboard: deps  ## The dashboard on http://127.0.0.1:8600 (store settings from FULMEN_STORE__*)
	$(RUN) fulmen dashboard --port 8600

test: setup browser lint typecheck  ## Every test, integration tests against a real Kafka broker included
	$(RUN) pytest -q

test-unit: deps
	$(RUN) pytest -q tests/unit

test-integration: setup browser
	$(RUN) pytest -q tests/integration

lint:
	$(RUN) ruff check .
	$(RUN) ruff format --check .

# The import names (fulmen.schemas, fulmen.producers, …) map onto top-level folders; mypy
# resolves modules from paths, so it checks a symlinked tree shaped like the installed package.
typecheck:
	@rm -rf build/typecheck && mkdir -p build/typecheck/fulmen
	@for f in fulmen/*; do ln -s ../../../$$f build/typecheck/fulmen/; done
	@for p in schemas producers streams store trainers; do ln -s ../../../$$p build/typecheck/fulmen/$$p; done
	@ln -s ../../examples build/typecheck/examples
	cd build/typecheck && $(RUN) --project ../.. mypy --config-file ../../pyproject.toml -p fulmen -p examples

kafka-jars:
	$(RUN) fulmen kafka jars

kube-bins: deps  ## etcd, kube-apiserver, -controller-manager, -scheduler, kwok from the Go module proxy (once)
	$(RUN) fulmen kube bins

kafka-up: setup  ## A broker on 127.0.0.1:9092 that outlives this command
	$(RUN) fulmen kafka up

kafka-down: deps
	$(RUN) fulmen kafka down

bench-producer: setup  ## bench/results/producer.json
	$(RUN) python -m bench.producer_bench

bench-store: deps  ## bench/results/store.json
	$(RUN) python -m bench.store_bench

bench-streams: setup  ## bench/results/streams.json (Kafka, a worker, the store; AGL peers)
	$(RUN) python -m bench.streams_bench

bench-trainer: deps  ## bench/results/trainer.json (RL step vs TRL GRPO; the GPU figures: python -m bench.trainer_bench --device cuda)
	$(RUN) python -m bench.trainer_bench

bench-learn: deps  ## bench/results/learn.json (held-out reward before/after RL, SFT, DPO, KTO; SmolLM2 on CPU; ALGOS=dpo,kto for some; TASK=lookup ARMS=rl,rl-steps SEEDS=0,1,2 for the multi-turn credit comparison)
	$(RUN) python -m bench.learn_bench $(if $(TASK),--task $(TASK)) $(if $(ALGOS),--algos $(ALGOS)) $(if $(ARMS),--arms $(ARMS)) $(if $(SEEDS),--seeds $(SEEDS))

bench-gateway: setup  ## bench/results/gateway.json (latency the gateway adds per call, calls/s)
	$(RUN) python -m bench.gateway_bench

bench-capacity: setup  ## bench/results/capacity.json (CPU per event of each stage; the capacity model)
	$(RUN) python -m bench.capacity_bench

chaos: setup  ## The fault suite at operator size: 5,000 rollouts, a 60 s broker and a 45 s store outage
	FULMEN_CHAOS=long $(RUN) pytest -q -p no:cacheprovider tests/integration/test_faults.py

clean:
	rm -rf build .fulmen .pytest_cache .mypy_cache .ruff_cache

# Fulmen's own cache only: Go's, uv's and Maven's caches are shared and stay (see README.md).
clean-caches:  ## Kafka's jars, the Kubernetes binaries, converted models (~/.cache/fulmen or $FULMEN_CACHE_DIR)
	rm -rf "$${FULMEN_CACHE_DIR:-$$HOME/.cache/fulmen}"

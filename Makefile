# Herald: `make run` starts a local cluster with its services; `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
JAR := tools/mongo-dev-server/target/herald-mongo-dev-server.jar
CHECKED := shared scheduler executor recovery

.PHONY: deps services services-down run test lint unit integration cluster bench store-probe chaos clean

deps: $(VENV)/.synced $(JAR) /usr/bin/redis-server

$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || [ -x $(UV) ] || python3 -m pip install --quiet --user uv
	$(UV) sync --frozen --quiet
	@touch $@

/usr/bin/redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server from Debian"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null); }

$(JAR): $(shell find tools/mongo-dev-server/src tools/mongo-dev-server/pom.xml 2>/dev/null)
	bash tools/mongo-dev-server.sh --build-only

services: deps
	$(PY) -m tools.devservers up

services-down:
	@$(PY) -m tools.devservers down

run: deps services
	$(PY) -m tools.demo

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict $(CHECKED)

unit: deps
	$(VENV)/bin/pytest -q tests/unit

integration: deps
	$(VENV)/bin/pytest -q tests/integration

cluster: deps
	$(VENV)/bin/pytest -q tests/cluster

test: deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit tests/integration tests/cluster

store-probe: deps
	$(PY) bench/store_probe

bench: deps
	$(PY) bench/throughput

chaos: deps
	$(PY) bench/chaos

clean: services-down
	rm -rf $(VENV) tools/mongo-dev-server/target .herald

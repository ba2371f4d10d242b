# Herald: `make run` starts a local cluster with its services; `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
JAR := tools/mongo-dev-server/target/herald-mongo-dev-server.jar
CHECKED := shared scheduler executor recovery

.PHONY: deps services services-down run test lint unit integration cluster console console-screenshots cluster-redis-cluster bench store-probe chaos bench-python bench-peers bench-scale bench-profile clean

deps: $(VENV)/.synced $(JAR) /usr/bin/redis-server /usr/bin/chromium

$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || [ -x $(UV) ] || python3 -m pip install --quiet --user uv
	$(UV) sync --frozen --quiet
	@touch $@

/usr/bin/redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server from Debian"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null); }

# The console's browser tests drive Debian's Chromium through Playwright; no browser is downloaded.
/usr/bin/chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium from Debian"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); }

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

integration: deps s3-server
	$(VENV)/bin/pytest -q tests/integration

cluster: deps
	$(VENV)/bin/pytest -q tests/cluster

console: deps
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/console

# Screenshots of the console's main pages into docs/console/, for docs/console.md.
console-screenshots: deps
	$(PY) -m tools.console_screenshots

# The cluster tests with Herald's Redis a three-master Redis Cluster on loopback (the fixture
# starts it on free ports, data in a temp dir, and stops it by PID): the hash-tag claim, end to end.
cluster-redis-cluster: deps
	TEST_REDIS_CLUSTER=1 $(VENV)/bin/pytest -q -p no:cacheprovider tests/cluster

# The whole cluster suite on a Redis Cluster takes ~5 min, as long again as on one Redis: too
# much for CI's ~20 min. `make test` runs these there (~1 min): exactly-once and leader failover.
ON_REDIS_CLUSTER_IN_CI := tests/cluster/test_exactly_once.py tests/cluster/test_failover.py

test: deps lint deploy-check s3-server
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit tests/integration tests/cluster tests/console \
		tools/mongo-dev-server/tests
	TEST_REDIS_CLUSTER=1 $(VENV)/bin/pytest -q -p no:cacheprovider $(ON_REDIS_CLUSTER_IN_CI)

# Validators for deploy/, pinned, cached in .herald/tools (see tools/deploy_check/__main__.py).
.PHONY: deploy-check deploy-tools
DEPLOY_TOOLS := .herald/tools
GO := $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
KUBECONFORM_VERSION := v0.8.0
KUSTOMIZE_VERSION := v5.8.1
PROMETHEUS_DEB_VERSION := 2.42.0+ds-5+deb12u1

deploy-check: deps deploy-tools
	$(PY) -m tools.deploy_check
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/deploy

deploy-tools: $(DEPLOY_TOOLS)/.go-$(KUBECONFORM_VERSION)-$(KUSTOMIZE_VERSION) \
  $(DEPLOY_TOOLS)/.promtool-$(PROMETHEUS_DEB_VERSION) $(DEPLOY_TOOLS)/venv/.synced

$(DEPLOY_TOOLS)/.go-$(KUBECONFORM_VERSION)-$(KUSTOMIZE_VERSION):
	mkdir -p $(DEPLOY_TOOLS)/bin
	GOBIN=$(abspath $(DEPLOY_TOOLS)/bin) $(GO) install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)
	GOBIN=$(abspath $(DEPLOY_TOOLS)/bin) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	@touch $@

# promtool from Debian's prometheus package, unpacked: no service is installed or started.
$(DEPLOY_TOOLS)/.promtool-$(PROMETHEUS_DEB_VERSION):
	mkdir -p $(DEPLOY_TOOLS)/bin $(DEPLOY_TOOLS)/deb
	cd $(DEPLOY_TOOLS)/deb && { apt-get download -qq prometheus=$(PROMETHEUS_DEB_VERSION) 2>/dev/null \
	  || { apt-get update -qq && apt-get download -qq prometheus=$(PROMETHEUS_DEB_VERSION); }; }
	dpkg -x $(DEPLOY_TOOLS)/deb/prometheus_*.deb $(DEPLOY_TOOLS)/deb/root
	cp $(DEPLOY_TOOLS)/deb/root/usr/bin/promtool $(DEPLOY_TOOLS)/bin/promtool
	rm -rf $(DEPLOY_TOOLS)/deb
	@touch $@

# checkov, kubernetes-validate, check-jsonschema and hadolint pin their own dependencies, apart
# from the project's.
$(DEPLOY_TOOLS)/venv/.synced: tools/deploy_check/requirements.txt
	$(UV) venv --quiet --allow-existing --python 3.11 $(DEPLOY_TOOLS)/venv
	VIRTUAL_ENV=$(abspath $(DEPLOY_TOOLS)/venv) $(UV) pip sync --quiet tools/deploy_check/requirements.txt
	@touch $@

store-probe: deps
	$(PY) bench/store_probe

bench: deps
	$(PY) bench/throughput

chaos: deps
	$(PY) bench/chaos

# The benchmarks' own tools, none of them Herald's dependencies: APScheduler 4 (the `bench`
# dependency group), BullMQ and Agenda (npm, pinned by bench/peers/package-lock.json).
bench-python: deps
	$(UV) sync --frozen --inexact --group bench --quiet

bench/peers/node_modules/.package-lock.json: bench/peers/package.json bench/peers/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing nodejs and npm from Debian"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null); }
	cd bench/peers && npm ci --no-audit --no-fund --loglevel=error

# Herald, BullMQ, Agenda and APScheduler side by side (at most ~20 min); appends to bench/results.md.
bench-peers: bench-python bench/peers/node_modules/.package-lock.json
	$(PY) bench/peers/run.py $(ARGS)

# 1,000,000 posts: window check, RSS as the store grows, list query p99; appends to bench/results.md.
bench-scale: deps
	$(PY) bench/scale/run.py $(ARGS)

# py-spy of an executor under a burst: bench/profiles/$(LABEL)-*; e.g. `make bench-profile LABEL=after`.
bench-profile: deps
	$(PY) bench/profile/run.py --label $(or $(LABEL),profile) $(ARGS)

# The media tests run against GridFS and a real S3-compatible server: SeaweedFS, built from its
# Go module (a plain `go install` is refused: its go.mod has replace directives) and kept outside
# the clone, so later clones and CI runs on this machine reuse the binary.
.PHONY: s3-server media
WEED_VERSION := v0.0.0-20261109003541-7506e5f91cd6
WEED_DIR := $(HOME)/.cache/herald/seaweedfs-$(WEED_VERSION)
export HERALD_WEED := $(WEED_DIR)/weed

s3-server: $(HERALD_WEED)

$(HERALD_WEED):
	@command -v $(GO) >/dev/null 2>&1 || { echo "Go is needed to build SeaweedFS"; exit 1; }
	rm -rf $(WEED_DIR)/src && mkdir -p $(WEED_DIR)
	src=$$($(GO) mod download -json github.com/seaweedfs/seaweedfs@$(WEED_VERSION) \
	  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && cp -r "$$src" $(WEED_DIR)/src
	chmod -R u+w $(WEED_DIR)/src
	cd $(WEED_DIR)/src && GOFLAGS=-buildvcs=false $(GO) build -o $(WEED_DIR)/weed.tmp ./weed
	rm -rf $(WEED_DIR)/src && mv $(WEED_DIR)/weed.tmp $@

media: deps s3-server
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/integration/test_media_api.py \
	  tests/integration/test_media_store.py

clean: services-down
	rm -rf $(VENV) tools/mongo-dev-server/target .herald

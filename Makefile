# Keyturn's two everyday commands are `make run` and `make test`; see README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
AUDIT := tests/http_audit
AUDIT_STAMP := $(AUDIT)/node_modules/.installed-stamp
ADMIN_NPM := admin/node_modules/.installed-stamp
GRAPHIQL := admin/vendor/graphiql/.built-stamp

.PHONY: install run test lint format migrations bench clean browser

install: $(STAMP) $(AUDIT_STAMP) $(GRAPHIQL)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The GraphQL-over-HTTP audit suite (npm's graphql-http) that tests/security runs under node.
$(AUDIT_STAMP): $(AUDIT)/package.json $(AUDIT)/package-lock.json
	cd $(AUDIT) && npm ci --no-audit --no-fund --loglevel=error
	touch $(AUDIT_STAMP)

# GraphiQL, served by Keyturn itself (no CDN): npm packages, bundled into admin/vendor/graphiql
# (both git-ignored). Third-party install scripts are not run; esbuild works without them.
$(ADMIN_NPM): admin/package.json admin/package-lock.json
	cd admin && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(ADMIN_NPM)

$(GRAPHIQL): $(ADMIN_NPM) admin/bundle/build.js admin/bundle/graphiql.js
	cd admin && npm run --silent build
	touch $(GRAPHIQL)

run: install
	$(BIN)/keyturn migrate
	$(BIN)/keyturn serve --host 127.0.0.1 --port 8000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install lint browser
	$(BIN)/python -m pytest

# The browser tests drive Debian's Chromium. They are required when CI=true, so install it
# when it is missing (as root); elsewhere, without it, they are skipped.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$CI" = "true" ] || [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else \
	    echo "note: chromium is not installed: the browser tests will be skipped"; \
	  fi; \
	fi

# Generate the next migration for both dialects from the models: make migrations NAME=add_x
migrations: install
	$(BIN)/python -m api.migrations make $(NAME) sqlite
	$(BIN)/python -m api.migrations make $(NAME) postgres

# Benchmarks (wrk on loopback; SQLite and the PostgreSQL on 127.0.0.1:5432): prints the figures
# and writes them into docs/performance.md. About 20 minutes; see docs/performance.md.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
bench: install
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.growth

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

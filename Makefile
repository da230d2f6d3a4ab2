# Keyturn's two everyday commands are `make run` and `make test`; see README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint format migrations clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

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

test: install lint
	$(BIN)/python -m pytest

# Generate the next migration for both dialects from the models: make migrations NAME=add_x
migrations: install
	$(BIN)/python -m api.migrations make $(NAME) sqlite
	$(BIN)/python -m api.migrations make $(NAME) postgres

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

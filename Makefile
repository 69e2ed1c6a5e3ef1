# Two commands for a fresh machine (see README.md):
#   make demo   install everything, then run chain + contracts + indexer + API with the seed directory loaded
#   make test   install everything, then lint, type-check and run the whole test suite
# Needs python3 (3.11+) with venv, node 20 and npm; everything else comes from PyPI and npm.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install demo up test lint unit integration clean

$(BIN)/dirchain: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund
	touch $@

artifacts/contracts/Directory.sol/Directory.json: node_modules/.installed $(wildcard contracts/*.sol contracts/*/*.sol) hardhat.config.js
	npx --no-install hardhat compile --quiet

install: $(BIN)/dirchain node_modules/.installed artifacts/contracts/Directory.sol/Directory.json

demo: install
	$(BIN)/dirchain up --demo

up: install
	$(BIN)/dirchain up

lint: install
	$(BIN)/ruff check chain registry api dirchain tests scripts
	$(BIN)/mypy
	npx --no-install solhint --max-warnings 0 'contracts/**/*.sol'

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) node_modules artifacts .hardhat-cache .dirchain

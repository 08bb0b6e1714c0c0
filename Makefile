# Rechenbörse: `make run` serves the exchange with demo data, `make test` runs
# the whole suite. Both create the virtualenv and install what is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
export PORT ?= 8000

.PHONY: install run test lint bench messages clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		echo "installing python3-venv with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
		$(PYTHON) -m venv $(VENV); }

$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) messages

messages: | $(BIN)/python
	@command -v msgfmt >/dev/null || { echo "installing gettext with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext >/dev/null; }
	@$(BIN)/python manage.py compilemessages -v0 --ignore=.venv --ignore=var

run: install
	@scripts/run.sh

test: install
	@scripts/test.sh $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

bench: install
	@scripts/bench.sh

clean:
	rm -rf var test-artifacts

# salt-kiosk: the two commands of the README.
PYTHON ?= python3
DEMO_VENV := .venv-demo

.PHONY: demo test lint clean

## make demo: a small fleet on loopback with the embedded store, scripted scenario, report
demo:
	@test -x $(DEMO_VENV)/bin/python || $(PYTHON) -m venv $(DEMO_VENV)
	@rm -rf build
	$(DEMO_VENV)/bin/python -m pip install -q --disable-pip-version-check .
	$(DEMO_VENV)/bin/python demo/run.py

## make test: install what the tests need (MariaDB, nmap, Python packages) and run the whole suite
test:
	bash scripts/test.sh

## make lint: ruff check and ruff format --check (configuration in pyproject.toml)
lint:
	bash scripts/lint.sh

clean:
	rm -rf build dist *.egg-info .venv .venv-demo .pytest_cache

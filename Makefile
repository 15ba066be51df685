# Two entry points do all set-up on a fresh clone: `make demo` and `make test`.
# Each creates or refreshes the virtual environment in .venv when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint bench clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	# llama-cpp-python compiles from source (~7 min on 2 cores); pip caches the wheel.
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/shopaug demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts

# The HTML report and web page are tested in Debian's Chromium, driven by Playwright.
# Installed here when missing and possible (root with apt); without it those tests skip,
# except under CI=true, where they fail.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; } \
	  || echo "chromium not installed: browser tests will skip" >&2

# pytest exits 5 when it collects nothing: that must fail, not pass quietly.
test: lint browser
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

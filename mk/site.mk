# The course as a static site (_site/), built offline from the notebooks' stored outputs.
#   make site-install   the site's own pinned tools (requirements-site.txt) in .venv-site
#   make site           build _site/ (open _site/index.html in a browser; nothing is executed)
#   make site-lock      re-resolve requirements-site.txt (needs the package registry)
PYTHON    ?= python3
SITE_VENV ?= .venv-site
SITE_BIN  := $(SITE_VENV)/bin
SITE_OUT  ?= _site

.PHONY: site site-install site-lock

site-install: $(SITE_VENV)/.installed

$(SITE_VENV)/.installed: requirements-site.txt
	$(PYTHON) -m venv $(SITE_VENV)
	$(SITE_BIN)/python -m pip install --upgrade pip
	$(SITE_BIN)/python -m pip install -r requirements-site.txt
	$(SITE_BIN)/python -m pip check
	touch $@

site: site-install
	$(SITE_BIN)/python scripts/build_site.py $(SITE_OUT)
	@echo "open $(SITE_OUT)/index.html in a browser"

site-lock:
	rm -rf /tmp/course-site-lock && $(PYTHON) -m venv /tmp/course-site-lock
	/tmp/course-site-lock/bin/pip install nbconvert markdown-it-py jupyter-server-mathjax
	{ sed -n '/^#/p' requirements-site.txt; /tmp/course-site-lock/bin/pip freeze; } > requirements-site.txt.new
	mv requirements-site.txt.new requirements-site.txt

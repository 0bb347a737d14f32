# kalad's front door: make run, make test, make bench, make install.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

PREFIX  ?= /usr/local
DESTDIR ?=
# PIP=true installs all but the Python package; PIP_FLAGS='--no-deps' keeps pip offline
PIP       ?= $(PYTHON) -m pip
PIP_FLAGS ?=

.PHONY: venv run test bench install clean

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: venv
	mkdir -p var
	$(BIN)/kalad serve --interface $(HOST) --port $(PORT) --lmdb-path var/lmdb

test: venv
	$(BIN)/python -m pytest tests

bench: venv
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

install:
	$(PIP) install $(PIP_FLAGS) --prefix=$(PREFIX) $(if $(DESTDIR),--root=$(DESTDIR)) .
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|/usr/local/bin/kalad|$(PREFIX)/bin/kalad|g' systemd/kalad.service \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/kalad.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/kalad.service
	install -D -m 0644 man/kalad.8 $(DESTDIR)$(PREFIX)/share/man/man8/kalad.8
	install -D -m 0644 man/kalad.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/kalad.conf.5
	install -D -m 0644 man/kalactl.1 $(DESTDIR)$(PREFIX)/share/man/man1/kalactl.1
	test -e $(DESTDIR)/etc/kalad/kalad.conf || install -D -m 0644 etc/kalad.conf $(DESTDIR)/etc/kalad/kalad.conf
	install -d $(DESTDIR)/etc/kalad/kalad.conf.d

clean:
	rm -rf $(VENV) build dist *.egg-info bench/results .pytest_cache

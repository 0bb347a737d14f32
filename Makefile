# kalad's front door: make run, make test, make bench, make install.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

PREFIX  ?= /usr/local
DESTDIR ?=

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
	$(PYTHON) -m pip install --prefix=$(PREFIX) $(if $(DESTDIR),--root=$(DESTDIR)) .
	install -D -m 0644 systemd/kalad.service $(DESTDIR)$(PREFIX)/lib/systemd/system/kalad.service
	install -D -m 0644 man/kalad.8 $(DESTDIR)$(PREFIX)/share/man/man8/kalad.8
	install -D -m 0644 man/kalad.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/kalad.conf.5
	test -e $(DESTDIR)/etc/kalad/kalad.conf || install -D -m 0644 etc/kalad.conf $(DESTDIR)/etc/kalad/kalad.conf
	install -d $(DESTDIR)/etc/kalad/kalad.conf.d

clean:
	rm -rf $(VENV) build dist *.egg-info bench/results .pytest_cache

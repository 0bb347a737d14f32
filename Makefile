# kalad's front door: make run, make test, make bench, make install.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

PREFIX  ?= /usr/local
DESTDIR ?=
# Where make install puts things; DESTDIR is prepended to each.
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MANDIR      ?= $(PREFIX)/share/man
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

# kalad reads /etc/kalad/kalad.conf unless told otherwise: another SYSCONFDIR puts
# --config in the installed unit. The sample config never replaces an existing one.
# Installing into the live system (no DESTDIR) also creates the kalad user, as a package would.
KALAD_CONFIG_FLAG := $(if $(filter /etc /etc/,$(SYSCONFDIR)),, --config $(SYSCONFDIR)/kalad/kalad.conf)

install:
	$(PIP) install $(PIP_FLAGS) --prefix=$(PREFIX) $(if $(DESTDIR),--root=$(DESTDIR)) .
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/local/bin/kalad check-config|$(PREFIX)/bin/kalad check-config$(KALAD_CONFIG_FLAG)|' \
	    -e 's|/usr/local/bin/kalad serve|$(PREFIX)/bin/kalad serve$(KALAD_CONFIG_FLAG)|' \
	    -e 's|/usr/local/bin/kalad|$(PREFIX)/bin/kalad|g' \
		systemd/kalad.service > $(DESTDIR)$(UNITDIR)/kalad.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/kalad.service
	install -D -m 0644 systemd/kalad.sysusers $(DESTDIR)$(SYSUSERSDIR)/kalad.conf
	install -D -m 0644 man/kalad.8 $(DESTDIR)$(MANDIR)/man8/kalad.8
	install -D -m 0644 man/kalad.conf.5 $(DESTDIR)$(MANDIR)/man5/kalad.conf.5
	install -D -m 0644 man/kalactl.1 $(DESTDIR)$(MANDIR)/man1/kalactl.1
	test -e $(DESTDIR)$(SYSCONFDIR)/kalad/kalad.conf || \
		install -D -m 0644 etc/kalad.conf $(DESTDIR)$(SYSCONFDIR)/kalad/kalad.conf
	install -d $(DESTDIR)$(SYSCONFDIR)/kalad/kalad.conf.d
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		echo "systemd-sysusers $(SYSUSERSDIR)/kalad.conf"; \
		systemd-sysusers $(SYSUSERSDIR)/kalad.conf; \
	elif [ -z "$(DESTDIR)" ]; then \
		echo "make install: no systemd-sysusers; create the system user kalad (home /var/lib/kalad) yourself"; \
	fi

clean:
	rm -rf $(VENV) build dist *.egg-info bench/results .pytest_cache

# pgharbor: `make test` and `make lab` do everything on a fresh Debian 12
# machine (as root): system packages, the virtualenv, the lab image.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export PGHARBOR_IMAGE ?= localhost/pgharbor-base:bookworm
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

# Debian packages: the container stack, PostgreSQL 15 for the test servers,
# ssh for the tests that reach a container over SSH (libwrap0: what the
# tests' unpacked sshd links against), the tools the backup code calls,
# pgBackRest (the time-travel layer) and stunnel (HTTPS in front of the
# tests' S3 server; it starts no service of its own without a configuration)
# and Chromium (the daily report read in a real browser); Patroni for the
# failover tests on loopback (its package starts nothing without a
# configuration; python3-idna is what its etcd3 client needs and only
# recommends).
SYSTEM_PACKAGES := podman runc debootstrap uidmap slirp4netns netavark aardvark-dns \
	iptables postgresql-15 postgresql-client-15 python3-venv gpg zstd rsync nftables \
	openssh-client libwrap0 pgbackrest stunnel4 chromium patroni python3-idna
STAMP := .cache
MOTO_WHEELS := lab/.cache/moto-wheels.tar
SSHD := $(STAMP)/openssh-server/usr/sbin/sshd
PROMTOOL := $(STAMP)/prometheus/usr/bin/promtool
MTAIL := $(STAMP)/mtail/usr/bin/mtail
ETCD := $(STAMP)/etcd-server/usr/bin/etcd

.PHONY: help deps system-deps venv checks ci-checks lint yamllint ansible-lint ruff role-docs role-docs-check unit rules integration molecule scenarios-listed test \
	lab lab-image lab-test lab-test-slow lab-down lab-clean bench-migrate bench-backup bench-ship bench-timetravel clean $(PLAYBOOKS)

help: ## list the targets
	@grep -E '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-14s %s\n", $$1, $$2 }'
	@printf '  %-14s %s\n' '<playbook>' 'ENV=<env> ARGS=<options>: playbooks/<playbook>.yml on inventories/<env>' \
		'' '(asks before production; CONFIRM=yes does not): $(PLAYBOOKS)'

deps: system-deps venv ## install everything (Debian packages, virtualenv)

system-deps: $(STAMP)/system-deps ## install the Debian packages (needs root)
$(STAMP)/system-deps: Makefile
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "missing Debian packages: $$missing"; \
			echo "run 'sudo make system-deps' (or: sudo apt-get install $$missing), then try again"; exit 1; \
		fi; \
		echo "installing Debian packages: $$missing"; \
		mkdir -p $(STAMP); \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; } \
			>$(STAMP)/apt.log 2>&1 || { tail -n 30 $(STAMP)/apt.log; echo "apt-get failed (log: $(STAMP)/apt.log)"; exit 1; }; \
	fi
	@mkdir -p $(STAMP) && touch $@

venv: $(VENV)/.installed ## create .venv with the pinned toolchain
# python3-venv (a Debian package) must be there before the virtualenv.
$(VENV)/.installed: requirements.txt requirements.lock | $(STAMP)/system-deps
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -c requirements.lock
	touch $@

lint: yamllint ansible-lint ruff role-docs-check ## yamllint, ansible-lint (production profile), ruff, role READMEs in step with their specs
yamllint: venv
	yamllint --strict .
ansible-lint: venv
	ansible-lint --profile production
ruff: venv
	ruff check .
role-docs: venv ## regenerate each role README's variable section from meta/argument_specs.yml
	bin/role-docs
role-docs-check: venv
	bin/role-docs --check

unit: venv ## unit tests (pure logic)
	pytest tests/unit

integration: deps $(SSHD) $(PROMTOOL) $(MTAIL) $(ETCD) ## integration tests (real PostgreSQL, sshd, S3, Prometheus, etcd and Patroni, mtail, on loopback)
	@start=$$(date +%s); $(CI_NICE) pytest --durations=15 tests/integration; echo "== integration passed in $$(( $$(date +%s) - start )) s"

# The tier-2 tests start their own sshd on loopback. Unpacked from Debian's
# package, not installed: installing openssh-server would start a system SSH
# service on the machine.
$(SSHD): | $(STAMP)/system-deps
	$(call unpack,openssh-server)
	@# sshd started as root drops privileges to this user (the package's postinst would create it)
	id sshd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /run/sshd --shell /usr/sbin/nologin sshd

rules: $(PROMTOOL) ## the alert rules: promtool check rules, and their unit tests (tests/rules)
	$(PROMTOOL) check rules roles/monitoring_server/files/pgharbor.rules.yml
	$(PROMTOOL) test rules tests/rules/*.yml

# promtool and prometheus (the daily report's tests start one on loopback),
# unpacked from Debian's prometheus package (installing it would start a
# Prometheus on the machine).
$(PROMTOOL): | $(STAMP)/system-deps
	$(call unpack,prometheus)

# mtail, for its program's test against a real PostgreSQL's log (installing
# it would start an mtail on the machine).
$(MTAIL): | $(STAMP)/system-deps
	$(call unpack,mtail)

# etcd, for the tests of etcd's authentication against a real cluster of three
# members on loopback (installing it would start an etcd on the machine).
$(ETCD): | $(STAMP)/system-deps
	$(call unpack,etcd-server)

# $(call unpack,<package>): Debian's package unpacked under $(STAMP)/<package>, not installed.
define unpack
	rm -rf $(STAMP)/$(1) && mkdir -p $(STAMP)/$(1)
	cd $(STAMP) && { apt-get download -qq $(1) 2>/dev/null || \
		{ apt-get update -qq && apt-get download -qq $(1); }; }
	dpkg-deb -x $(STAMP)/$(1)_*.deb $(STAMP)/$(1) && rm -f $(STAMP)/$(1)_*.deb
endef

# Every scenario in molecule/ must be listed here (scenarios-listed checks),
# the longest first.
SCENARIOS := backup_server postgresql_server ha firewall pg_backup pki base
scenarios-listed:
	@missing="$(filter-out $(SCENARIOS),$(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))"; \
	if [ -n "$$missing" ]; then echo "add these scenarios to SCENARIOS in the Makefile: $$missing"; exit 1; fi

# Two scenarios at a time, the longest first (most of a scenario's time is
# spent waiting on containers, not on the CPU); each scenario's output is
# printed whole when it ends, and a failure stops the others from starting.
molecule: deps lab-image $(MOTO_WHEELS) scenarios-listed ## every Molecule scenario
	$(MAKE) --no-print-directory -j2 --output-sync=target $(addprefix molecule-,$(SCENARIOS))

molecule-%: deps lab-image $(MOTO_WHEELS) ## one Molecule scenario, for example make molecule-pg_backup
	@echo "== molecule test -s $* ($$(date -u +%H:%M:%S))"
	@start=$$(date +%s); PGHARBOR_MOLECULE_CPU_SHARES=$(CI_CPU_SHARES) $(CI_NICE) molecule test -s $*; \
		echo "== molecule $* passed in $$(( $$(date +%s) - start )) s"

# CI: the parts side by side, three at a time, the longest first: the lab's
# story, the quick checks (lint, unit tests, the rules' tests: three
# minutes), the scenarios and the integration tests. They spend most of their
# time waiting on containers and servers, not on the two CPUs. No part shares
# a container, network, port or certificate directory with another; each
# part's output is printed whole when it ends.
# Everything the parts need is built before they start (CI_BUILT): make
# gives a free slot to the first part whose prerequisites are ready, so a
# part still waiting on the lab's image would start last, not first.
#
# The lab's story is the longest part, so the others run at a lower
# priority: they take the CPU the lab's story leaves while it waits on its
# alerts and timers. Their processes on this machine run niced (CI_NICE).
# A container's processes are in a CPU cgroup of their own (cgroup v1 here,
# podman's cgroupfs manager), where nice does not count against other
# containers: the scenarios' containers get fewer CPU shares than the lab's
# (CI_CPU_SHARES, against the default 1024).
# The share of the two CPUs the parts kept busy is printed at the end (96 %
# on 2026-12-07, with the shares): the figure that says whether more parts side by side could
# help.
CI_PARTS := lab-test ci-checks molecule-backup_server integration \
	$(addprefix molecule-,$(filter-out backup_server,$(SCENARIOS)))
CI_BUILT := deps lab-image $(MOTO_WHEELS) $(SSHD) $(PROMTOOL) $(MTAIL) $(ETCD) scenarios-listed
CI_NICE ?=
CI_CPU_SHARES ?=
cpu_ticks = awk '/^cpu / { print $$2 + $$3 + $$4 + $$7 + $$8 + $$9, $$5 + $$6 }' /proc/stat
checks: lint unit rules scenarios-listed ## the quick checks: lint, unit tests, the alert rules' tests
ci-checks: venv $(PROMTOOL)
	@start=$$(date +%s); $(CI_NICE) $(MAKE) --no-print-directory checks; echo "== checks passed in $$(( $$(date +%s) - start )) s"
test: $(CI_BUILT) ## everything CI runs
	@read -r busy0 idle0 < <($(cpu_ticks)); start=$$(date +%s); \
	$(MAKE) --no-print-directory -j3 --output-sync=target CI_NICE="nice -n 10" CI_CPU_SHARES=256 $(CI_PARTS); \
	read -r busy1 idle1 < <($(cpu_ticks)); \
	echo "== the parallel parts took $$(( $$(date +%s) - start )) s and kept the CPUs $$(( 100 * (busy1 - busy0) / (busy1 - busy0 + idle1 - idle0) ))% busy"

# The playbooks, per environment: make migrate ENV=staging ARGS='--check --diff'
# is bin/play staging migrate --check --diff, which adds the environment's
# vault and asks before it runs against production (CONFIRM=yes skips that).
ENV ?= lab
PLAYBOOKS := site migrate rollback backup restore verify-backups retention status check-connection time-travel switchover
$(PLAYBOOKS): venv
	bin/play $(ENV) $(subst -,_,$@) $(ARGS)

lab-image: system-deps ## build (or reuse) the lab's base image
	lab/build-image.sh

$(MOTO_WHEELS): requirements.txt | $(VENV)/.installed
	@mkdir -p $(dir $@)/wheels
	$(PY) -m pip wheel -q --wheel-dir $(dir $@)/wheels "$$(grep '^moto\[server\]==' requirements.txt)"
	tar -C $(dir $@)/wheels -cf $@ .

lab: deps lab-image $(MOTO_WHEELS) ## the whole lab: up, provisioned, migrated, checked, with a summary (safe to repeat)
	ansible-playbook lab/playbooks/up.yml
	ansible-playbook lab/playbooks/lab.yml
	ansible-playbook lab/playbooks/summary.yml

# Its prerequisites are make lab's, built here so that a lab-test beside the
# scenarios (make test) does not build the image a second time at once.
lab-test: deps lab-image $(MOTO_WHEELS) ## the lab as a test: make lab, provisioned again (changed=0), the migration story (lab/tests), restart test
	@start=$$(date +%s); lab/test-lab.sh; echo "== lab-test passed in $$(( $$(date +%s) - start )) s"

# The lab tests whose faults wait out a long rule (DiskFullSoon 30 minutes,
# GaugesStale 35, RestoreDrillOverdue an hour; lab/tests/test_alerts_slow.py),
# on a lab make lab brought up; not part of make test.
lab-test-slow: venv ## the lab's slow tests (about 70 min), on a lab that is up
	pytest -p no:cacheprovider -m slow lab/tests

lab-down: venv ## remove the lab's containers and network
	ansible-playbook lab/playbooks/down.yml

lab-clean: lab-down ## lab-down, then remove the cached base image too
	podman rmi --ignore $(PGHARBOR_IMAGE)
	rm -rf lab/.cache

# Not part of `make test`: speed is measured, not asserted (benchmarks/README.md).
bench-backup: deps ## a pgharbor backup against the bare pg_dump, and the restore drill, 1 GB (about 15 min)
	$(PY) benchmarks/backup.py --scale 1 --rounds 3

bench-ship: deps $(SSHD) ## shipping to tiers 2 and 3 against plain rsync and boto3 upload_file, 1 GB (about 5 min)
	$(PY) benchmarks/ship.py --size-gb 1 --rounds 3

bench-timetravel: deps ## pgBackRest backup and restore against pg_basebackup, pgbench TPS with archiving on and off, 1 GB (about 20 min)
	$(PY) benchmarks/timetravel.py --scale 1 --rounds 5

bench-migrate: deps ## pg_migrate and pg_compare against pg_dump/pg_restore and pgcopydb, 1 GB (about 25 min)
	@dpkg-query -W -f='$${Status}\n' pgcopydb 2>/dev/null | grep -q '^install ok installed' || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgcopydb
	$(PY) benchmarks/migrate.py --scale 1 --rounds 3 --jobs 2

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) $(STAMP) lab/.cache .pytest_cache

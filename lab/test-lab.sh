#!/usr/bin/env bash
# The lab as a test: bring it up, provision, migrate and check it (make
# lab), run site.yml a second time and require changed=0 on every host,
# migrate again and require that the migrated application is left alone,
# check the link while the DB server restarts, then the migration story of
# lab/tests (rollback, check mode, a failed migration that rolls back by
# itself, a migration again), and remove the lab again if this run created
# it (a lab that was already up is left as it was, migrated).
set -euo pipefail
cd "$(dirname "$0")/.."

# One lab per machine: its containers, network and addresses have fixed
# names. A second run waits for the first instead of breaking it.
exec 9>"${TMPDIR:-/tmp}/pgharbor-lab.lock"
if ! flock -n 9; then
    echo "lab-test: another lab run holds the lab; waiting for it" >&2
    flock 9
fi

lab_containers() { podman ps -a -q --filter label=pgharbor.lab=true; }
# make lab-down, quietly when it works. A container a killed run left half
# removed (podman shows it "Removing") defeats the podman module: then its
# output is shown, the lab's containers are removed by their label with
# podman itself, and lab-down runs again for the network.
remove_lab() {
    local out
    out=$(make --no-print-directory lab-down 2>&1) && return 0
    printf '%s\n' "$out" >&2
    echo "lab-test: lab-down failed; removing the lab's containers by their label" >&2
    # shellcheck disable=SC2046  # one argument per container id
    lab/bin/podman-serial rm -f -v $(lab_containers) >&2
    make --no-print-directory lab-down >/dev/null
}

# CI proves the lab from nothing: a lab left on the machine (by a run that
# was cut off, perhaps with its containers' processes killed) is removed.
if [ "${CI:-}" = true ] && [ -n "$(lab_containers)" ]; then
    echo "lab-test: CI starts from a new lab; removing the one left on this machine"
    remove_lab
fi

log=$(mktemp)
created=no
if [ -z "$(lab_containers)" ]; then
    created=yes
fi
cleanup() {
    rm -f "$log"
    if [ "$created" = yes ]; then remove_lab; fi
}
trap cleanup EXIT

# Each step's time, printed as it ends: where the lab's story spends its
# minutes (it is the longest part of make test).
step_start=$(date +%s)
took() { echo "lab-test: $1 took $(( $(date +%s) - step_start )) s"; step_start=$(date +%s); }

make --no-print-directory lab
took "make lab"
# The recap lines of hosts that changed something, and Ansible's output with
# its long messages unfolded.
changed_hosts() { grep -E '^[a-z0-9-]+ +: .* changed=[1-9]' "$log"; }
unfolded() { tr -s ' \n' ' ' <"$log"; }

# pgharbor's own provisioning (site.yml), as an operator runs it a second time:
# the lab's scaffolding around it (lab.yml's other plays) is not pgharbor's.
bin/play lab site | tee "$log"
if changed_hosts; then
    echo "lab-test: the second site.yml run changed something (hosts above): a role is not idempotent" >&2
    exit 1
fi
echo "lab-test: the second site.yml run changed nothing"
took "the second site.yml run"

bin/play lab migrate | tee "$log"
if ! unfolded | grep -q 'nothing to do (run rollback.yml first to migrate again)' \
        || changed_hosts; then
    echo "lab-test: a second migrate.yml did not leave the migrated application alone" >&2
    exit 1
fi
bin/play lab check_connection -e check_connection_restart_test=true | tee "$log"
unfolded | grep -q 'restart: server restarted and back after' || {
    echo "lab-test: the link check did not see the DB server restart and come back" >&2
    exit 1
}
took "the second migration and the link check across a restart"
pytest -p no:cacheprovider -m 'not slow' lab/tests
took "the lab's tests"
echo "lab-test: passed (lab created by this run: $created)"

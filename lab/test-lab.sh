#!/usr/bin/env bash
# The lab as a test: bring it up and provision it (make lab), provision it a
# second time and require changed=0 on every host, then remove it again if
# this run created it (a lab that was already up is left as it was).
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
created=no
if [ -z "$(podman ps -a -q --filter label=pgharbor.lab=true)" ]; then
    created=yes
fi
cleanup() {
    rm -f "$log"
    if [ "$created" = yes ]; then make --no-print-directory lab-down >/dev/null; fi
}
trap cleanup EXIT

make --no-print-directory lab
ansible-playbook lab/playbooks/lab.yml | tee "$log"
if grep -E '^[a-z0-9-]+ +: .* changed=[1-9]' "$log"; then
    echo "lab-test: the second provisioning run changed something (hosts above): a role is not idempotent" >&2
    exit 1
fi
echo "lab-test: second provisioning run changed nothing (lab created by this run: $created)"

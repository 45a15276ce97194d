#!/usr/bin/env bash
# make-key.sh DIR NAME: an OpenPGP key pair for the lab's backups, written as
# DIR/NAME.pub.asc, DIR/NAME.fpr and, last, DIR/NAME.sec.asc (the file Ansible
# checks for), made in a throw-away gpg home.
set -euo pipefail
dir=$1 name=$2
home=$(mktemp -d)
trap 'gpgconf --homedir "$home" --kill gpg-agent 2>/dev/null || true; rm -rf "$home"' EXIT
gpg=(gpg --homedir "$home" --batch --quiet)
"${gpg[@]}" --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "pgharbor lab $name <$name@lab.pgharbor.test>" future-default default 2y
fpr=$("${gpg[@]}" --with-colons --list-keys | awk -F: '$1 == "fpr" { print $10; exit }')
umask 077
"${gpg[@]}" --armor --export "$fpr" >"$dir/$name.pub.asc"
printf '%s\n' "$fpr" >"$dir/$name.fpr"
"${gpg[@]}" --pinentry-mode loopback --passphrase '' --armor --export-secret-keys "$fpr" >"$dir/$name.sec.asc.tmp"
mv "$dir/$name.sec.asc.tmp" "$dir/$name.sec.asc"

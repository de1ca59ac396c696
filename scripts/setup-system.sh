#!/usr/bin/env bash
# System packages the test suite needs (OpenSSH server for the remote-benchmark tests).
# Installs only what is missing, and only when it can (root + apt-get).
set -euo pipefail
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
else
    echo "warning: missing ${need[*]}; SSH tests will be skipped (install them as root)" >&2
fi

#!/usr/bin/env bash
# Install the third-party validators that `strata-verify` runs over generated files.
#
# Idempotent; meant to run as root on a fresh Debian 12 (bookworm) machine:
#   - Debian packages: frr (vtysh), keepalived, ifupdown2 (ifup), netplan.io, cloud-init,
#     prometheus (promtool), iproute2, iputils-ping, python3-venv, hyperfine, chromium
#     (the web UI's browser test);
#     apt is skipped entirely when every needed command is already present.
#   - A Python venv at ${STRATA_TOOLS_VENV:-/opt/strata-tools} with ansible-core and PyYAML
#     (ansible-inventory / ansible for the Kolla checks) and the real API clients (proxmoxer,
#     python-libmaas, openstacksdk, the openstack CLI), Playwright, which drives Debian's
#     /usr/bin/chromium for the web UI test (never `playwright install`: its browser
#     download is not used), and schemathesis 4 (the API against its OpenAPI document);
#     pip is skipped when they are there.
#   - A second venv at ${STRATA_ANSIBLE_VENV:-/opt/strata-ansible} with the full `ansible`
#     package (its community.proxmox and openstack.cloud collections), proxmoxer, requests
#     and openstacksdk < 4.15 (what openstack.cloud 2.x supports), for the playbooks that
#     drive the twin (crates/strata-twin/tests/ansible_collections.rs); pip is skipped when
#     those versions are there.
#   - Real Keystone 30 and Placement 16 in ${STRATA_OPENSTACK_VENV:-/opt/strata-openstack}
#     (scripts/openstack-real.sh install), for the tests against the real services.
#   - Real Nova 34 with its functional-test harness in ${STRATA_NOVA_VENV:-/opt/strata-nova}
#     (scripts/nova-real.py serves it), the oracle of the twin's Nova
#     (crates/strata-twin/tests/nova_differential.rs); `install-test-deps.sh --nova` installs
#     only this one, without root when the directory is writable.
set -euo pipefail

VENV="${STRATA_TOOLS_VENV:-/opt/strata-tools}"
ANSIBLE_VENV="${STRATA_ANSIBLE_VENV:-/opt/strata-ansible}"
NOVA_VENV="${STRATA_NOVA_VENV:-/opt/strata-nova}"

# Real Nova from PyPI for the twin's Nova differential test. Nova's wheel ships its
# functional-test harness (nova.tests.functional) but not the test requirements that
# harness imports; Placement runs in process as the harness's fixture. SQLAlchemy 2.1
# deprecates what Nova 34 still calls, and the harness turns those warnings into errors.
# A stamp with the requirement list makes reruns no-ops (and a changed list reinstalls).
NOVA_PIP=('nova==34.*' 'SQLAlchemy<2.1' 'openstack-placement==16.*' oslotest testtools
    testscenarios testresources wsgi-intercept)
install_real_nova() {
    local stamp="$NOVA_VENV/.strata-nova-real" python=/usr/bin/python3
    if [[ -x "$NOVA_VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "${NOVA_PIP[*]}" ]]; then
        echo "install-test-deps: real Nova already in $NOVA_VENV; skipping pip"
        return
    fi
    [[ -x $python ]] || python="$(command -v python3)"
    if [[ ! -x "$NOVA_VENV/bin/python" ]]; then
        echo "install-test-deps: creating venv $NOVA_VENV"
        "$python" -m venv "$NOVA_VENV"
    fi
    echo "install-test-deps: installing ${NOVA_PIP[*]} into $NOVA_VENV (about a minute)"
    "$NOVA_VENV/bin/python" -m pip install --disable-pip-version-check --quiet "${NOVA_PIP[@]}"
    "$NOVA_VENV/bin/python" -c 'import nova.tests.functional.integrated_helpers' >/dev/null 2>&1 || {
        echo "install-test-deps: Nova's test harness does not import in $NOVA_VENV" >&2
        exit 1
    }
    printf '%s' "${NOVA_PIP[*]}" >"$stamp"
}
if [[ "${1:-}" == "--nova" ]]; then
    install_real_nova
    exit 0
fi

APT_PACKAGES=(
    frr
    keepalived
    ifupdown2
    netplan.io
    cloud-init
    prometheus
    iproute2
    iputils-ping
    python3-venv
    hyperfine
    chromium
)

# Commands whose presence means the apt step has already been done. Debian keeps some of
# them in sbin, which is not on every root PATH, so look there too.
NEEDED_COMMANDS=(vtysh keepalived ifup netplan cloud-init promtool hyperfine ip ping chromium)

# Print the path of an executable regular file named $1 on PATH or in the sbin
# directories; fail when there is none.
find_command() {
    local cmd="$1" found dir
    found="$(command -v "$cmd" 2>/dev/null || true)"
    if [[ -n "$found" && -f "$found" && -x "$found" ]]; then
        echo "$found"
        return 0
    fi
    for dir in /usr/local/sbin /usr/sbin /sbin; do
        if [[ -f "$dir/$cmd" && -x "$dir/$cmd" ]]; then
            echo "$dir/$cmd"
            return 0
        fi
    done
    return 1
}

have_command() {
    find_command "$1" >/dev/null
}

missing=()
for cmd in "${NEEDED_COMMANDS[@]}"; do
    if ! have_command "$cmd"; then
        missing+=("$cmd")
    fi
done
# The venv step below needs Debian's venv module for the system python.
if ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=("python3-venv")
fi

if ((${#missing[@]} > 0)); then
    echo "install-test-deps: missing: ${missing[*]}; installing Debian packages"
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-test-deps: apt-get needs root; rerun as root (or with sudo)" >&2
        exit 1
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"
else
    echo "install-test-deps: all Debian tools already present; skipping apt"
fi

# Ansible lives in a venv so that its version does not depend on Debian's packaging.
# Use Debian's python3 explicitly: a pyenv or other python earlier on PATH may lack venv.
PYTHON=/usr/bin/python3
if [[ ! -x "$PYTHON" ]]; then
    PYTHON="$(command -v python3)"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "install-test-deps: creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if "$VENV/bin/python" -c 'import ansible, yaml' >/dev/null 2>&1 && [[ -x "$VENV/bin/ansible-inventory" ]]; then
    echo "install-test-deps: ansible-core and PyYAML already in $VENV; skipping pip"
else
    # strata-verify's checks were established against ansible-core 2.19.
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet 'ansible-core>=2.16,<2.20' PyYAML
fi

# Real third-party API clients that check the twin's fidelity (strata-twin tests).
CLIENT_CHECK='import proxmoxer, maas.client, openstack, openstackclient'
if "$VENV/bin/python" -c "$CLIENT_CHECK" >/dev/null 2>&1 && [[ -x "$VENV/bin/openstack" ]]; then
    echo "install-test-deps: API clients already in $VENV; skipping pip"
else
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet \
        proxmoxer requests python-libmaas python-openstackclient openstacksdk
fi

# Playwright for the web UI's browser test (crates/strata-cli/tests/api/ui.rs, through
# scripts/clients/ui_check.py). Only the Python package: the test launches Debian's
# /usr/bin/chromium (executable_path), so `playwright install` (whose browser CDN is not
# reachable from these machines) is never run.
if "$VENV/bin/python" -c 'import playwright.sync_api' >/dev/null 2>&1; then
    echo "install-test-deps: playwright already in $VENV; skipping pip"
else
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet 'playwright>=1.40'
fi

# schemathesis 4 tests `strata serve` against its own OpenAPI document
# (scripts/clients/schemathesis_check.py, the `schema` phase of crates/strata-cli/tests/api.rs).
SCHEMATHESIS_CHECK='import sys; from importlib.metadata import version; sys.exit(0 if version("schemathesis").split(".")[0] == "4" else 1)'
if "$VENV/bin/python" -c "$SCHEMATHESIS_CHECK" >/dev/null 2>&1 && [[ -x "$VENV/bin/schemathesis" ]]; then
    echo "install-test-deps: schemathesis 4 already in $VENV; skipping pip"
else
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet 'schemathesis>=4,<5'
fi

# The Ansible collections teams run for day-2 work (community.proxmox, openstack.cloud),
# unmodified, as the `ansible` package ships them. A venv of their own: the full package
# is large, and openstack.cloud 2.x needs an openstacksdk older than the tools venv's.
# Ansible 12 is the last release whose ansible-core (2.19) runs on Debian 12's Python 3.11.
ANSIBLE_PIP=('ansible>=12,<13' proxmoxer requests 'openstacksdk<4.15')
ANSIBLE_CHECK='
import sys
from importlib.metadata import version
import proxmoxer, requests, openstack
from ansible_collections.community.proxmox.plugins.module_utils import proxmox
from ansible_collections.openstack.cloud.plugins.module_utils import openstack as osc
major = lambda name: tuple(int(p) for p in version(name).split(".")[:2])
sys.exit(0 if major("ansible")[0] == 12 and major("openstacksdk") < (4, 15) else 1)
'
if [[ ! -x "$ANSIBLE_VENV/bin/python" ]]; then
    echo "install-test-deps: creating venv $ANSIBLE_VENV"
    "$PYTHON" -m venv "$ANSIBLE_VENV"
fi
if "$ANSIBLE_VENV/bin/python" -c "$ANSIBLE_CHECK" >/dev/null 2>&1 && [[ -x "$ANSIBLE_VENV/bin/ansible-playbook" ]]; then
    echo "install-test-deps: ansible collections already in $ANSIBLE_VENV; skipping pip"
else
    "$ANSIBLE_VENV/bin/python" -m pip install --disable-pip-version-check --quiet "${ANSIBLE_PIP[@]}"
fi

# Real Keystone and Placement from PyPI, for the twin's differential test and the
# OpenStack provider's real-service test (their own venv, STRATA_OPENSTACK_VENV).
bash "$(dirname "$0")/openstack-real.sh" install

# Real Nova and its harness (install_real_nova above).
install_real_nova

echo "install-test-deps: tools:"
still_missing=()
for cmd in "${NEEDED_COMMANDS[@]}"; do
    if path="$(find_command "$cmd")"; then
        printf '  %-18s %s\n' "$cmd" "$path"
    else
        printf '  %-18s %s\n' "$cmd" "NOT FOUND"
        still_missing+=("$cmd")
    fi
done
for cmd in ansible ansible-inventory python3 openstack; do
    if [[ -x "$VENV/bin/$cmd" ]]; then
        printf '  %-18s %s\n' "$cmd" "$VENV/bin/$cmd"
    else
        printf '  %-18s %s\n' "$cmd" "NOT FOUND in $VENV/bin"
        still_missing+=("$cmd")
    fi
done
if [[ -x "$ANSIBLE_VENV/bin/ansible-playbook" ]]; then
    printf '  %-18s %s\n' "ansible-playbook" "$ANSIBLE_VENV/bin/ansible-playbook"
else
    printf '  %-18s %s\n' "ansible-playbook" "NOT FOUND in $ANSIBLE_VENV/bin"
    still_missing+=("ansible-playbook")
fi
printf '  %-18s %s\n' "ansible-core" "$("$VENV/bin/python" -c 'import ansible.release as r; print(r.__version__)' 2>/dev/null || echo '?')"
if pw="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("playwright"))' 2>/dev/null)"; then
    printf '  %-18s %s\n' "playwright" "$pw (drives /usr/bin/chromium)"
else
    printf '  %-18s %s\n' "playwright" "NOT FOUND in $VENV"
    still_missing+=("playwright")
fi
if st="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("schemathesis"))' 2>/dev/null)"; then
    printf '  %-18s %s\n' "schemathesis" "$st"
else
    printf '  %-18s %s\n' "schemathesis" "NOT FOUND in $VENV"
    still_missing+=("schemathesis")
fi
echo "install-test-deps: set STRATA_TOOLS_VENV / STRATA_ANSIBLE_VENV to use other venvs (default /opt/strata-tools, /opt/strata-ansible)"
if ((${#still_missing[@]} > 0)); then
    echo "install-test-deps: still missing after installing: ${still_missing[*]}" >&2
    exit 1
fi

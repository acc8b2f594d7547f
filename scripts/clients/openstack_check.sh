#!/usr/bin/env bash
# Drive a twin's OpenStack region with the real `openstack` CLI (python-openstackclient).
#
# Usage: openstack_check.sh ENDPOINTS_JSON [DC]
#   ENDPOINTS_JSON  the document `RunningTwin::write_endpoints` / `strata twin --write-endpoints`
#                   writes; the clouds.yaml beside it names one cloud per DC.
#   DC              the DC (cloud) to use; default: the first DC of the document.
# Environment: OPENSTACK (the CLI; default: `openstack` on PATH, then /opt/strata-tools/bin),
#              VLAN (the provider segment to create, default 1001).
# Exits non-zero, saying what failed, when any step does.
set -euo pipefail

ENDPOINTS=${1:?usage: openstack_check.sh ENDPOINTS_JSON [DC]}
DIR=$(cd "$(dirname "$ENDPOINTS")" && pwd)
export OS_CLIENT_CONFIG_FILE="$DIR/clouds.yaml"
[ -f "$OS_CLIENT_CONFIG_FILE" ] || { echo "openstack_check: no clouds.yaml beside $ENDPOINTS" >&2; exit 2; }
PY=$(command -v python3 || true)
[ -x /opt/strata-tools/bin/python ] && PY=/opt/strata-tools/bin/python
DC=${2:-$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["dcs"][0]["name"])' "$ENDPOINTS")}
OSC=${OPENSTACK:-$(command -v openstack || echo /opt/strata-tools/bin/openstack)}
[ -x "$OSC" ] || { echo "openstack_check: the openstack CLI is not installed; run scripts/install-test-deps.sh" >&2; exit 2; }
VLAN=${VLAN:-1001}
TAG="chk$$"

os() { "$OSC" --os-cloud "$DC" "$@"; }
fail() { echo "openstack_check: FAIL: $*" >&2; exit 1; }
# jget JSON EXPR: evaluate a Python expression over the parsed JSON `d`.
jget() { "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
step() { echo "--- $*"; }

step "token issue"
tok=$(os token issue -f json) || fail "token issue"
[ -n "$(jget "$tok" 'd["id"]')" ] || fail "token issue: no token id"
[ -n "$(jget "$tok" 'd["project_id"]')" ] || fail "token issue: no project"

step "flavor list"
flavors=$(os flavor list -f json) || fail "flavor list"
[ "$(jget "$flavors" 'any(f["Name"] == "m1.tiny" for f in d)')" = True ] || fail "flavor list: m1.tiny missing: $flavors"

step "flavor create (GPU, PCI alias)"
GPU_FLAVOR="gpu.h100.$TAG"
fl=$(os flavor create --vcpus 4 --ram 8192 --disk 20 --property pci_passthrough:alias=gpu-h100:1 "$GPU_FLAVOR" -f json) || fail "flavor create"
props=$(jget "$fl" 'd["properties"]')
[[ "$props" == *gpu-h100:1* ]] || fail "flavor create: properties are $props"
shown=$(os flavor show "$GPU_FLAVOR" -f json) || fail "flavor show"
[[ "$(jget "$shown" 'd["properties"]')" == *gpu-h100:1* ]] || fail "flavor show: the PCI alias did not stick"

step "network list"
nets=$(os network list -f json) || fail "network list"
[ "$(jget "$nets" 'any(n["Name"] == "public" for n in d)')" = True ] || fail "network list: public missing: $nets"

step "network create (VLAN $VLAN on physnet1)"
NET="net-$TAG"
net=$(os network create --provider-network-type vlan --provider-physical-network physnet1 --provider-segment "$VLAN" "$NET" -f json) || fail "network create"
[ "$(jget "$net" 'd["provider:segmentation_id"]')" = "$VLAN" ] || fail "network create: segmentation id $(jget "$net" 'd["provider:segmentation_id"]')"
[ "$(jget "$net" 'd["provider:network_type"]')" = vlan ] || fail "network create: type"
if os network create --provider-network-type vlan --provider-physical-network physnet1 --provider-segment "$VLAN" "dup-$TAG" >/dev/null 2>&1; then
    fail "network create: a second network on VLAN $VLAN/physnet1 was accepted"
fi
os subnet create --network "$NET" --subnet-range 10.99.0.0/24 "sub-$TAG" -f json >/dev/null || fail "subnet create"

step "image list"
imgs=$(os image list -f json) || fail "image list"
[ "$(jget "$imgs" 'any(i["Name"] == "cirros" for i in d)')" = True ] || fail "image list: cirros missing"

step "server create --wait (GPU flavor)"
VM="vm-$TAG"
srv=$(os server create --flavor "$GPU_FLAVOR" --image cirros --network "$NET" --wait "$VM" -f json) || fail "server create"
[ "$(jget "$srv" 'd["status"]')" = ACTIVE ] || fail "server create: status $(jget "$srv" 'd["status"]')"
host=$(jget "$srv" 'd.get("OS-EXT-SRV-ATTR:host") or ""')
[[ "$host" == *gpu* ]] || fail "server create: a GPU flavor landed on '$host'"
[[ "$(jget "$srv" 'd["addresses"]')" == *10.99.0.* ]] || fail "server create: addresses $(jget "$srv" 'd["addresses"]')"

step "server list"
servers=$(os server list -f json) || fail "server list"
[ "$(jget "$servers" "any(s['Name'] == '$VM' and s['Status'] == 'ACTIVE' for s in d)")" = True ] || fail "server list: $servers"

step "quota show"
quota=$(os quota show -f json) || fail "quota show"
[ -n "$(jget "$quota" '[x for x in (d if isinstance(d, list) else [d])][0]')" ] || fail "quota show: empty"
[[ "$quota" == *instances* || "$quota" == *Instances* ]] || fail "quota show: no instances quota: $quota"

step "hypervisor list"
hyps=$(os hypervisor list -f json) || fail "hypervisor list"
[ "$(jget "$hyps" 'len(d)')" -ge 4 ] || fail "hypervisor list: $hyps"

step "cleanup"
os server delete --wait "$VM" || fail "server delete"
os network delete "$NET" || fail "network delete"
os flavor delete "$GPU_FLAVOR" || fail "flavor delete"
echo "openstack_check: OK ($DC)"

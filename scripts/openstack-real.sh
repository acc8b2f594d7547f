#!/usr/bin/env bash
# Real OpenStack Keystone and Placement for strata's fidelity tests, on 127.0.0.1 only.
#
#   openstack-real.sh install            create/refresh the virtualenv (idempotent; what
#                                        scripts/install-test-deps.sh calls)
#   openstack-real.sh check              exit 0 when the virtualenv is installed, else say how
#   openstack-real.sh start DIR KS PL    fresh SQLite databases and keys under DIR, Keystone on
#                                        port KS, Placement on port PL (Keystone auth); prints
#                                        `READY keystone=URL placement=URL pids: KSPG PLPG`
#   openstack-real.sh stop DIR           stop what `start DIR` started
#
# The virtualenv is $STRATA_OPENSTACK_VENV (default /opt/strata-openstack) with the pinned
# releases below. Credentials of the started services: user admin, password secret, project
# admin, domain Default, region RegionOne. Each server runs in its own session, so its
# process-group id (printed, and written to DIR/keystone.pgid and DIR/placement.pgid) stops
# all of its workers: `kill -- -PGID`.
set -euo pipefail

VENV="${STRATA_OPENSTACK_VENV:-/opt/strata-openstack}"
# Keystone 30 and Placement 16 are the 2026.1 releases; the client is for bootstrapping only.
REQUIREMENTS=(keystone==30.0.0 openstack-placement==16.0.0 gunicorn)
STAMP="$VENV/.strata-openstack-real"

die() { echo "openstack-real: $*" >&2; exit 1; }

installed() {
    [[ -x "$VENV/bin/python" && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "${REQUIREMENTS[*]}" ]]
}

cmd_install() {
    if installed; then
        echo "openstack-real: Keystone and Placement already in $VENV"
        return
    fi
    local python=/usr/bin/python3
    [[ -x $python ]] || python="$(command -v python3)" || die "python3 not found (apt-get install python3-venv)"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "openstack-real: creating $VENV"
        "$python" -m venv "$VENV" || die "cannot create $VENV (apt-get install python3-venv; or set STRATA_OPENSTACK_VENV)"
    fi
    echo "openstack-real: installing ${REQUIREMENTS[*]} into $VENV (about a minute)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet "${REQUIREMENTS[@]}"
    printf '%s' "${REQUIREMENTS[*]}" >"$STAMP"
}

cmd_check() {
    installed || die "Keystone and Placement are not installed in $VENV: run \`sudo scripts/install-test-deps.sh\` (or \`scripts/openstack-real.sh install\`)"
}

# Wait until URL answers (any HTTP status), up to 30 s.
wait_http() {
    local url=$1 i
    for i in $(seq 300); do
        if "$VENV/bin/python" - "$url" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
        sleep 0.1
    done
    die "no answer from $url within 30 s (logs in $DIR/log)"
}

write_configs() {
    mkdir -p "$DIR/keystone" "$DIR/placement" "$DIR/fernet-keys" "$DIR/credential-keys" "$DIR/log"
    cat >"$DIR/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $DIR/log/keystone.log
[database]
connection = sqlite:///$DIR/keystone.sqlite
[token]
provider = fernet
[fernet_tokens]
key_repository = $DIR/fernet-keys
[credential]
key_repository = $DIR/credential-keys
EOF
    cat >"$DIR/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $DIR/log/placement.log
[api]
auth_strategy = keystone
[placement_database]
connection = sqlite:///$DIR/placement.sqlite
[keystone_authtoken]
www_authenticate_uri = $KEYSTONE
auth_url = $KEYSTONE
auth_type = password
username = placement
password = placement-secret
project_name = service
user_domain_name = Default
project_domain_name = Default
memcached_servers =
EOF
    # Keystone's WSGI module parses sys.argv through oslo.config: give it none.
    cat >"$DIR/keystone_app.py" <<'EOF'
import sys
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
EOF
}

# Register Placement in Keystone (service user, role, service, endpoints) over the REST API.
register_placement() {
    "$VENV/bin/python" - "$KEYSTONE" "http://127.0.0.1:$PL" <<'PY'
import json, sys, urllib.request
ks, placement = sys.argv[1], sys.argv[2]

def call(method, path, body=None, token=None):
    req = urllib.request.Request(ks + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
        return r.headers, (json.loads(text) if text else None)

headers, _ = call("POST", "/auth/tokens", {"auth": {
    "identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": "secret"}}},
    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
tok = headers["X-Subject-Token"]
_, p = call("POST", "/projects", {"project": {"name": "service", "domain_id": "default"}}, tok)
_, u = call("POST", "/users", {"user": {"name": "placement", "password": "placement-secret",
                                        "domain_id": "default"}}, tok)
_, roles = call("GET", "/roles?name=admin", token=tok)
role = roles["roles"][0]["id"]
call("PUT", f"/projects/{p['project']['id']}/users/{u['user']['id']}/roles/{role}", token=tok)
# With a description, as a Kolla deployment registers its services (and as the twin's are).
_, s = call("POST", "/services", {"service": {"type": "placement", "name": "placement",
                                              "description": "Placement Service"}}, tok)
for iface in ("public", "internal", "admin"):
    call("POST", "/endpoints", {"endpoint": {"service_id": s["service"]["id"], "interface": iface,
                                             "url": placement, "region_id": "RegionOne"}}, tok)
PY
}

# Start a server in its own session; record its process-group id in DIR/NAME.pgid.
start_server() {
    local name=$1
    shift
    setsid "$@" >"$DIR/log/$name.out" 2>&1 </dev/null &
    echo $! >"$DIR/$name.pgid"
}

cmd_start() {
    [[ $# -eq 3 ]] || die "usage: openstack-real.sh start DIR KEYSTONE_PORT PLACEMENT_PORT"
    cmd_check
    DIR=$(realpath -m "$1")
    KS=$2
    PL=$3
    KEYSTONE="http://127.0.0.1:$KS/v3"
    mkdir -p "$DIR"
    export PATH="$VENV/bin:$PATH" PYTHONWARNINGS=ignore
    write_configs
    local km=(keystone-manage --config-file "$DIR/keystone/keystone.conf")
    "${km[@]}" db_sync
    "${km[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    "${km[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    "${km[@]}" bootstrap --bootstrap-password secret --bootstrap-region-id RegionOne \
        --bootstrap-admin-url "$KEYSTONE/" --bootstrap-internal-url "$KEYSTONE/" \
        --bootstrap-public-url "$KEYSTONE/"
    placement-manage --config-file "$DIR/placement/placement.conf" db sync
    OS_KEYSTONE_CONFIG_DIR="$DIR/keystone" start_server keystone \
        gunicorn --chdir "$DIR" --bind "127.0.0.1:$KS" --workers 1 --threads 4 \
        --no-control-socket keystone_app:application
    wait_http "$KEYSTONE"
    register_placement
    OS_PLACEMENT_CONFIG_DIR="$DIR/placement" start_server placement \
        gunicorn --bind "127.0.0.1:$PL" --workers 1 --threads 4 --no-control-socket \
        placement.wsgi.api:application
    wait_http "http://127.0.0.1:$PL/"
    echo "READY keystone=$KEYSTONE placement=http://127.0.0.1:$PL pids: $(cat "$DIR/keystone.pgid") $(cat "$DIR/placement.pgid")"
}

cmd_stop() {
    [[ $# -eq 1 ]] || die "usage: openstack-real.sh stop DIR"
    local f pg
    for f in "$1/keystone.pgid" "$1/placement.pgid"; do
        [[ -f $f ]] || continue
        pg=$(cat "$f")
        kill -TERM -- "-$pg" 2>/dev/null || true
    done
}

case "${1:-}" in
install) cmd_install ;;
check) cmd_check ;;
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
*) die "usage: openstack-real.sh install | check | start DIR KEYSTONE_PORT PLACEMENT_PORT | stop DIR" ;;
esac

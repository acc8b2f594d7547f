#!/usr/bin/env python3
"""Real Nova (the compute API, conductor, scheduler and fake computes) on 127.0.0.1.

    nova-real.py [--port PORT] [--computes N]      (defaults: a free port, 4 computes)

Runs with the Python of the venv `scripts/install-test-deps.sh` builds
(${STRATA_NOVA_VENV:-/opt/strata-nova}; `scripts/install-test-deps.sh --nova` installs
only that): `/opt/strata-nova/bin/python scripts/nova-real.py --port 8774`.

It builds the functional-test harness that Nova's wheel ships
(`nova.tests.functional.integrated_helpers._IntegratedTestBase`: in-memory SQLite API and
cell databases, in-process RPC, the conductor, the scheduler, N computes `compute1`..
on the fake virt driver — four by default, as many as the twin's region has hosts —,
in-process Placement, Glance and Neutron fixtures, Keystone's middleware stubbed)
outside unittest's runner, then serves the compute API's WSGI application (the
`osapi_compute` paste pipeline, with its version documents at `/` and the API under
`/v2.1`) with a single-threaded wsgiref server until it is killed. Once it listens it
prints one line:

    READY url=http://127.0.0.1:PORT project=PROJECT_ID pid=PID

Authentication is the harness's stub: each request names its caller with the headers
`X-Auth-User` (`admin` makes an admin context), `X-Auth-Project-Id` and `X-Roles`
(comma-separated). What the harness changes and why:

- RPC casts stay casts (the harness makes them calls by default), so `POST /servers`
  answers while the server is still BUILD, as a deployed Nova does.
- The harness's warnings-as-errors filters are reset after its set-up: under them
  SQLAlchemy's deprecation warnings fail requests that a deployed Nova serves.
- Logging keeps warnings and errors, on stderr (the harness formats every debug record
  and keeps the rest in memory for a test report).
- Keystone is stubbed, so Nova's project lookups (quota sets, flavor access) find no
  identity endpoint; here they resolve as real Keystone's would: the project of any
  caller seen so far and the projects registered with `PUT /_strata/projects/{id}`
  exist, any other is not a valid project.
- The Glance fixture gets a CirrOS image as a deployment's Glance has it, and
  `GET /_strata/harness` says what a client needs to boot here (the caller's project,
  that image, the Neutron fixture's tenant network). Paths under `/_strata/` are not
  Nova's.
"""

import argparse
import os
import sys

# Nova's test package first: it applies eventlet's monkey patching, which must come before
# wsgiref, socket and threading are imported, or the services' green threads starve.
import nova.tests.functional  # noqa: F401,E402  (its __init__ monkey patches)

import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import warnings  # noqa: E402
from wsgiref import simple_server  # noqa: E402

import webob.exc  # noqa: E402

from nova.tests import fixtures as nova_fixtures  # noqa: E402
from nova.tests.functional import integrated_helpers  # noqa: E402


class Harness(integrated_helpers._IntegratedTestBase):
    """The harness's set-up, with the changes the module docstring lists."""

    CAST_AS_CALL = False
    ADMIN_API = True
    # Keeps the harness's own temporary lock directory; needed by the fake driver.
    REQUIRES_LOCKING = True
    COMPUTES = 4

    def _setup_services(self):
        # The wheel installs the paste pipeline under the venv's etc/, not beside the
        # package where the harness looks for it.
        self.flags(api_paste_config=os.path.join(sys.prefix, "etc/nova/api-paste.ini"), group="wsgi")
        super()._setup_services()

    def _setup_compute_service(self):
        first = None
        for i in range(1, self.COMPUTES + 1):
            svc = self._start_compute(f"compute{i}")
            first = first or svc
        return first

    def test_serve(self):  # the method unittest's constructor names; never run
        pass


KNOWN_PROJECTS = set()


def verify_project_id(context, project_id):
    """Keystone's answer to `GET /v3/projects/{id}` for Nova's project checks."""
    if project_id in KNOWN_PROJECTS or project_id == getattr(context, "project_id", None):
        return True
    raise webob.exc.HTTPBadRequest(explanation="Project ID %s is not a valid project." % project_id)


def strata_app(nova_app, info):
    """Nova's app, plus the harness's own `/_strata/` paths; remembers callers' projects."""
    project_path = re.compile(r"^/_strata/projects/([^/]+)$")

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_strata/"):
            m = project_path.match(path)
            if m and environ["REQUEST_METHOD"] == "PUT":
                KNOWN_PROJECTS.add(m.group(1))
                start_response("204 No Content", [])
                return [b""]
            if path == "/_strata/harness":
                body = json.dumps(info).encode()
                start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        project = environ.get("HTTP_X_AUTH_PROJECT_ID")
        if project:
            KNOWN_PROJECTS.add(project)
        return nova_app(environ, start_response)

    return app


class QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, fmt, *args):  # no access log on stderr
        pass


class Server(simple_server.WSGIServer):
    # wsgiref's default would resolve the host name of 127.0.0.1 (slow without DNS).
    def server_bind(self):
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]
        self.setup_environ()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--computes", type=int, default=4)
    a = ap.parse_args()

    Harness.COMPUTES = a.computes
    case = Harness("test_serve")
    case.setUp()
    # The harness escalates warnings to errors (its WarningsFixture); a deployed Nova
    # does not, and SQLAlchemy's deprecation warnings would fail requests.
    warnings.resetwarnings()
    warnings.simplefilter("ignore")
    # The harness formats every DEBUG record and keeps INFO ones in memory for a test's
    # report; a server that runs for minutes keeps warnings and errors, on stderr.
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    root.addHandler(handler)
    case.useFixture(_patch_identity())

    # The image a deployment's users boot: CirrOS as the twin's Glance (and devstack) has
    # it, so that what Nova copies from an image into a server is the same on both sides.
    image = case.glance.create(None, {
        "name": "cirros", "status": "active", "visibility": "public", "container_format": "bare",
        "disk_format": "qcow2", "size": 21430272, "min_ram": 0, "min_disk": 0,
        "properties": {"os_distro": "cirros", "os_version": "0.6.2", "hw_architecture": "x86_64"},
    })
    info = {
        "project_id": nova_fixtures.PROJECT_ID,
        "image": image["id"],
        "network": case.neutron.network_1["id"],
        "computes": [f"compute{i}" for i in range(1, a.computes + 1)],
    }
    app = strata_app(case.api_fixture.app(), info)
    httpd = simple_server.make_server("127.0.0.1", a.port, app, server_class=Server, handler_class=QuietHandler)
    port = httpd.server_address[1]
    print(f"READY url=http://127.0.0.1:{port} project={info['project_id']} pid={os.getpid()}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


def _patch_identity():
    import fixtures

    return fixtures.MonkeyPatch("nova.api.openstack.identity.verify_project_id", verify_project_id)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        # The harness captures sys.stderr; report on the real one.
        import traceback

        traceback.print_exc(file=sys.__stderr__)
        sys.exit(1)

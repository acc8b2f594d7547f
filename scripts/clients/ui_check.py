#!/usr/bin/env python3
"""Drive strata's web UI in headless Chromium (Playwright) as its users would.

Run by the `ui` phase of crates/strata-cli/tests/api.rs against a running `strata demo`:

    STRATA_UI_ADMIN=... STRATA_UI_VIEWER=... [STRATA_UI_MEMBER=...] \
        /opt/strata-tools/bin/python scripts/clients/ui_check.py \
        --base http://127.0.0.1:PORT --plan HASH --shots DIR [--requests TEAM]

Tokens come through the environment (not argv, which `ps` shows). What it checks:
  - an unauthenticated page sends the browser to the login page, which logs in with a
    token and comes back; the session cookie is HttpOnly, SameSite=Strict, not Secure
    over plain HTTP;
  - every page loads (200) with the Content-Security-Policy, no console error, no page
    error, no failed or refused request, and is saved as a screenshot;
  - CSRF: a UI form POST without (or with a wrong) token is 403; the API with the
    session cookie reads, and refuses a write without X-CSRF-Token;
  - a fleet viewer sees no Approve button, and its approve POST (form or API, with a
    valid CSRF token) is refused; the admin's Approve button approves the plan;
  - logout ends the session on the server, not only in the browser;
  - with --requests TEAM: the self-service form posts to /api/v1/requests and shows
    the accepted request.

Prints one JSON object (what it saw) and exits 0, or prints why and exits 1.
Uses Debian's /usr/bin/chromium (STRATA_CHROMIUM overrides): `playwright install` is
never needed.
"""

import argparse
import json
import os
import re
import sys
import time

from playwright.sync_api import sync_playwright

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'"


class Check:
    def __init__(self, base, shots):
        self.base = base.rstrip("/")
        self.shots = shots
        self.problems = []  # console errors, page errors, failed requests
        self.seen = []  # (page name, url, status)
        self.html = []  # every page's markup, for the caller's secrets check
        self.count = 0

    def url(self, path):
        return self.base + path

    def watch(self, page, who):
        def console(msg):
            if msg.type == "error":
                self.problems.append(f"{who}: console error on {page.url}: {msg.text}")

        def page_error(err):
            self.problems.append(f"{who}: page error on {page.url}: {err}")

        def failed(req):
            # A subresource still loading when the test navigates on (the favicon, say)
            # is aborted by the browser: that is the navigation, not a server failure.
            if "ERR_ABORTED" in str(req.failure) and req.resource_type != "document":
                return
            self.problems.append(f"{who}: request failed: {req.method} {req.url}: {req.failure}")

        def response(resp):
            if resp.status >= 400:
                self.problems.append(f"{who}: {resp.request.method} {resp.url} answered {resp.status}")

        page.on("console", console)
        page.on("pageerror", page_error)
        page.on("requestfailed", failed)
        page.on("response", response)
        return page

    def shot(self, page, name):
        self.count += 1
        self.html.append(page.content())
        path = os.path.join(self.shots, f"{self.count:02d}-{name}.png")
        page.screenshot(path=path, full_page=True)
        return path

    def visit(self, page, name, path):
        resp = page.goto(self.url(path))
        assert resp is not None, f"{name}: no response for {path}"
        assert resp.status == 200, f"{name}: {path} answered {resp.status}"
        csp = resp.headers.get("content-security-policy")
        assert csp == CSP, f"{name}: {path} has CSP {csp!r}"
        page.wait_for_load_state("load")
        self.seen.append((name, page.url, resp.status))
        self.shot(page, name)
        return resp


def login(check, ctx, token, who, path="/ui/"):
    page = check.watch(ctx.new_page(), who)
    page.goto(check.url(path))
    assert "/ui/login" in page.url, f"{who}: {path} without a session did not go to the login page: {page.url}"
    page.fill("#token", token)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(re.escape(check.url(path)) + r"$"))
    return page


def session_cookie(ctx):
    return next((c for c in ctx.cookies() if c["name"] == "strata_session"), None)


def csrf_of(page):
    return page.locator("input[name=csrf]").first.get_attribute("value")


def status_and_code(resp):
    try:
        code = resp.json().get("code")
    except Exception:  # an HTML page, not problem+json
        m = re.search(r'data-code="([^"]+)"', resp.text())
        code = m.group(1) if m else None
    return resp.status, code


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--plan", required=True, help="the hash of a plan waiting for an approval")
    ap.add_argument("--shots", required=True, help="directory for the screenshots")
    ap.add_argument("--requests", metavar="TEAM", help="also submit the request form for TEAM (as the member)")
    ap.add_argument("--html", help="write the markup of every page seen to this file")
    a = ap.parse_args()
    admin = os.environ["STRATA_UI_ADMIN"]
    viewer = os.environ["STRATA_UI_VIEWER"]
    member = os.environ.get("STRATA_UI_MEMBER")
    os.makedirs(a.shots, exist_ok=True)
    check = Check(a.base, a.shots)
    plan_path = f"/ui/plans/{a.plan}"
    out = {"pages": [], "checks": []}
    started = time.monotonic()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("STRATA_CHROMIUM", "/usr/bin/chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            # --- Log in through the login page; it brings the browser back.
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            ctx.set_default_timeout(20_000)
            page = check.watch(ctx.new_page(), "admin")
            page.goto(check.url("/ui/plans"))
            assert "/ui/login?next=" in page.url, f"no redirect to the login page: {page.url}"
            assert session_cookie(ctx) is None
            check.shot(page, "login")
            before = len(check.problems)
            page.fill("#token", "strata_not_a_token")
            page.click("form button[type=submit]")
            page.wait_for_load_state("load")
            assert page.locator("p.notice.bad").count() == 1, "a bad token shows no error"
            assert session_cookie(ctx) is None, "a bad token made a session"
            # That page's 401 is the expected answer, not a problem of the page.
            check.problems = check.problems[:before]
            page.fill("#token", admin)
            page.click("form button[type=submit]")
            page.wait_for_url(check.url("/ui/plans"))
            cookie = session_cookie(ctx)
            assert cookie is not None, "no session cookie after the login"
            assert cookie["httpOnly"] is True, cookie
            assert cookie["sameSite"] == "Strict", cookie
            assert cookie["secure"] is False, "Secure over plain HTTP would lose the cookie"
            assert cookie["path"] == "/", cookie
            assert admin not in json.dumps(ctx.cookies()), "the token itself is in a cookie"
            out["checks"].append("login: redirect, next, cookie flags")

            # --- Every page.
            check.visit(page, "overview", "/ui/")
            assert page.locator("#dcs tbody tr").count() == 3, "the overview lists 3 DCs"
            check.visit(page, "machines", "/ui/machines")
            assert page.locator("#machines tbody tr").count() > 0
            if page.locator("#next").count():
                page.click("#next")
                page.wait_for_load_state("load")
                assert "cursor=" in page.url
                check.shot(page, "machines-page-2")
            page.locator("#machines tbody tr td a").first.click()
            page.wait_for_load_state("load")
            assert "/ui/machines/" in page.url and page.locator("#onboarding").count() == 1
            check.shot(page, "machine")
            check.visit(page, "machines-with-onboarding", "/ui/machines?limit=200")
            check.visit(page, "plans", "/ui/plans")
            assert page.locator(f'a[href="{plan_path}"]').count() == 1, "the waiting plan is not listed"
            check.visit(page, "plan", plan_path)
            assert page.locator("#approve").is_visible(), "the admin sees no Approve button"
            assert page.locator("table.diff td.old").count() > 0 and page.locator("table.diff td.new").count() > 0
            check.visit(page, "plans-all", "/ui/plans?state=all")
            check.visit(page, "workflows", "/ui/workflows")
            page.locator("#workflows tbody tr td a").first.click()
            page.wait_for_load_state("load")
            assert page.locator("table.steps tbody tr").count() > 0, "a workflow without steps"
            check.shot(page, "workflow")
            check.visit(page, "workflows-onboard", "/ui/workflows?kind=onboard")
            check.visit(page, "audit", "/ui/audit")
            assert page.get_by_text("ui.login").count() > 0, "the login is not in the audit log"
            check.visit(page, "requests", "/ui/requests")
            out["checks"].append("every page: 200, CSP, no console errors, screenshots")

            # --- CSRF on UI forms, and the API through the session cookie.
            csrf = csrf_of(page)
            assert csrf and len(csrf) == 64, csrf
            approve = check.url(plan_path + "/approve")
            for form in ({}, {"csrf": "0" * 64}):
                r = ctx.request.post(approve, form=form, max_redirects=0)
                assert status_and_code(r) == (403, "csrf"), f"approve form {form}: {r.status} {r.text()[:300]}"
            r = ctx.request.get(check.url("/api/v1/whoami"))
            assert r.status == 200 and r.json()["grants"][0]["role"] == "admin", r.text()
            r = ctx.request.post(check.url("/api/v1/sync"))
            assert status_and_code(r) == (403, "csrf"), f"API write without X-CSRF-Token: {r.status} {r.text()}"
            r = ctx.request.post(check.url("/api/v1/sync"), headers={"X-CSRF-Token": "f" * 64})
            assert status_and_code(r) == (403, "csrf"), f"API write with a wrong X-CSRF-Token: {r.status}"
            r = ctx.request.post(check.url("/api/v1/sync"), headers={"X-CSRF-Token": csrf})
            assert r.status == 202, f"API write with the session's token: {r.status} {r.text()}"
            out["checks"].append("CSRF: UI forms and API writes need the session's token")

            # --- A fleet viewer: no Approve button, and approving is refused anyway.
            vctx = browser.new_context(viewport={"width": 1280, "height": 900})
            vctx.set_default_timeout(20_000)
            vpage = login(check, vctx, viewer, "viewer", plan_path)
            assert vpage.locator("#approve").count() == 0, "a viewer sees the Approve button"
            assert vpage.locator("table.diff").count() > 0, "a viewer sees no diff"
            check.shot(vpage, "plan-as-viewer")
            vcsrf = csrf_of(vpage)
            r = vctx.request.post(approve, form={"csrf": vcsrf}, max_redirects=0)
            assert status_and_code(r) == (403, "forbidden"), f"viewer's approve form: {r.status} {r.text()[:300]}"
            r = vctx.request.post(check.url(f"/api/v1/plans/{a.plan}/approve"), headers={"X-CSRF-Token": vcsrf})
            assert status_and_code(r) == (403, "forbidden"), f"viewer's API approve: {r.status} {r.text()}"
            vpage.goto(check.url(plan_path))
            assert "waiting" in vpage.locator("#plan-state").inner_text(), "the viewer changed the plan"
            vctx.close()
            out["checks"].append("viewer: no Approve button, approve refused (form and API)")

            # --- Self-service: the request form posts to /api/v1/requests.
            if a.requests:
                assert member, "--requests needs STRATA_UI_MEMBER"
                mctx = browser.new_context(viewport={"width": 1280, "height": 900})
                mctx.set_default_timeout(20_000)
                mpage = login(check, mctx, member, "member", "/ui/requests")
                mpage.select_option("#team", a.requests)
                mpage.fill("#name", "ui-check-vm")
                mpage.fill("#cores", "2")
                mpage.fill("#memory_mib", "2048")
                mpage.fill("#disk_gb", "10")
                mpage.click("#request-submit")
                mpage.wait_for_selector("#request-result .result")
                status = int(mpage.locator("#request-result .result").get_attribute("data-status"))
                check.shot(mpage, "request-submitted")
                text = mpage.locator("#request-result").inner_text()
                assert 200 <= status < 300, f"the request form was refused ({status}): {text}"
                answer = json.loads(mpage.locator("#request-result pre").inner_text())
                assert answer.get("id"), f"the answer names no request: {answer}"
                out["request"] = {"status": status, "id": answer["id"], "state": answer.get("state")}
                mctx.close()
                out["checks"].append("requests: the form posts to /api/v1/requests")

            # --- The admin approves through the button.
            page.goto(check.url(plan_path))
            page.click("#approve")
            page.wait_for_url(re.compile(re.escape(check.url(plan_path)) + r"\?approved=1$"))
            assert page.locator("#approved").is_visible()
            state = page.locator("#plan-state").inner_text()
            assert "waiting" not in state, f"approved plan still {state}"
            check.shot(page, "plan-approved")
            out["checks"].append(f"approve: the button approved the plan ({state.strip()})")

            # --- Logout ends the session on the server.
            old = session_cookie(ctx)["value"]
            page.click("#logout")
            page.wait_for_url(check.url("/ui/login"))
            assert session_cookie(ctx) is None, "the session cookie outlived the logout"
            ctx.add_cookies([{"name": "strata_session", "value": old, "url": check.base}])
            r = ctx.request.get(check.url("/ui/"), max_redirects=0)
            assert r.status == 303 and r.headers["location"].startswith("/ui/login"), (
                f"the old session still opens pages: {r.status}"
            )
            r = ctx.request.get(check.url("/api/v1/whoami"))
            assert r.status == 401, f"the old session still reads the API: {r.status}"
            ctx.close()
            out["checks"].append("logout: the session ends on the server")
        finally:
            browser.close()

    if a.html:
        with open(a.html, "w", encoding="utf-8") as f:
            f.write("\n".join(check.html))
    assert not check.problems, "the browser saw problems:\n  " + "\n  ".join(check.problems)
    out["pages"] = [{"name": n, "url": u, "status": s} for n, u, s in check.seen]
    out["screenshots"] = check.count
    out["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"ui_check: FAILED: {e}", file=sys.stderr)
        sys.exit(1)

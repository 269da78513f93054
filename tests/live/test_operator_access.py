"""Operator access to the O&M port of a real `qkdnet serve`: logins, roles, the CSRF token,
the Host and Origin checks, the audit log, and `qkdnet operator` / `qkdnet fault` with
credentials."""

from __future__ import annotations

import json
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chain_scenario import CHAIN_SCENARIO
from om_login import PASSWORD, add_operator, session
from typer.testing import CliRunner

from qkdnet.cli import app
from qkdnet.live.launch import ServeFailed, ServeProcess, start_serve


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("access") / "live"


@pytest.fixture(scope="module")
def served(folder: Path) -> Iterator[ServeProcess]:
    scenario = folder.parent / "chain.yaml"
    scenario.write_text(CHAIN_SCENARIO)
    process = start_serve(folder, str(scenario), ["--prefill-bits", "65536"])
    add_operator(folder, "wei", "viewer")
    add_operator(folder, "li", "operator")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def url(served: ServeProcess) -> str:
    return str(served.manifest["om_url"])


def _audit(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "audit.log").read_text().splitlines()]


def _running(url: str, folder: Path, node: str) -> bool:
    with session(folder, url, "reader", "viewer") as om:
        return om.get(f"{url}/api/state").json()["nodes"].get(node, {}).get("ok") is not False


def test_an_unauthenticated_post_is_401(url: str, folder: Path) -> None:
    """A POST without a session or credentials stops nothing and answers 401."""
    answer = httpx.post(f"{url}/api/nodes/b/stop", timeout=5)
    assert answer.status_code == 401
    assert "log in" in answer.json()["message"]
    assert _running(url, folder, "b")
    assert httpx.get(f"{url}/api/state", timeout=5).status_code == 401  # reads too


def test_a_cross_site_post_is_refused(url: str, folder: Path) -> None:
    """The curl of the issue (text/plain) is 401; with a foreign Origin, even carrying a
    logged-in operator's cookie and CSRF token, it is 403."""
    curl = httpx.post(f"{url}/api/nodes/b/stop", content=b"x",
                      headers={"Content-Type": "text/plain"}, timeout=5)
    assert curl.status_code == 401
    with session(folder, url, "li", "operator") as om:
        forged = om.post(f"{url}/api/nodes/b/stop", content=b"x",
                         headers={"Content-Type": "text/plain",
                                  "Origin": "http://evil.example"})
        assert forged.status_code == 403
        site = om.post(f"{url}/api/nodes/b/stop", headers={"Sec-Fetch-Site": "cross-site"})
        assert site.status_code == 403
    assert _running(url, folder, "b")


def test_a_post_without_the_csrf_token_is_403(url: str, folder: Path) -> None:
    """The session cookie alone does not make a POST: the X-CSRF-Token must match."""
    with session(folder, url, "li", "operator") as om:
        del om.headers["X-CSRF-Token"]
        assert om.post(f"{url}/api/links/a--b/cut").status_code == 403
        om.headers["X-CSRF-Token"] = "not-the-token"
        assert om.post(f"{url}/api/links/a--b/cut").status_code == 403
    with session(folder, url, "reader", "viewer") as om:
        assert om.get(f"{url}/api/state").json()["links"].get("a--b", {}).get("up") is not False


def test_a_viewer_reads_but_cannot_cut_a_link(url: str, folder: Path) -> None:
    """Role viewer: /api/state 200, a cut 403 (refused in the audit log)."""
    with session(folder, url, "wei", "viewer") as om:
        assert om.get(f"{url}/api/state").status_code == 200
        answer = om.post(f"{url}/api/links/a--b/cut")
        assert answer.status_code == 403
        assert "viewer" in answer.json()["message"]
    refused = [r for r in _audit(folder) if r["event"] == "refused" and r["who"] == "wei"]
    assert refused[-1]["path"] == "/api/links/a--b/cut" and refused[-1]["status"] == 403


def test_an_operator_cuts_a_link_and_it_is_audited(url: str, folder: Path) -> None:
    """Role operator: the cut is 200, and the audit log says who, what, when, from where."""
    with session(folder, url, "li", "operator") as om:
        cut = om.post(f"{url}/api/links/b--c/cut")
        assert cut.status_code == 200 and cut.json()["up"] is False
        assert om.post(f"{url}/api/links/b--c/repair").status_code == 200
    records = [r for r in _audit(folder) if r["event"] == "request"]
    did = next(r for r in records if r["path"] == "/api/links/b--c/cut")
    assert did["who"] == "li" and did["status"] == 200 and did["method"] == "POST"
    assert did["from"].startswith("127.0.0.1:") and did["t"].endswith("+00:00")
    logins = [r for r in _audit(folder) if r["event"] == "login" and r["who"] == "li"]
    assert logins


def test_a_wrong_password_is_a_logged_failed_login(url: str, folder: Path) -> None:
    """401, one login-failed line naming the operator, and the password nowhere in the log."""
    answer = httpx.post(f"{url}/api/login", json={"name": "li", "password": "guessed-wrong"},
                        timeout=5)
    assert answer.status_code == 401 and "set-cookie" not in answer.headers
    failed = [r for r in _audit(folder) if r["event"] == "login-failed"]
    assert failed[-1]["who"] == "li" and failed[-1]["from"].startswith("127.0.0.1:")
    text = (folder / "audit.log").read_text()
    assert "guessed-wrong" not in text and PASSWORD not in text


def test_a_forged_host_header_is_refused(url: str, folder: Path) -> None:
    """A Host naming another site (DNS rebinding) is 400, however good the credentials."""
    with session(folder, url, "li", "operator") as om:
        port = url.rsplit(":", 1)[1]
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1"):
            answer = om.post(f"{url}/api/nodes/b/stop", headers={"Host": host})
            assert answer.status_code == 400, host
        assert om.get(f"{url}/api/state", headers={"Host": f"localhost:{port}"}
                      ).status_code == 200
    assert _running(url, folder, "b")


def test_the_session_cookie_is_httponly_strict_and_ends_at_logout(url: str,
                                                                    folder: Path) -> None:
    """Set-Cookie carries HttpOnly and SameSite=Strict; after logout the cookie is dead."""
    add_operator(folder, "li", "operator")
    om = httpx.Client(timeout=5)
    login = om.post(f"{url}/api/login", json={"name": "li", "password": PASSWORD})
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token not in (folder / "audit.log").read_text()
    csrf = {"X-CSRF-Token": login.json()["csrf"]}
    assert om.get(f"{url}/api/session").json()["name"] == "li"
    assert om.post(f"{url}/api/logout", headers=csrf).status_code == 200
    stale = httpx.get(f"{url}/api/session", cookies={"qkdnet_om": token}, timeout=5)
    assert stale.status_code == 401


def test_metrics_stay_open_on_loopback_and_the_console_page_loads(url: str) -> None:
    """Prometheus on the same machine scrapes without credentials; the page (no data)
    loads so that it can show its login form."""
    assert httpx.get(f"{url}/metrics", timeout=5).status_code == 200
    assert httpx.get(f"{url}/", timeout=5).status_code == 200


def test_operator_cli_stores_scrypt_hashes_in_a_private_file(tmp_path: Path) -> None:
    """`qkdnet operator add/list/remove`: 0600 file, no password in it, wrong role named."""
    folder = tmp_path / "live"
    secret = tmp_path / "pw"
    secret.write_text("s3cret-enough\n")
    runner = CliRunner()
    added = runner.invoke(app, ["operator", "add", "zhang", "--role", "operator", "--dir",
                                str(folder), "--password-file", str(secret)])
    assert added.exit_code == 0, added.output
    stored = folder / "operators.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    entry = json.loads(stored.read_text())["operators"]["zhang"]
    assert entry["role"] == "operator" and len(bytes.fromhex(entry["salt"])) == 16
    assert "s3cret" not in stored.read_text()
    bad = runner.invoke(app, ["operator", "add", "x", "--role", "root", "--dir", str(folder),
                              "--password-file", str(secret)])
    assert bad.exit_code == 2 and "--role" in bad.output
    listed = runner.invoke(app, ["operator", "list", "--dir", str(folder)])
    assert listed.output.split() == ["zhang", "operator"]
    assert runner.invoke(app, ["operator", "remove", "zhang", "--dir", str(folder)]
                         ).exit_code == 0
    assert runner.invoke(app, ["operator", "list", "--dir", str(folder)]).output == ""


def test_qkdnet_fault_authenticates_from_the_environment(url: str, folder: Path) -> None:
    """`qkdnet fault` without credentials fails naming --operator; with QKDNET_OPERATOR
    and QKDNET_PASSWORD it cuts, and the viewer's credentials are refused."""
    runner = CliRunner()
    args = ["fault", "cut", "a--b", "--dir", str(folder)]
    none = runner.invoke(app, args, env={"QKDNET_OPERATOR": "", "QKDNET_PASSWORD": ""})
    assert none.exit_code == 2 and "--operator" in none.output
    viewer = runner.invoke(app, args, env={"QKDNET_OPERATOR": "wei",
                                           "QKDNET_PASSWORD": PASSWORD})
    assert viewer.exit_code == 2 and "viewer" in viewer.output
    done = runner.invoke(app, args, env={"QKDNET_OPERATOR": "li", "QKDNET_PASSWORD": PASSWORD})
    assert done.exit_code == 0 and "a--b: cut" in done.output
    assert runner.invoke(app, ["fault", "repair", "a--b", "--dir", str(folder)],
                         env={"QKDNET_OPERATOR": "li", "QKDNET_PASSWORD": PASSWORD}
                         ).exit_code == 0
    assert [r for r in _audit(folder) if r["event"] == "request" and r["who"] == "li"
            and r["path"] == "/api/links/a--b/cut"]


def test_off_loopback_the_om_port_is_https_with_the_network_certificate(
        tmp_path: Path) -> None:
    """--host 0.0.0.0: om_url is https, verified by the network CA; plain HTTP gets no
    answer; the session cookie is Secure; `qkdnet fault` works over it. (Every O&M call
    needs a login and every KME mutual TLS while it listens on all addresses.)"""
    folder = tmp_path / "live"
    scenario = tmp_path / "chain.yaml"
    scenario.write_text(CHAIN_SCENARIO)
    served = start_serve(folder, str(scenario), ["--host", "0.0.0.0", "--advertise",
                                                 "localhost"])
    try:
        url = str(served.manifest["om_url"])
        assert url.startswith("https://localhost:")
        add_operator(folder, "li", "operator")
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https:", "http:") + "/api/session", timeout=5)
        ca = ssl.create_default_context(cafile=str(served.manifest["ca"]))
        with httpx.Client(verify=ca, timeout=5) as om:
            login = om.post(f"{url}/api/login", json={"name": "li", "password": PASSWORD})
            assert login.status_code == 200
            assert "; Secure" in login.headers["set-cookie"]
            assert om.get(f"{url}/api/session").json()["name"] == "li"
        done = CliRunner().invoke(app, ["fault", "cut", "a--b", "--dir", str(folder)],
                                  env={"QKDNET_OPERATOR": "li", "QKDNET_PASSWORD": PASSWORD})
        assert done.exit_code == 0 and "a--b: cut" in done.output, done.output
    finally:
        served.stop()


def test_a_removed_operator_loses_their_session(url: str, folder: Path) -> None:
    """`qkdnet operator remove` takes effect at the session's next request: 401."""
    with session(folder, url, "temp", "operator") as om:
        assert om.get(f"{url}/api/state").status_code == 200
        removed = CliRunner().invoke(app, ["operator", "remove", "temp", "--dir", str(folder)])
        assert removed.exit_code == 0, removed.output
        assert om.get(f"{url}/api/state").status_code == 401
        assert om.post(f"{url}/api/links/a--b/cut").status_code == 401


def test_serve_refuses_an_operators_file_others_can_read(tmp_path: Path) -> None:
    """operators.json (password hashes) open to other users: serve exits naming it."""
    folder = tmp_path / "live"
    add_operator(folder, "li", "operator")
    (folder / "operators.json").chmod(0o644)
    scenario = tmp_path / "chain.yaml"
    scenario.write_text(CHAIN_SCENARIO)
    with pytest.raises(ServeFailed, match=r"operators\.json"):
        start_serve(folder, str(scenario)).stop()


def test_repeated_failed_logins_are_throttled(url: str, folder: Path) -> None:
    """After 5 failed logins as one name from one address, even the right password gets
    429 for a minute, audited; other names are not held up."""
    add_operator(folder, "guessed", "viewer")
    for _ in range(5):
        wrong = httpx.post(f"{url}/api/login", json={"name": "guessed", "password": "nope-"
                                                      "nope"}, timeout=5)
        assert wrong.status_code == 401
    right = httpx.post(f"{url}/api/login", json={"name": "guessed", "password": PASSWORD},
                       timeout=5)
    assert right.status_code == 429 and "retry-after" in right.headers
    assert [r for r in _audit(folder) if r["event"] == "login-throttled"
            and r["who"] == "guessed"]
    with session(folder, url, "wei", "viewer") as om:
        assert om.get(f"{url}/api/session").json()["name"] == "wei"


NEW_PASSWORD = "a new viewer's passphrase"


def test_an_admin_adds_a_viewer_over_the_api_who_can_then_log_in(
        url: str, folder: Path, served: ServeProcess) -> None:
    """POST /api/operators by an admin: 201, the viewer logs in at once, the list shows it,
    the audit names admin, new operator and role, and the password is nowhere but hashed."""
    with session(folder, url, "boss", "admin") as admin:
        added = admin.post(f"{url}/api/operators", json={
            "name": "zhao", "role": "viewer", "password": NEW_PASSWORD})
        assert added.status_code == 201, added.text
        assert added.json() == {"name": "zhao", "role": "viewer"}
        again = admin.post(f"{url}/api/operators", json={
            "name": "zhao", "role": "admin", "password": NEW_PASSWORD})
        assert again.status_code == 409
        listed = admin.get(f"{url}/api/operators").json()["operators"]
        assert {"name": "zhao", "role": "viewer"} in listed
    login = httpx.post(f"{url}/api/login", json={"name": "zhao", "password": NEW_PASSWORD},
                       timeout=5)
    assert login.status_code == 200 and login.json()["role"] == "viewer"
    [line] = [a for a in _audit(folder) if a["event"] == "operator-add"
              and a.get("operator") == "zhao"]
    assert line["who"] == "boss" and line["role"] == "viewer" and line["via"] == "api"
    assert line["from"].startswith("127.0.0.1:")
    for text in ((folder / "audit.log").read_text(), served.log(),
                 (folder / "operators.json").read_text()):
        assert NEW_PASSWORD not in text


def test_operator_management_needs_an_admin(url: str, folder: Path) -> None:
    """Unauthenticated: 401; viewer and operator sessions: 403 to list, add and remove;
    nothing changes, and the refused changes are audited."""
    assert httpx.get(f"{url}/api/operators", timeout=5).status_code == 401
    assert httpx.post(f"{url}/api/operators", timeout=5, json={
        "name": "mallory", "role": "admin", "password": NEW_PASSWORD}).status_code == 401
    for name, role in (("wei", "viewer"), ("li", "operator")):
        with session(folder, url, name, role) as om:
            assert om.get(f"{url}/api/operators").status_code == 403
            grab = om.post(f"{url}/api/operators", json={
                "name": "mallory", "role": "admin", "password": NEW_PASSWORD})
            assert grab.status_code == 403
            assert om.delete(f"{url}/api/operators/wei").status_code == 403
    names = set(json.loads((folder / "operators.json").read_text())["operators"])
    assert "mallory" not in names and "wei" in names
    refused = [a for a in _audit(folder) if a["event"] == "refused"
               and a["path"].startswith("/api/operators")]
    assert {(a["who"], a["status"]) for a in refused} >= {("li", 403), ("wei", 403),
                                                           (None, 401)}


def test_the_last_admin_cannot_be_removed(url: str, folder: Path) -> None:
    """DELETE of the only admin: 409; with a second admin (added over the API) removing it
    works (200, audited) and the first is again the last; a DELETE needs the CSRF token."""
    with session(folder, url, "boss", "admin") as admin:
        assert {o["name"] for o in admin.get(f"{url}/api/operators").json()["operators"]
                if o["role"] == "admin"} == {"boss"}
        last = admin.delete(f"{url}/api/operators/boss")
        assert last.status_code == 409 and "last admin" in last.json()["message"]
        assert admin.post(f"{url}/api/operators", json={
            "name": "boss2", "role": "admin", "password": NEW_PASSWORD}).status_code == 201
        no_token = admin.delete(f"{url}/api/operators/boss2",
                                headers={"X-CSRF-Token": "wrong"})
        assert no_token.status_code == 403
        assert admin.delete(f"{url}/api/operators/boss2").status_code == 200
        assert admin.delete(f"{url}/api/operators/boss2").status_code == 404
        assert admin.delete(f"{url}/api/operators/boss").status_code == 409
    removed = [a for a in _audit(folder) if a["event"] == "operator-remove"
               and a.get("operator") == "boss2"]
    assert [(a["who"], a["role"], a["via"]) for a in removed] == [("boss", "admin", "api")]

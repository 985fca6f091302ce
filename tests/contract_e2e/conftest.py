"""Package-scoped real processes: the demo shop behind a gateway enforcing its spec."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract_e2e.e2e_support import Client, shop_config
from tests.support.keys import KeyIssuer, make_issuer
from tests.support.procs import GatewayProc, run_gateway, run_shop


@pytest.fixture(scope="package")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> KeyIssuer:
    return make_issuer(tmp_path_factory.mktemp("e2ekeys"))


@pytest.fixture(scope="package")
def shop_gateway(
    issuer: KeyIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProc]:
    tmp = tmp_path_factory.mktemp("e2eshop")
    with run_shop(tmp) as shop_url, run_gateway(shop_config(shop_url, issuer.config()), tmp) as gw:
        yield gw


@pytest.fixture(scope="package")
def admin_token(issuer: KeyIssuer) -> str:
    return issuer.token("u-admin", ["admin"])


@pytest.fixture(scope="package")
def alice_token(issuer: KeyIssuer) -> str:
    return issuer.token("u-alice", ["customer"])


@pytest.fixture(scope="package")
def admin(shop_gateway: GatewayProc, admin_token: str) -> Iterator[Client]:
    client = Client(shop_gateway.port, admin_token)
    yield client
    client.close()


@pytest.fixture(scope="package")
def alice(shop_gateway: GatewayProc, alice_token: str) -> Iterator[Client]:
    client = Client(shop_gateway.port, alice_token)
    yield client
    client.close()


@pytest.fixture(scope="package")
def anonymous(shop_gateway: GatewayProc) -> Iterator[Client]:
    client = Client(shop_gateway.port)
    yield client
    client.close()

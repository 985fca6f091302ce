"""The integration points other parts of Bastion rely on, and every module's ``__all__``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import fields

import click

import bastion.identity
from bastion.identity.app import create_identity_app
from bastion.identity.cli import identity
from bastion.identity.demo import DemoIdentity, prepare_demo_identity
from bastion.identity.events import IdentityEvents, NoEvents
from bastion.identity.settings import load_identity_settings


def test_public_signatures() -> None:
    assert next(iter(inspect.signature(create_identity_app).parameters)) == "settings"
    assert list(inspect.signature(load_identity_settings).parameters) == ["path"]
    assert list(inspect.signature(prepare_demo_identity).parameters)[:2] == ["state_dir", "issuer"]
    assert {f.name for f in fields(DemoIdentity)} >= {"settings", "users", "clients"}
    assert inspect.iscoroutinefunction(DemoIdentity.token_for)
    assert isinstance(identity, click.Group)
    assert identity.name == "identity"
    assert {"serve", "users", "clients", "keys", "check", "migrate"} <= set(identity.commands)
    assert isinstance(NoEvents(), IdentityEvents)


def test_every_module_all_is_accurate() -> None:
    for info in pkgutil.iter_modules(bastion.identity.__path__):
        if info.name == "migrations":
            continue
        module = importlib.import_module(f"bastion.identity.{info.name}")
        exported = getattr(module, "__all__", None)
        assert exported is not None, info.name
        for name in exported:
            assert hasattr(module, name), f"{info.name}.{name}"

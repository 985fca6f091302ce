"""In-memory data for vulnapi: users, orders, a SQLite product table, a Mongo-like matcher."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any


@dataclass
class User:
    id: str
    username: str
    password: str
    role: str
    email: str
    api_key: str
    password_hash: str


USERS = [
    User(
        "u-alice",
        "alice",
        "alice-password-1",
        "user",
        "alice@example.com",
        "AKIAIOSFODNN7ALICE01",
        "$2b$12$KIXQJ2Fq1Zr9dGq3nV7h4uS1m1aZz0mN6pQ8rT2yW4eV6bX8cD0eG",
    ),
    User(
        "u-bob",
        "bob",
        "bob-password-2",
        "user",
        "bob@example.com",
        "AKIAIOSFODNN7BOBBY02",
        "$2b$12$Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz1Xc3Vb5Nm7Qw9Er1Ty3Ui5Op",
    ),
    User(
        "u-admin",
        "admin",
        "admin-password-3",
        "admin",
        "admin@example.com",
        "AKIAIOSFODNN7ADMIN03",
        "$2b$12$Zx1Cv3Bn5Mm7Aa9Ss1Dd3Ff5Gg7Hh9Jj1Kk3Ll5Zz7Xx9Cc1Vv3Bb",
    ),
]

PRODUCTS = [(1, "Red widget", 9.5), (2, "Blue widget", 11.0), (3, "Green gadget", 24.0)]


@dataclass
class Store:
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_order: int = 100
    db: sqlite3.Connection = field(
        default_factory=lambda: sqlite3.connect(":memory:", check_same_thread=False)
    )

    def __post_init__(self) -> None:
        self.db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        self.db.executemany("INSERT INTO products VALUES (?, ?, ?)", PRODUCTS)
        self.db.execute("CREATE TABLE reviews (product_id INTEGER, stars INTEGER, text TEXT)")
        self.db.execute("INSERT INTO reviews VALUES (1, 5, 'Great widget')")
        for owner, item in (("u-alice", "Seed order"), ("u-bob", "Seed order")):
            self.create_order(owner, {"item": item, "quantity": 1, "note": ""})

    def user_by_name(self, username: str) -> User | None:
        return next((u for u in USERS if u.username == username), None)

    def user_by_id(self, user_id: str) -> User | None:
        return next((u for u in USERS if u.id == user_id), None)

    def create_order(self, owner: str, data: dict[str, Any]) -> dict[str, Any]:
        order_id = self.next_order
        self.next_order += 1
        quantity = int(data.get("quantity", 1))
        order = {
            "id": order_id,
            "owner": owner,
            "item": str(data.get("item", "")),
            "quantity": quantity,
            "note": str(data.get("note", "")),
            "status": "pending",
            "total": round(quantity * 9.5, 2),
        }
        self.orders[order_id] = order
        return order


def mongo_match(document: dict[str, Any], query: dict[str, Any]) -> bool:
    """Evaluate a small subset of MongoDB query operators (the NoSQL-injection plant)."""
    for key, condition in query.items():
        if key.startswith("$"):
            if key == "$or" and isinstance(condition, list):
                if not any(mongo_match(document, sub) for sub in condition):
                    return False
                continue
            raise ValueError(f"MongoServerError: unknown top level operator: {key}")
        value = document.get(key)
        if isinstance(condition, dict):
            for op, operand in condition.items():
                if op == "$eq":
                    ok = value == operand
                elif op == "$ne":
                    ok = value != operand
                elif op == "$gt":
                    ok = value is not None and str(value) > str(operand)
                elif op == "$regex":
                    ok = value is not None and re.search(str(operand), str(value)) is not None
                else:
                    raise ValueError(f"MongoServerError: unknown operator: {op}")
                if not ok:
                    return False
        elif value != condition:
            return False
    return True

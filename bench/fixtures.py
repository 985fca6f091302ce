"""Data the benchmark rows need: an ES256 key and token, an OpenAPI spec, JSON bodies.

Everything is generated, deterministic where it can be (bodies, spec) and fresh where it
must be (the signing key, the token's ``iat``/``exp``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

ISSUER = "https://bench.example"
AUDIENCE = "api://bench"
SUBJECT = "u-1"

ITEM_BODY: dict[str, Any] = {
    "id": "it-42",
    "owner_id": SUBJECT,
    "name": "bench item",
    "price": 12.5,
    "tags": ["a", "b"],
}


def write_es256_key(directory: Path) -> tuple[bytes, Path]:
    """A fresh P-256 key pair: (private PEM bytes, path of the public PEM file)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = directory / "bench-es256.pub.pem"
    path.write_bytes(public_pem)
    return private_pem, path


def make_token(private_pem: bytes, *, subject: str = SUBJECT, lifetime: int = 3600) -> str:
    """An RFC 9068 style access token (typ at+jwt) signed with ES256, no kid."""
    from joserfc import jwt
    from joserfc.jwk import ECKey

    key = ECKey.import_key(private_pem)
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "roles": ["customer"],
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode({"alg": "ES256", "typ": "at+jwt"}, claims, key)


def _address(city: str) -> dict[str, Any]:
    return {
        "line1": "221B Baker Street",
        "line2": "Flat 2",
        "city": city,
        "postal_code": "NW1 6XE",
        "country": "GB",
    }


def order_request() -> dict[str, Any]:
    """A valid POST /orders body of about 2 KB: nested objects, arrays, formats."""
    return {
        "customer": {
            "id": "3f1c9a52-8d7e-4b1a-9c55-0e6f2a7b8c91",
            "email": "ada.lovelace@example.com",
            "name": "Ada Lovelace",
            "phone": "+44 20 7946 0958",
        },
        "shipping_address": _address("London"),
        "billing_address": _address("London"),
        "items": [
            {
                "sku": f"SKU-{1000 + i}",
                "name": f"Analytical engine part {i}",
                "quantity": 1 + i % 3,
                "unit_price": round(9.99 + i * 3.5, 2),
                "options": {"colour": "brass", "gift_wrap": i % 2 == 0},
            }
            for i in range(10)
        ],
        "currency": "GBP",
        "coupon": "WELCOME10",
        "delivery": {"method": "express", "requested_date": "2026-12-24"},
        "notes": "Please leave the parcel with the concierge. " * 3,
        "placed_at": "2026-11-28T10:15:30Z",
        "marketing_opt_in": False,
    }


def invalid_order_request() -> dict[str, Any]:
    """Breaks the schema three ways: bad email, negative quantity, undeclared field."""
    body = order_request()
    body["customer"]["email"] = "not-an-email"
    body["items"][0]["quantity"] = -5
    body["is_admin"] = True
    return body


def order_response() -> dict[str, Any]:
    """The upstream's answer (~2 KB), with undeclared fields the gateway must drop."""
    request = order_request()
    items = [
        {**item, "line_total": item["unit_price"] * item["quantity"], "supplier_cost": 1.23}
        for item in request["items"]
    ]
    return {
        "id": "7d9e2c41-5a3b-4f6e-8a1d-2b3c4d5e6f70",
        "status": "accepted",
        "customer": {**request["customer"], "internal_segment": "vip-tier-3"},
        "shipping_address": request["shipping_address"],
        "items": items,
        "currency": "GBP",
        "total": round(sum(i["line_total"] for i in items), 2),
        "created_at": "2026-11-28T10:15:31Z",
        "internal_notes": "fraud score 0.02; routed via warehouse B",
        "debug_trace": {"db_ms": 3.1, "cache": "miss", "node": "orders-7f9c"},
    }


UNDECLARED_RESPONSE_FIELD = "internal_notes"

_ADDRESS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["line1", "city", "postal_code", "country"],
    "properties": {
        "line1": {"type": "string", "minLength": 1, "maxLength": 200},
        "line2": {"type": "string", "maxLength": 200},
        "city": {"type": "string", "minLength": 1, "maxLength": 100},
        "postal_code": {"type": "string", "pattern": "^[A-Z0-9 -]{3,10}$"},
        "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
    },
}
_CUSTOMER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "email", "name"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "email": {"type": "string", "format": "email", "maxLength": 254},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "phone": {"type": "string", "pattern": "^\\+[0-9 ]{6,20}$"},
    },
}
_ITEM_IN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sku", "quantity", "unit_price"],
    "properties": {
        "sku": {"type": "string", "pattern": "^SKU-[0-9]{4}$"},
        "name": {"type": "string", "maxLength": 200},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 100},
        "unit_price": {"type": "number", "minimum": 0},
        "options": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "colour": {"type": "string", "enum": ["brass", "steel", "oak"]},
                "gift_wrap": {"type": "boolean"},
            },
        },
    },
}
_ITEM_OUT = {
    "type": "object",
    "required": ["sku", "quantity", "unit_price", "line_total"],
    "properties": {
        "sku": {"type": "string"},
        "name": {"type": "string"},
        "quantity": {"type": "integer"},
        "unit_price": {"type": "number"},
        "line_total": {"type": "number"},
        "options": {"type": "object"},
    },
}


def openapi_spec(server_url: str) -> dict[str, Any]:
    """OpenAPI 3.1: POST /orders with a strict request schema and a response schema."""
    request_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["customer", "shipping_address", "items", "currency", "placed_at"],
        "properties": {
            "customer": {"$ref": "#/components/schemas/Customer"},
            "shipping_address": {"$ref": "#/components/schemas/Address"},
            "billing_address": {"$ref": "#/components/schemas/Address"},
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": 50,
                "items": {"$ref": "#/components/schemas/OrderItem"},
            },
            "currency": {"type": "string", "enum": ["GBP", "EUR", "USD"]},
            "coupon": {"type": "string", "pattern": "^[A-Z0-9]{4,16}$"},
            "delivery": {
                "type": "object",
                "additionalProperties": False,
                "required": ["method"],
                "properties": {
                    "method": {"type": "string", "enum": ["standard", "express"]},
                    "requested_date": {"type": "string", "format": "date"},
                },
            },
            "notes": {"type": "string", "maxLength": 2000},
            "placed_at": {"type": "string", "format": "date-time"},
            "marketing_opt_in": {"type": "boolean"},
        },
    }
    response_schema = {
        "type": "object",
        "required": ["id", "status", "items", "total", "currency"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": ["accepted", "rejected"]},
            "customer": {"$ref": "#/components/schemas/CustomerView"},
            "shipping_address": {"$ref": "#/components/schemas/Address"},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/OrderLine"}},
            "currency": {"type": "string"},
            "total": {"type": "number"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    }
    json_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Bastion bench orders", "version": "1.0.0"},
        "servers": [{"url": server_url}],
        "paths": {
            "/orders": {
                "post": {
                    "operationId": "createOrder",
                    "security": [],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/NewOrder"}
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "The order as accepted.", "content": json_content}
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "Address": _ADDRESS,
                "Customer": _CUSTOMER,
                "CustomerView": {
                    "type": "object",
                    "properties": {k: {"type": "string"} for k in ("id", "email", "name", "phone")},
                },
                "OrderItem": _ITEM_IN,
                "OrderLine": _ITEM_OUT,
                "NewOrder": request_schema,
                "Order": response_schema,
            }
        },
    }

"""Password hashing (Argon2id) and the NIST SP 800-63B-4 §3.1.1.2 password rules.

Rules: at least ``min_length`` characters (15; 8 when MFA is enforced), at least 64
allowed, every printable character and space allowed, no composition rules, Unicode
normalised with NFKC before counting and hashing, refused when found in the shipped
blocklist of common and breached passwords (also after stripping trailing digits and
symbols), when repetitive or sequential, or when it is a derivative of a context word
(the username, the email address, the service name). Each refusal says why.

Hashes are Argon2id (RFC 9106); :meth:`PasswordHasher.needs_rehash` tells the login path
to rehash when the configured parameters change.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bastion.identity.settings import Argon2Settings, PasswordSettings

__all__ = [
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordRejected",
    "load_blocklist",
    "normalize",
    "raw_length_cap",
]

_BLOCKLIST = Path(__file__).parent / "data" / "common-passwords.txt"
_SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "01234567890", "qwertyuiopasdfghjklzxcvbnm")


class PasswordRejected(ValueError):
    """The password breaks one or more rules; ``reasons`` is a list of sentences."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def raw_length_cap(max_length: int) -> int:
    """The longest text normalised for a ``max_length`` password (code points, before NFKC).

    NFKC reorders runs of combining marks with an insertion sort: quadratic in the run, so a
    64 KB password of marks took 2 s with the GIL held. Longer texts are refused unread.
    Twice the limit leaves room for decomposed input (a base letter and its mark each).
    """
    return 2 * max_length


@lru_cache(maxsize=4)
def load_blocklist(extra: Path | None = None) -> frozenset[str]:
    words: set[str] = set()
    for file in (_BLOCKLIST, extra):
        if file is None:
            continue
        for line in file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                words.add(normalize(line).casefold())
    return frozenset(words)


def _without_trailing_non_letters(text: str) -> str:
    """``text`` without its trailing digits, punctuation, symbols and spaces.

    What ``re.sub(r"[\\d\\W_]+$", "", text)`` returns (``\\W`` is ``not isalnum()``
    apart from ``_``), in one pass from the end: the expression retried the run from every
    start position, quadratic in the run's length (16,000 digits took 1.8 s).
    """
    end = len(text)
    while end:
        char = text[end - 1]
        if char.isalnum() and not char.isdecimal() and char != "_":
            break
        end -= 1
    return text[:end]


def _repetitive_or_sequential(text: str) -> bool:
    lowered = text.casefold()
    if len(set(lowered)) <= 2:
        return True
    for seq in _SEQUENCES:
        for source in (seq, seq[::-1]):
            if len(lowered) >= 4 and lowered in source * 2:
                return True
    for period in range(1, len(lowered) // 2 + 1):
        if len(lowered) % period == 0 and lowered == lowered[:period] * (len(lowered) // period):
            return period <= 4
    return False


class PasswordPolicy:
    def __init__(self, settings: PasswordSettings, *, mfa_enforced: bool = False) -> None:
        self.settings = settings
        self.min_length = settings.min_length_with_mfa if mfa_enforced else settings.min_length
        self.max_length = settings.max_length
        self._blocklist = load_blocklist(settings.blocklist_file)

    def check(self, password: str, *, context: Iterable[str] = ()) -> str:
        """Return the normalised password or raise :class:`PasswordRejected` with reasons."""
        too_long = f"must be at most {self.max_length} characters long"
        if len(password) > raw_length_cap(self.max_length):
            raise PasswordRejected([too_long])  # not even normalised (see raw_length_cap)
        text = normalize(password)
        reasons: list[str] = []
        if len(text) < self.min_length:
            reasons.append(f"must be at least {self.min_length} characters long")
        if len(text) > self.max_length:
            # Nothing else is worth computing on a text this long.
            raise PasswordRejected([too_long])
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
            reasons.append("must not contain control characters")
        folded = text.casefold()
        stripped = _without_trailing_non_letters(folded)
        if folded in self._blocklist or stripped in self._blocklist:
            reasons.append("is a commonly used or breached password")
        elif _repetitive_or_sequential(folded) or _repetitive_or_sequential(stripped or folded):
            reasons.append("is repetitive or sequential")
        for word in self._context_words(context):
            if word not in folded:
                continue
            rest = folded.replace(word, "")
            if len(rest) < 8 or not re.search(r"[^\d\W_]", rest):
                reasons.append("is derived from the username, email or service name")
                break
        if reasons:
            raise PasswordRejected(reasons)
        return text

    @staticmethod
    def _context_words(context: Iterable[str]) -> set[str]:
        words = {"bastion"}
        for item in context:
            value = normalize(item).casefold()
            words.add(value)
            words.update(p for p in re.split(r"[@.\-_+\s]", value) if p)
        return {w for w in words if len(w) >= 3}


# Verified against the dummy hash when the user is unknown or the candidate too long.
_DUMMY_CANDIDATE = "bastion-identity-dummy-password"


class PasswordHasher:
    """Argon2id with the configured cost; a dummy hash equalises unknown-user timing.

    The async variants run the hash in a worker thread (argon2-cffi releases the GIL), so
    a login never stalls the event loop, and at most ``concurrency`` hashes run at once,
    which bounds memory (``memory_cost`` each) under a flood of logins.
    """

    def __init__(
        self, params: Argon2Settings, concurrency: int = 4, max_length: int = 4096
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        #: Longer candidates are not normalised, only refused (see :func:`raw_length_cap`).
        self._max_raw = raw_length_cap(max_length)
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )
        self._dummy = self._hasher.hash(_DUMMY_CANDIDATE)

    def hash(self, normalized_password: str) -> str:
        return self._hasher.hash(normalized_password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Constant work whether or not the user exists (``stored_hash=None``) and however
        long the candidate (one that no password can be is checked as a dummy)."""
        if len(password) > self._max_raw:
            stored_hash, password = None, _DUMMY_CANDIDATE
        try:
            self._hasher.verify(stored_hash or self._dummy, normalize(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored_hash is not None

    async def averify(self, stored_hash: str | None, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self.verify, stored_hash, password)

    async def ahash(self, normalized_password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash, normalized_password)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)

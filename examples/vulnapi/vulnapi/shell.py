"""An emulated ``sh -c "ping -c 1 $host"`` for the command-injection plant.

The vulnerable ping endpoint hands its input to this emulator instead of a real shell, so
the test suite never executes attacker-controlled commands, while the observable behaviour
(command output in the response, ``sleep`` delaying it) is that of a real injection.
"""

from __future__ import annotations

import asyncio
import re

_SEPARATORS = re.compile(r"\s*(?:;|\|\||&&|\||\n)\s*")
_SUBSHELL = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")
_ARITH = re.compile(r"\$\(\(\s*(\d+)\s*([-+*])\s*(\d+)\s*\)\)")


def _arith(match: re.Match[str]) -> str:
    left, op, right = int(match.group(1)), match.group(2), int(match.group(3))
    return str(left + right if op == "+" else left - right if op == "-" else left * right)


async def _run_one(command: str) -> str:
    words = command.split()
    if not words:
        return ""
    name, args = words[0], words[1:]
    if name == "ping":
        host = args[-1] if args else ""
        return f"PING {host}: 1 packets transmitted, 1 received\n"
    if name == "echo":
        return " ".join(args) + "\n"
    if name == "sleep" and args:
        try:
            seconds = min(float(args[0]), 5.0)
        except ValueError:
            return "sleep: invalid time interval\n"
        await asyncio.sleep(seconds)
        return ""
    if name == "id":
        return "uid=1000(vulnapi) gid=1000(vulnapi) groups=1000(vulnapi)\n"
    return f"sh: 1: {name}: not found\n"


async def run(command_line: str) -> str:
    """Evaluate a tiny subset of sh: ``;``/``|``/``&&`` lists, ``$((a+b))``, ``$(...)``."""
    command_line = _ARITH.sub(_arith, command_line)
    while True:
        match = _SUBSHELL.search(command_line)
        if match is None:
            break
        inner = match.group(1) if match.group(1) is not None else match.group(2)
        output = (await run(inner)).strip()
        command_line = command_line[: match.start()] + output + command_line[match.end() :]
    out = []
    for command in _SEPARATORS.split(command_line):
        out.append(await _run_one(command))
    return "".join(out)

"""Bodies built to be expensive to parse and check: each fills a size with one hostile pattern.

Shared by the bench (docs/bench.md, section 6) and tests/test_hostile_bodies.py. Each body is one
JSON text of ``size`` bytes or a little less, keyed ``message_id: "hostile"``.
"""

from __future__ import annotations

from collections.abc import Callable

HEAD = '{"message_id":"hostile",'


def _fields(size: int, value: str = "0") -> list[str]:
    """``"f0":0``, ``"f1":0``, ... filling about ``size`` bytes."""
    fields: list[str] = []
    used = len(HEAD) + 1
    while True:
        field = f'"f{len(fields)}":{value}'
        if used + len(field) + 1 > size:
            return fields
        fields.append(field)
        used += len(field) + 1


def repeated_names(size: int) -> str:
    """Unique names, then the last one again: found only once the whole object is read."""
    fields = _fields(size - 16)
    return HEAD + ",".join([*fields, fields[-1]]) + "}"


def deep_lists(size: int) -> str:
    depth = (size - len(HEAD) - 6) // 2
    return HEAD + '"d":' + "[" * depth + "]" * depth + "}"


def deep_maps(size: int) -> str:
    depth = (size - len(HEAD) - 8) // 6
    return HEAD + '"d":' + '{"a":' * depth + "1" + "}" * depth + "}"


def huge_exponents(size: int) -> str:
    """Exponents Decimal cannot hold (10**18 and more), as many as fit."""
    number = "1E1000000000000000000"
    count = (size - len(HEAD) - 8) // (len(number) + 1)
    return HEAD + '"n":[' + ",".join([number] * count) + "]}"


def long_string(size: int) -> str:
    return HEAD + '"s":"' + "x" * (size - len(HEAD) - 7) + '"}'


def long_number(size: int) -> str:
    """One number of as many digits as fit."""
    return HEAD + '"n":1' + "0" * (size - len(HEAD) - 6) + "}"


def many_fields(size: int) -> str:
    return HEAD + ",".join(_fields(size)) + "}"


def many_numbers(size: int) -> str:
    count = (size - len(HEAD) - 8) // 2
    return HEAD + '"n":[' + ",".join(["1"] * count) + "]}"


def long_names(size: int) -> str:
    """A 60,000-byte name holding a map of many small fields (a path string per field would copy it each time)."""
    name = "n" * 60_000
    inner = _fields(size - 60_000 - 16)
    return HEAD + f'"{name}":{{' + ",".join(field for field in inner) + "}}"


SHAPES: dict[str, Callable[[int], str]] = {
    "repeated names": repeated_names,
    "deep lists": deep_lists,
    "deep maps": deep_maps,
    "huge exponents": huge_exponents,
    "long string": long_string,
    "long number": long_number,
    "many fields": many_fields,
    "many numbers": many_numbers,
    "long names": long_names,
}
# SQS takes up to 1 MiB with the attributes: the quarantine's own (about 300 bytes) must still fit.
SIZES = {"256 KiB": 256 * 1024, "1 MiB": 1024 * 1024 - 1024}

"""A small TOML reader for broker configuration files on Python 3.9 and 3.10, which have
no ``tomllib``. It covers what the broker configuration uses: comments, ``key = value``
with strings, integers, floats, booleans and arrays of those, ``[table]`` and
``[[array-of-tables]]`` headers, and inline tables ``{ key = value, ... }``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["TOMLDecodeError", "loads"]


class TOMLDecodeError(ValueError):
    pass


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def loads(text: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    current = root
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        try:
            if line.startswith("[["):
                if not line.endswith("]]"):
                    raise TOMLDecodeError("bad array-of-tables header")
                parent, name = _walk(root, line[2:-2].strip())
                array = parent.setdefault(name, [])
                if not isinstance(array, list):
                    raise TOMLDecodeError(f"{name} is not an array of tables")
                current = {}
                array.append(current)
            elif line.startswith("["):
                if not line.endswith("]"):
                    raise TOMLDecodeError("bad table header")
                parent, name = _walk(root, line[1:-1].strip())
                current = parent.setdefault(name, {})
                if not isinstance(current, dict):
                    raise TOMLDecodeError(f"{name} is not a table")
            else:
                key, sep, rest = line.partition("=")
                if not sep:
                    raise TOMLDecodeError("expected key = value")
                value, tail = _value(rest.strip())
                if tail.strip():
                    raise TOMLDecodeError(f"unexpected {tail.strip()!r}")
                current[_key(key.strip())] = value
        except TOMLDecodeError as e:
            raise TOMLDecodeError(f"line {number}: {e}") from None
    return root


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == "\\" and quote == '"':
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _key(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if not _BARE_KEY.fullmatch(text):
        raise TOMLDecodeError(f"bad key {text!r}")
    return text


def _walk(root: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    parts = [_key(p.strip()) for p in dotted.split(".")]
    node = root
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if isinstance(nxt, list):
            nxt = nxt[-1]
        node = nxt
    return node, parts[-1]


_NUMBER = re.compile(r"[+-]?[0-9_]+(\.[0-9_]+)?([eE][+-]?[0-9]+)?")


def _value(text: str) -> tuple[Any, str]:
    if not text:
        raise TOMLDecodeError("missing value")
    ch = text[0]
    if ch == '"':
        out: list[str] = []
        i = 1
        escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                out.append(escapes.get(text[i + 1], text[i + 1]))
                i += 2
                continue
            if c == '"':
                return "".join(out), text[i + 1 :]
            out.append(c)
            i += 1
        raise TOMLDecodeError("unterminated string")
    if ch == "'":
        end = text.find("'", 1)
        if end < 0:
            raise TOMLDecodeError("unterminated string")
        return text[1:end], text[end + 1 :]
    if ch == "[":
        items: list[Any] = []
        rest = text[1:].lstrip()
        while not rest.startswith("]"):
            item, rest = _value(rest)
            items.append(item)
            rest = rest.lstrip()
            if rest.startswith(","):
                rest = rest[1:].lstrip()
            elif not rest.startswith("]"):
                raise TOMLDecodeError("expected , or ] in array")
        return items, rest[1:]
    if ch == "{":
        table: dict[str, Any] = {}
        rest = text[1:].lstrip()
        while not rest.startswith("}"):
            key, sep, after = rest.partition("=")
            if not sep:
                raise TOMLDecodeError("expected key = value in inline table")
            item, rest = _value(after.strip())
            table[_key(key.strip())] = item
            rest = rest.lstrip()
            if rest.startswith(","):
                rest = rest[1:].lstrip()
            elif not rest.startswith("}"):
                raise TOMLDecodeError("expected , or } in inline table")
        return table, rest[1:]
    for word, val in (("true", True), ("false", False)):
        if text.startswith(word):
            return val, text[len(word) :]
    m = _NUMBER.match(text)
    if m:
        s = m.group(0).replace("_", "")
        return (float(s) if (m.group(1) or m.group(2)) else int(s)), text[m.end() :]
    raise TOMLDecodeError(f"bad value {text!r}")

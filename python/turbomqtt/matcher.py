"""Topic-filter trie (mirrors ``paho.mqtt.matcher``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class MQTTMatcher:
    """Maps topic filters (with ``+``/``#`` wildcards) to values, and finds every value
    whose filter matches a topic name (MQTT 5.0 section 4.7)."""

    class Node:
        __slots__ = "_children", "_content"

        def __init__(self) -> None:
            self._children: dict[str, MQTTMatcher.Node] = {}
            self._content: Any = None

    def __init__(self) -> None:
        self._root = self.Node()

    def __setitem__(self, key: str, value: Any) -> None:
        node = self._root
        for level in key.split("/"):
            child = node._children.get(level)
            if child is None:
                child = node._children[level] = self.Node()
            node = child
        node._content = value

    def __getitem__(self, key: str) -> Any:
        node = self._root
        for level in key.split("/"):
            child = node._children.get(level)
            if child is None:
                raise KeyError(key)
            node = child
        if node._content is None:
            raise KeyError(key)
        return node._content

    def __delitem__(self, key: str) -> None:
        path: list[tuple[MQTTMatcher.Node, str, MQTTMatcher.Node]] = []
        node = self._root
        for level in key.split("/"):
            child = node._children.get(level)
            if child is None:
                raise KeyError(key)
            path.append((node, level, child))
            node = child
        if node._content is None:
            raise KeyError(key)
        node._content = None
        # Prune nodes left without content or children, deepest first.
        for parent, level, child in reversed(path):
            if child._children or child._content is not None:
                break
            del parent._children[level]

    def iter_match(self, topic: str) -> Iterator[Any]:
        """Iterate over the values of all filters matching ``topic``.

        ``#`` also matches the parent level; wildcards in the first level do not match
        topics starting with ``$`` (MQTT 5.0 section 4.7.2).
        """
        levels = topic.split("/")
        count = len(levels)
        normal = not topic.startswith("$")

        def walk(node: MQTTMatcher.Node, i: int) -> Iterator[Any]:
            children = node._children
            if i == count:
                if node._content is not None:
                    yield node._content
            else:
                child = children.get(levels[i])
                if child is not None:
                    yield from walk(child, i + 1)
                child = children.get("+")
                if child is not None and (normal or i > 0):
                    yield from walk(child, i + 1)
            child = children.get("#")
            if child is not None and (normal or i > 0) and child._content is not None:
                yield child._content

        return walk(self._root, 0)

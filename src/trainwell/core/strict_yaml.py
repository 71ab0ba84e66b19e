"""Reading YAML a person wrote, strictly: UTF-8 text only, no duplicate keys, bounded aliases.

PyYAML's ``safe_load`` accepts a mapping that names a key twice (the last one silently wins),
and expands aliases without limit: a "billion laughs" document of a few hundred bytes
(https://en.wikipedia.org/wiki/Billion_laughs_attack) builds a structure whose printed form
is gigabytes, so validating it or quoting it in an error takes minutes. This loader refuses
both before anything is built, and reads the file as UTF-8 with an error that says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trainwell.core.errors import UserError, shorten

MAX_NODES = 100_000      # a spec has a few hundred values; a search space a few thousand


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping naming one key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise UserError(f'the key "{key}" appears twice in one mapping (lines {seen[key]} and {line}); '
                                "YAML would silently keep the last one. Remove one of them.")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has once every alias is expanded, computed on the shared graph
    (each node counted once per reference, memoised), so a bomb is measured without expanding it."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1                     # a recursive alias counts once (YAML allows cycles)
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            total = 1
        sizes[id(node)] = total
        return total

    return size(root)


def read_text(path: Path, what: str) -> str:
    """The file's text as UTF-8, or a UserError naming the file and what it seems to be instead."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read: {exc.strerror}. Check the path and its permissions.") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}): "
                        "it looks like a binary file. Give a YAML text file.") from None


def _parse(text: str) -> Any:
    """Parse one document; raises yaml.YAMLError for bad syntax, UserError for what this module refuses."""
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        size = expanded_size(root)
        if size > MAX_NODES:
            raise UserError(f"it expands to {size:,} values once its YAML aliases (*name) are followed, "
                            f"more than the {MAX_NODES:,} a spec can hold. Write the values out, or remove the aliases.")
        return loader.construct_document(root)
    finally:
        loader.dispose()


def loads(text: str, where: str) -> Any:
    """Parse one YAML document strictly; ``where`` names it in errors (a file, an option)."""
    try:
        return _parse(text)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{where} is not valid YAML: {shorten(str(exc))}. Fix the syntax and retry.") from None


def value(raw: str, where: str) -> Any:
    """A ``--set`` value: YAML when it parses (strictly), else the text itself (``--set data.name=a:b``)."""
    try:
        return _parse(raw)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    except yaml.YAMLError:
        return raw


def load_file(path: Path, what: str = "Spec file") -> Any:
    """Read and parse a YAML file strictly (see ``loads``)."""
    return loads(read_text(path, what), f"{what} {path}")

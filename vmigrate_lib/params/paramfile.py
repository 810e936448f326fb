"""Reading a params file strictly: one clear line for every way a file can be wrong.

``yaml.safe_load`` takes the last of two equal keys without a word, builds a
"billion laughs" file (aliases of aliases) into a structure whose first
traversal or ``repr`` never ends, and lets a non-UTF-8 file or a NUL byte
surface as a traceback.  Here the file is bounded in size, decoded as UTF-8,
composed into YAML nodes, checked (duplicate keys, recursive aliases, the size
it expands to), and only then constructed.  No message repeats a value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ParameterError

MAX_BYTES = 1 << 20  #: a params file is a few dozen lines; 1 MiB is a wrong file
MAX_NODES = 20_000  #: values after alias expansion (a full example file has ~100)


def shown(value: object, limit: int = 40) -> str:
    """A key or name as it may appear in a message: printable and bounded."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (bool, int, float)) or value is None:
        text = repr(value)[: limit + 1]
    else:
        text = type(value).__name__
    text = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_params_file(path: str | Path) -> dict[str, Any]:
    """The mapping a params file holds, or :class:`ParameterError` (one line, exit 2)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError as exc:
        raise ParameterError(f"params file {p} does not exist", parameter="params") from exc
    except OSError as exc:
        raise ParameterError(f"cannot read params file {p}: {exc.strerror}",
                             parameter="params") from exc
    if len(data) > MAX_BYTES:
        raise ParameterError(f"params file {p} is larger than {MAX_BYTES >> 20} MiB",
                             hint="a params file is a few dozen lines: check the file name",
                             parameter="params")
    nul = data.find(b"\0")
    if nul >= 0:
        raise ParameterError(f"params file {p} holds a NUL byte (byte offset {nul})",
                             hint="a params file is text: save it again as plain UTF-8",
                             parameter="params")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParameterError(f"params file {p} is not UTF-8 text (byte offset {exc.start})",
                             hint="save it as UTF-8 (iconv -t UTF-8)", parameter="params") from exc
    raw = _load_yaml(text, p)
    if not isinstance(raw, dict):
        raise ParameterError(f"params file {p} must hold a mapping of names to values",
                             hint="write one name: value per line (see examples/lab.yaml)",
                             parameter="params")
    return raw


def _load_yaml(text: str, p: Path) -> Any:
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, p)
        return loader.construct_document(node)
    except RecursionError as exc:
        raise ParameterError(f"params file {p} nests too deeply",
                             hint="a params file has a few levels of sections",
                             parameter="params") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ParameterError(f"params file {p} is not valid YAML{where}",
                             hint="check indentation and colons; a params file is plain text",
                             parameter="params") from exc
    finally:
        if loader is not None:
            loader.dispose()


def _check_nodes(root: yaml.Node, p: Path) -> None:
    """Refuse duplicate keys, recursive aliases and more than MAX_NODES expanded values.

    Each node's expanded size is computed once (memoized by identity), so a
    bomb is measured in time proportional to the file, not to its expansion.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, path: str) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ParameterError(f"params file {p} holds a recursive YAML alias"
                                 + (f" under {path}" if path else ""),
                                 hint="write the values out instead of aliasing a value "
                                 "inside itself", parameter="params")
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                    name = f"{path}.{shown(k.value)}" if path else shown(k.value)
                    line = k.start_mark.line + 1
                    first = seen.get((k.tag, k.value))
                    seen[(k.tag, k.value)] = line
                    if first is not None:
                        raise ParameterError(
                            f"params file {p}: key {name} appears twice (lines {first} and "
                            f"{line})", hint="keep one of them; YAML would silently use the "
                            "last", parameter=name)
                else:
                    name = path
                total += size(k, name) + size(v, name)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item, path)
                if total > MAX_NODES:
                    break
        active.discard(key)
        if total > MAX_NODES:
            raise ParameterError(
                f"params file {p} expands to more than {MAX_NODES} values (YAML aliases)",
                hint="write the values out, or use fewer aliases", parameter="params")
        sizes[key] = total
        return total

    size(root, "")


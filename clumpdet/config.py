"""Dataclass configs loaded from YAML.

Every experiment knob is a field of a (nested) dataclass. YAML files and ``--set a.b=value``
overrides are merged onto the dataclass defaults; unknown keys are an error that names the
file, the key and the keys that do exist. The resolved config is saved next to every output.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from clumpdet.errors import ConfigError

C = TypeVar("C")


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Coerce a YAML value to the annotated field type (shallowly, with clear errors)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            out = [_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            inner = args[0] if args else Any
            out = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[C], data: Mapping[str, Any], *, where: str = "config") -> C:
    """Build dataclass ``cls`` from a mapping, recursively, rejecting unknown keys.

    Parameters
    ----------
    cls : type
        A dataclass type. Missing keys keep their defaults.
    data : mapping
        Values, typically parsed YAML.
    where : str
        Prefix for error messages (file name and key path).

    Raises
    ------
    ConfigError
        On unknown keys or values of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-python (YAML/JSON-safe) dict of a dataclass config; tuples become lists."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)


def parse_override_value(raw: str) -> Any:
    """The value of one ``--set key=value``: YAML, or the text itself where YAML does not fit.

    ``1e-3``, ``true``, ``[1, 2]`` and ``{a: 1}`` parse as YAML. Text that is not valid YAML
    (``{id}_h.fits``) and brace patterns without a ``key: value`` (``{id}``, ``{id}.fits``,
    which YAML would read as a set-like mapping) are taken as strings.
    """
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, dict) and ":" not in raw:
        return raw
    return value


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1, 2]"]`` into a nested dict (values: :func:`parse_override_value`)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p!r} is both a value and a section")
        node[parts[-1]] = parse_override_value(raw)
    return out


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``over`` onto ``base`` (``over`` wins), returning a new dict."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, following an optional top-level ``_base_`` list of relative files.

    Bases are merged in order, then the file itself on top (mmdetection-style composition).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    merged: dict[str, Any] = {}
    for b in bases:
        merged = deep_merge(merged, read_yaml(path.parent / b))
    return deep_merge(merged, data)


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    *,
    ignore_keys: Iterable[str] = (),
) -> C:
    """Load dataclass config ``cls`` from defaults, an optional YAML file and overrides.

    Parameters
    ----------
    cls : type
        Dataclass type whose defaults are the base.
    path : str or Path, optional
        YAML file (may use ``_base_``).
    overrides : iterable of "key=value" strings, or a nested mapping
        Applied last.
    ignore_keys : iterable of str
        Top-level keys of the file to drop (e.g. a simulation's ``_run_`` record).
    """
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    for key in ignore_keys:
        data.pop(key, None)
    over = parse_overrides(overrides) if not isinstance(overrides, Mapping) else overrides
    data = deep_merge(data, over)
    return from_dict(cls, data, where=str(path) if path is not None else "config")


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from clumpdet.utils import atomic_write

    with atomic_write(path, "w") as fh:
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False)

"""The one rule-based validator of the simulation configs, and their one loader.

A simulator's config is checked against a list of declarative :class:`Rule` objects, each a
key pattern (a dotted ``group.field`` name, or an :mod:`fnmatch` pattern such as ``"*_min"``
over every leaf) and a check of the value. The first failing rule raises a one-line
:class:`~clumpdet.errors.ConfigError` ``"<where>: <group.field>: <problem>"``.

Rule builders: :func:`positive`, :func:`non_negative`, :func:`fraction`, :func:`in_range`,
:func:`at_least`, :func:`ordered`, :func:`per_band`, :func:`weights`, :func:`band_names`,
:func:`one_of`, :func:`has_keys`, :func:`finite` and the general :func:`rule`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TypeVar

from clumpdet.errors import ConfigError

C = TypeVar("C")

#: ``check(key, value, config) -> problem`` (``None`` when the value is fine).
Check = Callable[[str, Any, Any], "str | None"]


@dataclass(frozen=True)
class Rule:
    """One declarative check.

    Attributes
    ----------
    pattern : str
        A dotted leaf key (``"psf.fwhm_min"``; it must exist) or an fnmatch pattern with ``*``
        (every matching leaf is checked; none need exist).
    check : callable
        ``check(key, value, config) -> str or None``: the problem, or ``None``.
    """

    pattern: str
    check: Check


def leaves(cfg: Any) -> dict[str, Any]:
    """``{"group.field": value}`` of a two-level dataclass config."""
    return {
        f"{g.name}.{f.name}": getattr(getattr(cfg, g.name), f.name)
        for g in dataclasses.fields(cfg)
        for f in dataclasses.fields(getattr(cfg, g.name))
    }


def validate(cfg: C, rules: Iterable[Rule], *, where: str = "config") -> C:
    """Check ``cfg`` against ``rules`` in order; return ``cfg`` unchanged.

    Raises
    ------
    ConfigError
        ``"<where>: <key>: <problem>"`` for the first failing rule.
    """
    values = leaves(cfg)
    for r in rules:
        if "*" in r.pattern:
            keys = [k for k in values if fnmatchcase(k, r.pattern)]
        elif r.pattern in values:
            keys = [r.pattern]
        else:
            raise KeyError(f"validation rule for unknown key {r.pattern!r}")
        for key in keys:
            problem = r.check(key, values[key], cfg)
            if problem:
                raise ConfigError(f"{where}: {key}: {problem}")
    return cfg


# --------------------------------------------------------------------------------------------
# rule builders


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def rule(
    *patterns: str, ok: Callable[[Any, Any], bool], problem: str | Callable[[Any], str]
) -> list[Rule]:
    """Rules ``ok(value, config)`` with the message ``problem`` (or ``problem(value)``)."""

    def check(key: str, v: Any, cfg: Any) -> str | None:
        if ok(v, cfg):
            return None
        return problem(v) if callable(problem) else problem

    return [Rule(p, check) for p in patterns]


def positive(*patterns: str) -> list[Rule]:
    """Finite numbers > 0."""
    return rule(
        *patterns,
        ok=lambda v, _: _number(v) and math.isfinite(v) and v > 0,
        problem=lambda v: f"must be > 0, got {v!r}",
    )


def non_negative(*patterns: str) -> list[Rule]:
    """Finite numbers >= 0 (for integers matched by a pattern: any integer >= 0)."""
    return rule(
        *patterns,
        ok=lambda v, _: not _number(v) or (math.isfinite(v) and v >= 0),
        problem=lambda v: f"must be >= 0, got {v!r}",
    )


def finite(*patterns: str) -> list[Rule]:
    """Floats that are not NaN or infinite (other values pass)."""
    return rule(
        *patterns,
        ok=lambda v, _: not isinstance(v, float) or math.isfinite(v),
        problem=lambda v: f"must be finite, got {v!r}",
    )


def in_range(lo: float, hi: float, *patterns: str, closed: str = "both") -> list[Rule]:
    """Numbers in ``[lo, hi]`` (``closed``: ``"both"``, ``"left"``, ``"right"``, ``"neither"``)."""
    left, right = closed in ("both", "left"), closed in ("both", "right")
    text = f"{'[' if left else '('}{lo:g}, {hi:g}{']' if right else ')'}"

    def ok(v: Any, _: Any) -> bool:
        if not _number(v) or math.isnan(v):
            return False
        return (v >= lo if left else v > lo) and (v <= hi if right else v < hi)

    return rule(*patterns, ok=ok, problem=lambda v: f"must be in {text}, got {v!r}")


def fraction(*patterns: str) -> list[Rule]:
    """Numbers in ``[0, 1]``."""
    return in_range(0.0, 1.0, *patterns)


def at_least(lo: float, *patterns: str) -> list[Rule]:
    """Numbers >= ``lo``."""
    return rule(
        *patterns,
        ok=lambda v, _: _number(v) and v >= lo,
        problem=lambda v: f"must be >= {lo:g}, got {v!r}",
    )


def ordered(*patterns: str, strict: bool = False) -> list[Rule]:
    """Each matching ``x_min`` (or ``min_x``, ``x_min_y``) is <= (``strict``: <) its sibling
    ``x_max`` (``max_x``, ``x_max_y``), when that exists."""

    def check(key: str, v: Any, cfg: Any) -> str | None:
        group, name = key.split(".")
        if name.endswith("_min") or "_min_" in name:
            hi_name = name.replace("_min", "_max", 1)
        elif name.startswith("min_"):
            hi_name = "max_" + name[4:]
        else:
            return None
        hi = getattr(getattr(cfg, group), hi_name, None)
        if hi is None or (v < hi if strict else v <= hi):
            return None
        return f"range inverted: {name}={v!r} {'>=' if strict else '>'} {hi_name}={hi!r}"

    return [Rule(p, check) for p in patterns]


def per_band(
    *patterns: str,
    bands: Sequence[str] | Callable[[Any], Sequence[str]],
    minimum: float = 0.0,
    strict: bool = True,
) -> list[Rule]:
    """``{band: value}`` mappings with a finite value > ``minimum`` (``strict=False``: >=) for
    every band of ``bands`` (a fixed list, or a function of the config such as its
    ``image.bands``)."""

    def check(key: str, v: Any, cfg: Any) -> str | None:
        want = bands(cfg) if callable(bands) else bands
        if not isinstance(v, Mapping):
            return f"expected a {{band: value}} mapping, got {v!r}"
        missing = [b for b in want if b not in v]
        if missing:
            return f"needs a value for every band {list(want)}; missing {missing}"
        bad = {
            b: v[b]
            for b in want
            if not (
                _number(v[b])
                and math.isfinite(v[b])
                and (v[b] > minimum if strict else v[b] >= minimum)
            )
        }
        if bad:
            return f"values must be finite and {'>' if strict else '>='} {minimum:g}, got {bad}"
        return None

    return [Rule(p, check) for p in patterns]


def weights(*patterns: str, length: int | None = None) -> list[Rule]:
    """Non-empty weight tuples, >= 0 with a positive sum (and ``length`` entries if given)."""

    def check(key: str, v: Any, cfg: Any) -> str | None:
        if length is not None and len(v) != length:
            return f"needs {length} weights, got {len(v)}"
        if not v:
            return "must list at least one weight"
        if not (all(_number(x) and math.isfinite(x) and x >= 0 for x in v) and sum(v) > 0):
            return f"weights must be >= 0 with a positive sum, got {list(v)}"
        return None

    return [Rule(p, check) for p in patterns]


def band_names(pattern: str, known: Sequence[str] | None = None) -> list[Rule]:
    """A non-empty list of distinct band names (from ``known`` when given)."""

    def check(key: str, v: Any, cfg: Any) -> str | None:
        if not v:
            return "must name at least one band"
        if len(set(v)) != len(v):
            return f"duplicates in {list(v)}"
        unknown = [b for b in v if known is not None and b not in known]
        if unknown:
            return f"unknown band {unknown[0]!r}; modelled bands: {list(known or ())}"
        return None

    return [Rule(pattern, check)]


def one_of(pattern: str, options: Sequence[Any]) -> list[Rule]:
    """A value from ``options``."""
    return rule(
        pattern, ok=lambda v, _: v in options, problem=lambda v: f"must be one of {list(options)}"
    )


def has_keys(*patterns: str, keys: Sequence[str]) -> list[Rule]:
    """Mappings with an entry for each of ``keys``."""
    return rule(
        *patterns,
        ok=lambda v, _: all(k in v for k in keys),
        problem=lambda v: f"needs entries {list(keys)}, got {sorted(v)}",
    )


def psf_rules() -> list[Rule]:
    """Rules of the PSF shape shared by every ``psf`` group (:class:`~.optics.PSFShape`)."""
    from clumpdet.sim.optics import PSF_PROFILES

    return [
        *one_of("psf.profile", PSF_PROFILES),
        *rule(
            "psf.moffat_beta",
            ok=lambda v, cfg: cfg.psf.profile != "moffat" or v > 1.1,
            problem="must be > 1.1 (finite flux)",
        ),
    ]


# --------------------------------------------------------------------------------------------
# loading


def load_sim_yaml(
    cls: type[C],
    path: str | Path | None,
    overrides: Iterable[str] | Mapping[str, Any],
    rules: Iterable[Rule],
) -> C:
    """Build a simulation config: the defaults of ``cls``, then the YAML file ``path`` (with
    ``_base_``), then ``overrides``, merged key by key (so a per-band mapping may give some
    bands only); then :func:`validate` it against ``rules``.

    A simulated folder's ``config.yaml`` loads too: its ``_run_`` block is ignored.

    Raises
    ------
    ConfigError
        A missing file, unknown keys, wrong types or a failing rule (naming the file and key).
    """
    from clumpdet.config import deep_merge, from_dict, parse_overrides, read_yaml, to_dict
    from clumpdet.sim.run import RUN_KEY

    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    data.pop(RUN_KEY, None)
    over = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    where = str(path) if path is not None else "config"
    merged = deep_merge(to_dict(cls()), deep_merge(data, over))
    cfg = from_dict(cls, merged, where=where)
    return validate(_float_bands(cfg), rules, where=where)


def _float_bands(cfg: C) -> C:
    """``cfg`` with the numbers of its ``{band: value}`` mappings as floats (YAML reads 500 as
    an integer)."""
    groups = {}
    for g in dataclasses.fields(cfg):  # type: ignore[arg-type]
        group = getattr(cfg, g.name)
        per_band = {
            f.name: {b: float(x) if _number(x) else x for b, x in getattr(group, f.name).items()}
            for f in dataclasses.fields(group)
            if isinstance(getattr(group, f.name), Mapping)
        }
        if per_band:
            groups[g.name] = dataclasses.replace(group, **per_band)
    return dataclasses.replace(cfg, **groups) if groups else cfg  # type: ignore[type-var]

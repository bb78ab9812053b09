"""A small name -> builder registry, one instance per family (backbones, heads, datasets ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from clumpdet.errors import RegistryError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Map stable names to builder callables.

    Parameters
    ----------
    family : str
        Human-readable family name used in error messages, e.g. ``"backbone"``.

    Examples
    --------
    >>> BACKBONES = Registry("backbone")
    >>> @BACKBONES.register("resnet18")
    ... def build_resnet18(*, bands: int = 3): ...
    >>> BACKBONES.get("resnet18") is build_resnet18
    True
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, *, help: str = "") -> Callable[[T], T]:
        """Decorator registering ``fn`` under ``name``; duplicate names are an error."""

        def deco(fn: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.family} {name!r} is already registered")
            self._items[name] = fn
            doc = (fn.__doc__ or "").strip().splitlines()
            self._help[name] = help or (doc[0] if doc else "")
            return fn

        return deco

    def get(self, name: str) -> T:
        """Return the builder for ``name``; unknown names list what exists."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise RegistryError(f"unknown {self.family} {name!r}; registered: {known}") from None

    def describe(self) -> dict[str, str]:
        """Name -> one-line description, sorted by name."""
        return {k: self._help[k] for k in sorted(self._items)}

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

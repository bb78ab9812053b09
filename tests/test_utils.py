"""Small shared helpers of clumpdet.utils."""

from __future__ import annotations

import sys

from clumpdet.utils import command_line


def test_command_line_quotes_the_arguments_of_the_script(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["tools/bench.py", "--out", "a b"])
    assert command_line() == "python tools/bench.py --out 'a b'"
    assert command_line(["--n", "3"]) == "python tools/bench.py --n 3"
    assert command_line([]) == "python tools/bench.py"


def test_lazy_exports_import_on_first_use_and_name_the_package(monkeypatch):
    import types

    import pytest

    from clumpdet.utils import lazy_exports

    pkg = types.ModuleType("fake_pkg")
    monkeypatch.setitem(sys.modules, "fake_pkg", pkg)
    pkg.__getattr__, pkg.__dir__ = lazy_exports("fake_pkg", {"sqrt": "math"})
    assert "sqrt" not in vars(pkg) and "sqrt" in pkg.__dir__()
    assert pkg.sqrt(4.0) == 2.0 and "sqrt" in vars(pkg)  # cached after the first use
    with pytest.raises(AttributeError, match="module 'fake_pkg' has no attribute 'cos'"):
        _ = pkg.cos

"""Small shared helpers of clumpdet.utils."""

from __future__ import annotations

import sys

from clumpdet.utils import command_line


def test_command_line_quotes_the_arguments_of_the_script(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["tools/bench.py", "--out", "a b"])
    assert command_line() == "python tools/bench.py --out 'a b'"
    assert command_line(["--n", "3"]) == "python tools/bench.py --n 3"
    assert command_line([]) == "python tools/bench.py"

"""Where the benchmarks keep their figures: bench/RESULTS.md, appended to with `--record`."""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def parser(description: str) -> argparse.ArgumentParser:
    """A benchmark's options, starting with ``--record``."""
    options = argparse.ArgumentParser(description=description)
    options.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    return options


def show(text: str, *, record: bool) -> None:
    """Print a report; with ``record``, also append it to RESULTS.md after a blank line."""
    print(text)
    if record:
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write("\n" + text)

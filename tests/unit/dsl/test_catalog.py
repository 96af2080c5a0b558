"""Event patterns over the catalog: `matching` finds exactly what `pattern_matches` accepts."""

from __future__ import annotations

import pytest

from dsl.catalog import Catalog, EventInfo, pattern_matches

NAMES = ["deal.funded", "deal.closed", "investment.created", "a.b.c", "a.deal.c", "deal"]
NAMES += ["deal.x.y"]
PATTERNS = ["deal.*", "*.funded", "*.*", "*", "a.*.c", "*.deal.*", "deal.*.y", "*.*.*", "de*"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_matching_finds_what_the_pattern_matches(pattern: str) -> None:
    events: dict[str, EventInfo] = dict.fromkeys(NAMES)  # type: ignore[arg-type]
    catalog = Catalog(events)
    expected = [name for name in NAMES if pattern_matches(pattern, name)]
    assert catalog.matching(pattern) == expected
    assert catalog.matching(pattern) == expected  # remembered

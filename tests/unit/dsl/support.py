"""A small catalog, templates, a helper to compile rule text against them; a generated rule set."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from dsl import Compilation, compile_rules

BASE_RULES = """\
event investment.created {
  investment_id: string
  user_id:       string
  amount:        decimal
  currency:      string = "usd"
  status:        "pending" | "active"
  investor:      { email: email, name: string }
  deal:          { id: string, name: string }
  note?:         string
  created_at:    timestamp
}

event investment.cancelled {
  investment_id: string
  reason?:       string
}

event deal.funded {
  deal_id:       string
  name:          string
  amount_raised: decimal
}

event transaction.completed {
  transaction_id: string
  user_id:        string
  amount:         decimal
}

template receipt {
  subject   = "Hi {{ name }}"
  html      = "receipt.html"
  variables = ["name", "amount"]
}

webhook ops {
  url    = "https://ops.example.com/hook"
  secret = env("OPS_SECRET")
  events = [deal.funded]
}

hook docusign {
  secret = env("DOCUSIGN_SECRET")
}
"""

TEMPLATES = {
    "receipt.html": "<p>{{ name }} paid {{ amount }}</p>",
    "bad.html": "<p>{% if %}</p>",
    "bad_filter.html": "<p>\n{{ name | shout }}</p>",
    "undeclared.html": "<p>{{ nme }}</p>",
    "layout.html": "<html>{{ content }}</html>",
    "samples/receipt.json": '{"name": "Ada", "amount": "10.00"}',
}


class Rules:
    """Compile rule text (as `case.ownly`) together with the base catalog."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.templates = root / "templates"
        for name, text in TEMPLATES.items():
            path = self.templates / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (root / "base.ownly").write_text(BASE_RULES)

    def compile(self, text: str, *, base: bool = True) -> Compilation:
        case = self.root / "case.ownly"
        case.write_text(text)
        paths = [self.root / "base.ownly", case] if base else [case]
        return compile_rules(paths, templates_dir=self.templates)


def webhook(body: str) -> str:
    """A valid webhook with `body` added from line 5."""
    return (
        "webhook w {\n"
        '  url    = "https://hooks.example.com/w"\n'
        '  secret = env("W_SECRET")\n'
        "  events = [investment.created]\n"
        f"{body}\n"
        "}\n"
    )


def workflow(steps: str) -> str:
    """A workflow on investment.created with `steps` from line 3."""
    return f"workflow f {{\n  on investment.created\n{steps}\n}}\n"


def template(body: str) -> str:
    """A template with `body` from line 2."""
    return f"template t {{\n{body}\n}}\n"


# A generated rule set: a catalog with two consts, and FILES files of four webhooks.
FILES = 120
TYPES = [f"ns{n}.{verb}" for n in range(8) for verb in ("created", "closed", "funded")]


def _generated_catalog() -> str:
    events = "".join(
        f'event {name} {{\n  id: string\n  amount: decimal\n  status: "a" | "b"\n}}\n'
        for name in TYPES
    )
    return events + "const LIMIT = 100\nconst UNUSED = 1\n"


def _generated_webhook(index: int) -> str:
    events = ", ".join(TYPES[(index + k) % len(TYPES)] for k in range(1 + index % 3))
    least = "LIMIT" if index % 50 == 7 else str(index)
    return (
        f"# hook {index}\n"
        f"webhook hook_{index} {{\n"
        f'  url    = "https://hooks.example.com/{index}"\n'
        f'  secret = env("HOOK_SECRET_{index % 4}")\n'
        f"  events = [{events}]\n"
        f'  when     event.data.amount >= {least} and event.data.status == "a"\n'
        "  retry    3 times, exponential 5s .. 1h\n"
        "  timeout  15s\n"
        "}\n"
    )


def write_generated(
    root: Path, broken: Mapping[int, Callable[[str], str]], files: int = FILES
) -> list[Path]:
    """Write the generated rule set under `root`, file `f`'s text passed through `broken[f]`."""
    (root / "templates").mkdir()
    (root / "catalog.ownly").write_text(_generated_catalog())
    paths = [root / "catalog.ownly"]
    for f in range(files):
        text = "\n".join(_generated_webhook(f * 4 + i) for i in range(4))
        path = root / f"rules_{f:03d}.ownly"
        path.write_text(broken[f](text) if f in broken else text)
        paths.append(path)
    return paths

"""``python -m engine`` is ``ownly``."""

from engine.cli import main

main(prog_name="ownly")

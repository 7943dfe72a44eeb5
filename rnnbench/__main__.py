"""``python -m rnnbench``: the ``rnnbench`` command."""

from .cli import main

main(prog_name="rnnbench")

"""``python -m rnnbench``: the ``rnnbench`` command."""

from .cli import main

if __name__ == "__main__":  # not when a tool imports every module
    main(prog_name="rnnbench")

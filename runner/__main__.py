"""``python -m runner`` is the same Hydra app as the ``tape-runner`` console script."""

from runner.cli.main import main

main()

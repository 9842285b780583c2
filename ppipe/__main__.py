"""`python -m ppipe` is the `ppipe` command."""

from ppipe.cli import main

main()

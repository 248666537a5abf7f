"""`python -m eventbook.cli`: the same as the `eventbook` script."""

from eventbook.cli.app import main

main()

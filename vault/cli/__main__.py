"""``python -m vault.cli …`` runs the ``genovault`` command line."""

from vault.cli.main import main

main()

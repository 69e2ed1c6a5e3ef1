"""``python -m dirchain`` runs the command line."""

from dirchain.cli import app

app()

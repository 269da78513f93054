"""``python -m qkdnet`` runs the command-line interface."""

from qkdnet.cli import app

app()

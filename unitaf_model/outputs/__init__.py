"""Outputs: face-track file formats animation tools import, and preview rendering."""

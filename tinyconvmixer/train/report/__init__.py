"""Pictures of a run: curves.png and filters.png (plots.py), --diagnostics (diagnostics.py)."""

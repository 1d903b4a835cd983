"""Small utilities shared by data/ and train/: atomic file writes, the console's status line."""

"""Small utilities: atomic file writes and the console's status line (shared by data/ and train/),
and gpu_doctor.py, which tells why CuPy does not work on a machine (engine/backend.py asks it)."""

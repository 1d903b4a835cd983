"""Small utilities shared by data/, train/ and the engine's device errors.

    atomic.py       atomic file writes: a file is the old version or the new one, never half
    statusline.py   the console's status line, fitted to the terminal's width
    paths.py        paths in messages (quoted, one line) and what is at a path (a device, a pipe...)
    streams.py      stdout and stderr that never stop a command (closed, a broken pipe, any encoding)
    gpu_doctor.py   why CuPy does not work on a machine, and the fix (engine/backend.py asks it)
"""

"""Paths in messages: always on one line, whatever the name holds; and what is at a path.

A file name may hold spaces, quotes, a newline, or bytes that are not valid in
the locale's encoding (Python keeps those as lone surrogates such as '\\udcff').
Printed as they are, they split a one-line error in two, or make the console
raise UnicodeEncodeError. So, as GNU's tools do:

    quoted(path)   errors and warnings, always: 'runs/my run' (Python's repr: a newline,
                   a tab and undecodable bytes become escapes, \\n, \\t, \\udcff)
    shown(path)    ordinary output: the path as it is when it is plain, quoted otherwise

`kind(path)` says what is at a path ("a folder", "a character device", "a broken
symbolic link", ..., None when nothing is there), so that `--data /dev/zero` is
named as a device instead of "does not exist".
"""

import os
import stat

_KINDS = ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"))


def _text(path):
    return os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)


def quoted(path):
    """The path in quotes, every character that could break the line escaped: for errors."""
    return repr(_text(path))


def shown(path):
    """The path as it is when it is plain (printable, no spaces or quotes), else quoted(path)."""
    text = _text(path)
    plain = text.isprintable() and not any(c.isspace() or c in "'\"\\" for c in text)
    return text if plain and text else quoted(text)


def kind(path):
    """What is at `path` (symbolic links followed): "a file", "a folder", "a character device",
    "a block device", "a named pipe", "a socket", "a broken symbolic link", "not accessible
    (<reason>)", or None when nothing is there."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "a broken symbolic link" if os.path.islink(path) else None
    except ValueError:                                  # a NUL byte in the name
        return "not a valid path (it holds a NUL byte)"
    except OSError as exc:                              # permission denied, a loop of links, too long
        return f"not accessible ({exc.strerror or exc})"
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a special file"

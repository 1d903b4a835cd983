"""Text that fits the terminal: 80 columns, or the terminal's width where it is wider.

The commands of gradcheck/ and exercises/ print tables, paragraphs and messages
that must stay readable in an 80-column terminal (a laptop's split pane, tmux,
a projector in class) and may use more room where there is more:

    width()                   max(80, the terminal's columns; $COLUMNS when set)
    paragraph(label, text)    text wrapped under a hanging label ("why: ...")
    wrap(text, indent)        the same with a plain indent
    table(columns, rows)      columns that fit: optional columns go first, then
                              the one flexible column (a name) wraps onto more lines
"""

import shutil
import textwrap
from dataclasses import dataclass

MIN_WIDTH = 80


def width():
    """The width to print to: the terminal's columns, but never fewer than 80."""
    return max(MIN_WIDTH, shutil.get_terminal_size((MIN_WIDTH, 24)).columns)


def paragraph(label, text, limit=None):
    """`text` wrapped to the width, the first line after `label`, the others under it."""
    return textwrap.fill(text, limit or width(), initial_indent=label, subsequent_indent=" " * len(label),
                         break_on_hyphens=False, break_long_words=False)


def wrap(text, indent="", limit=None, first=None):
    """Lines of `text` wrapped to the width, each after `indent` (the first after `first`). A word
    longer than a line (a long path) is kept whole: it can be copied."""
    lines = []
    for k, part in enumerate(str(text).split("\n")):
        lead = indent if (k or first is None) else first
        lines += textwrap.wrap(part, limit or width(), initial_indent=lead, subsequent_indent=" " * len(indent),
                               break_on_hyphens=False, break_long_words=False) or [lead.rstrip()]
    return lines


@dataclass
class Column:
    header: str
    align: str = "<"        # '<' left, '>' right
    gap: int = 1            # spaces before the column (none before the first)
    optional: int = 0       # 0: always shown; 1, 2, ...: left out in this order when space runs short


def table(columns, rows, notes=None, flex=0, limit=None, min_flex=14):
    """The lines of a table that fits `limit` columns (default: width()).

    columns: Column per column; rows: one list of strings per row; flex: the index of the
    column that may wrap onto more lines (a name). notes[k], when given, is printed under
    row k, indented and wrapped: messages that would make a row too long.
    """
    limit = limit or width()
    shown = list(range(len(columns)))
    widths = [max([len(columns[c].header)] + [len(r[c]) for r in rows]) for c in range(len(columns))]

    def total(cols, flex_width=None):
        return sum((columns[c].gap if i else 0) + (flex_width if c == flex and flex_width else widths[c])
                   for i, c in enumerate(cols))

    for level in sorted({c.optional for c in columns if c.optional}):
        if total(shown) <= limit:
            break
        shown = [c for c in shown if columns[c].optional != level or c == flex]
    flex_width = widths[flex]
    if total(shown) > limit:
        flex_width = max(min_flex, widths[flex] - (total(shown) - limit))

    def render(cells):
        parts = []
        for i, c in enumerate(shown):
            w = flex_width if c == flex else widths[c]
            text = f"{cells[c]:{columns[c].align}{w}}"
            parts.append((" " * columns[c].gap if i else "") + text)
        return "".join(parts).rstrip()

    lines = [render([col.header for col in columns])]
    for k, row in enumerate(rows):
        pieces = textwrap.wrap(row[flex], flex_width, subsequent_indent="  ", break_on_hyphens=False) or [""]
        lines.append(render([pieces[0] if c == flex else cell for c, cell in enumerate(row)]))
        for more in pieces[1:]:
            lines.append(render([more if c == flex else "" for c in range(len(columns))]))
        if notes and notes[k]:
            lines += wrap(notes[k], indent=" " * 4, limit=limit)
    return lines

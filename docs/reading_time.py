"""How long walkthrough.md takes: minutes per step, counted from the text itself.

    python docs/reading_time.py            # every step's minutes, the side roads and the totals
    python docs/reading_time.py --check    # exit code 1 when the minutes the walkthrough states drift
    python docs/reading_time.py --update   # write the counted minutes into the walkthrough's contents
                                           # and into docs/teaching.md's lesson plan

A student does not read a course like a novel. The count therefore weighs what
is on the page, at rates calibrated on the previous edition of the walkthrough
(the numbers are in RATES; the walkthrough's introduction states them too):

    prose                  100 words a minute
    formulas and code      2 more seconds for each word inside `backticks`
    derivations            1 line a minute: every ```text block that is not the
                           output of the block before it (derivations, shapes, pseudocode)
    code                   4 lines a minute, ```python and ```bash alike: read it,
                           paste it, run it
    printed output         20 lines a minute: compare it with yours
    a figure               1 minute
    a required exercise    its reading, plus the time to write it: 1.5 minutes a
                           line of its solution, at least 5 minutes

Calibration: these rates count the previous edition (the one whose introduction
promised "about 90 minutes") at 405 minutes. A reader who timed a careful,
second-year-student reading of that edition took about six hours (issue 23),
and docs/teaching.md planned 415 minutes for the same steps: 405 lies within 13%
of both. The rates are a model, not a measurement of you: the test holds the
stated minutes to this count, so a step that grows gets its time back.

The units are the '## ' sections (the introduction before the first of them,
the prologue, Steps 0-15, "Why ConvMixer", "Where to go from here"). A
'### Side road:' section is a unit of its own, outside the core path. An
exercise is the text from its '**Exercise N.M (required|optional)' line to the
'</details>' that closes its solution; a required one belongs to its step, an
optional one is counted apart (the core path never needs it).
"""

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WALKTHROUGH = REPO / "walkthrough.md"

RATES = {"words": 100, "formula_words": 30, "derivation_lines": 1, "code_lines": 4, "output_lines": 20}
FIGURE_MINUTES = 1.0
EXERCISE_MINUTES_PER_LINE = 1.5
EXERCISE_MINUTES_AT_LEAST = 5.0

FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)\s*$")
HEADING = re.compile(r"^(#{1,6}) (.*)$")
EXERCISE = re.compile(r"^\*\*Exercise (\d+\.\d+) \((required|optional)\)")
FIGURE = re.compile(r"!\[[^\]]*\]\([^)]+\)")
CODE_SPAN = re.compile(r"`([^`]+)`")
STATED = re.compile(r"\]\(#([\w-]+)\)[^\[\n]*?(\d+) min")
TOTALS = re.compile(r"Core path: (\d+) minutes.*?of which (\d+) for the required exercises.*?"
                    r"side roads add (\d+) minutes.*?optional exercises (\d+)", re.S)


def anchor(heading):
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@dataclass
class Tally:
    """What one stretch of the text holds, and the minutes it takes at RATES."""
    words: int = 0
    formula_words: int = 0
    derivation_lines: int = 0
    code_lines: int = 0
    output_lines: int = 0
    figures: int = 0
    exercise_minutes: float = 0.0      # writing the required exercises' solutions

    @property
    def minutes(self):
        reading = sum(getattr(self, name) / rate for name, rate in RATES.items())
        return reading + self.figures * FIGURE_MINUTES + self.exercise_minutes

    def add(self, other):
        for name in ("words", "formula_words", "derivation_lines", "code_lines", "output_lines", "figures",
                     "exercise_minutes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Unit:
    """A step (or the introduction, the prologue, a side road): its title, anchor and tally."""
    title: str
    anchor: str
    side_road: bool
    start: int                          # 1-based first line
    end: int = 0                        # 1-based last line
    tally: Tally = field(default_factory=Tally)
    optional: Tally = field(default_factory=Tally)     # its optional exercises, counted apart
    required_exercises: list = field(default_factory=list)

    @property
    def minutes(self):
        return self.tally.minutes


def classify(lines):
    """Per line (0-based): 'prose', 'fence', 'python', 'bash', 'output', 'derivation' or 'other'
    (another language), after the walkthrough's rules: a ```text block right after a python or
    bash block, with only blank lines between, is that block's output."""
    kinds = ["prose"] * len(lines)
    i, previous = 0, None              # previous: (lang, index of the closing fence)
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, fence, start = m.group(3).lower(), m.group(2), i
        kinds[i] = "fence"
        i += 1
        while i < len(lines) and lines[i].strip() != fence:
            i += 1
        end = min(i, len(lines) - 1)
        kinds[end] = "fence"
        after = previous is not None and previous[0] in ("python", "bash") and \
            all(not s.strip() for s in lines[previous[1] + 1:start])
        kind = {"python": "python", "bash": "bash"}.get(lang)
        if lang == "text":
            kind = "output" if after else "derivation"
        for k in range(start + 1, end):
            kinds[k] = kind or "other"
        previous = (lang, end)
        i = end + 1
    return kinds


def tally_line(line, kind, tally):
    if kind == "prose":
        if line.strip().startswith("<!--") or line.strip() in ("<details>", "</details>"):
            return
        text = re.sub(r"</?(details|summary)>", " ", line)
        tally.words += len(text.split())
        tally.formula_words += sum(len(span.split()) for span in CODE_SPAN.findall(text))
        tally.figures += len(FIGURE.findall(text))
    elif kind in ("python", "bash") and line.strip():
        tally.code_lines += 1
    elif kind == "output" and line.strip():
        tally.output_lines += 1
    elif kind == "derivation" and line.strip():
        tally.derivation_lines += 1


def exercise_regions(lines, kinds, strict=True):
    """[(first, last, number, required)] 0-based, inclusive: an exercise runs from its bold title
    to the '</details>' that closes its solution."""
    regions, i = [], 0
    while i < len(lines):
        m = EXERCISE.match(lines[i]) if kinds[i] == "prose" else None
        if not m:
            if strict and kinds[i] == "prose" and re.match(r"\*\*Exercise \d", lines[i]):
                raise ValueError(f"walkthrough.md:{i + 1}: an exercise must say '(required)' or '(optional)' "
                                 f"after its number: {lines[i][:60]}")
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not (kinds[end] == "prose" and lines[end].strip() == "</details>"):
            end += 1
        if end == len(lines):
            raise ValueError(f"walkthrough.md:{i + 1}: exercise {m.group(1)} has no </details> closing its solution")
        regions.append((i, end, m.group(1), m.group(2) == "required"))
        i = end + 1
    return regions


def units(text, strict=True):
    """The walkthrough's units, in order, each with its tally. strict=False reads exercises that
    say neither '(required)' nor '(optional)' as plain text (the previous edition's, for calibration)."""
    lines = text.split("\n")
    kinds = classify(lines)
    result, current, title = [], None, None
    for n, line in enumerate(lines):
        h = HEADING.match(line) if kinds[n] == "prose" else None
        if not h:
            continue
        level, heading = len(h.group(1)), h.group(2)
        if level == 1:
            title = heading
            current = Unit("Introduction", anchor(heading), False, n + 1)
            result.append(current)
        elif level == 2 and heading != "Contents":
            current = Unit(heading, anchor(heading), False, n + 1)
            result.append(current)
        elif level == 3 and heading.startswith("Side road:"):
            result.append(Unit(heading, anchor(heading), True, n + 1))
        elif level == 3 and result[-1].side_road:
            result.append(Unit(current.title, current.anchor, False, n + 1))   # back on the core path
            result[-1].continued = True
    if title is None:
        raise ValueError("walkthrough.md has no title")
    for unit, following in zip(result, result[1:] + [None]):
        unit.end = following.start - 1 if following else len(lines)
    # a step interrupted by a side road continues in a second unit: fold them together
    merged = []
    for unit in result:
        if getattr(unit, "continued", False):
            main = next(u for u in reversed(merged) if u.anchor == unit.anchor and not u.side_road)
            main.ranges.append((unit.start, unit.end))
            continue
        unit.ranges = [(unit.start, unit.end)]
        merged.append(unit)
    in_exercise = {}
    for first, last, number, required in exercise_regions(lines, kinds, strict):
        for k in range(first, last + 1):
            in_exercise[k] = (number, required, first, last)
    for unit in merged:
        for start, end in unit.ranges:
            for k in range(start - 1, end):
                where = in_exercise.get(k)
                if where and not where[1]:
                    tally_line(lines[k], kinds[k], unit.optional)
                else:
                    tally_line(lines[k], kinds[k], unit.tally)
                if where and k == where[3]:          # the exercise's last line: its writing time
                    number, required, first, last = where
                    solution = sum(1 for j in range(first, last + 1) if kinds[j] == "python" and lines[j].strip()
                                   and _inside_details(lines, first, j))
                    minutes = max(EXERCISE_MINUTES_AT_LEAST, EXERCISE_MINUTES_PER_LINE * solution)
                    (unit.tally if required else unit.optional).exercise_minutes += minutes
                    if required:
                        unit.required_exercises.append((number, minutes))
    return merged


def _inside_details(lines, first, j):
    """Whether line j of the exercise starting at `first` lies inside its <details> (the solution)."""
    return any(lines[k].strip().startswith("<details>") for k in range(first, j))


def stated_minutes(text):
    """{anchor: minutes} as the contents list states them, and the stated totals (or None)."""
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0] if "## Contents" in text else ""
    stated = {a: int(m) for a, m in STATED.findall(contents)}
    totals = TOTALS.search(contents)
    return stated, tuple(int(g) for g in totals.groups()) if totals else None


def rounded(minutes):
    """The minutes to state: the count rounded to 5, at least 5."""
    return max(5, int(5 * math.floor(minutes / 5 + 0.5)))


def totals(all_units):
    core = [u for u in all_units if not u.side_road]
    required = sum(m for u in core for _, m in u.required_exercises)
    return (sum(u.minutes for u in core), required, sum(u.minutes for u in all_units if u.side_road),
            sum(u.optional.minutes for u in all_units))


def problems(text, tolerance_minutes=3, tolerance_share=0.10):
    """Where the stated minutes drift from the count (an empty list when they agree)."""
    found = []
    all_units = units(text)
    stated, stated_totals = stated_minutes(text)
    for unit in all_units:
        if unit.anchor not in stated:
            found.append(f"{unit.title}: the contents state no minutes for it (count: {unit.minutes:.0f})")
            continue
        allowed = max(tolerance_minutes, tolerance_share * unit.minutes)
        if abs(stated[unit.anchor] - unit.minutes) > allowed:
            found.append(f"{unit.title}: stated {stated[unit.anchor]} min, counted {unit.minutes:.1f}")
    if stated_totals is None:
        found.append("the contents no longer state the totals ('Core path: N minutes ...')")
    else:
        for name, said, counted in zip(("core path", "required exercises", "side roads", "optional exercises"),
                                       stated_totals, totals(all_units)):
            if abs(said - counted) > max(tolerance_minutes, 0.05 * counted):
                found.append(f"{name}: stated {said} min, counted {counted:.1f}")
        core_sum = sum(stated.get(u.anchor, 0) for u in all_units if not u.side_road)
        if abs(core_sum - stated_totals[0]) > 5:
            found.append(f"the core path's stated steps add up to {core_sum} min, its total says {stated_totals[0]}")
    return found


def update(text):
    """The text with the contents' minutes and totals replaced by the count (rounded to 5)."""
    all_units = units(text)
    head, rest = text.split("## Contents", 1)
    contents, tail = (rest.split("\n## ", 1) + [""])[:2]
    for unit in all_units:
        contents = re.sub(rf"(\]\(#{re.escape(unit.anchor)}\)[^\[\n]*?)\d+( min)",
                          lambda m: f"{m.group(1)}{rounded(unit.minutes)}{m.group(2)}", contents)
    core, required, side, optional = totals(all_units)
    stated_core = sum(rounded(u.minutes) for u in all_units if not u.side_road)
    numbers = iter([stated_core, rounded(required), rounded(side), rounded(optional)])
    contents = re.sub(r"(Core path: )(\d+)( minutes)", lambda m: f"{m.group(1)}{stated_core}{m.group(3)}", contents)
    contents = re.sub(r"\(about [\d.]+ hours\)", f"(about {stated_core / 60:.0f} hours)", contents)
    next(numbers)
    for label in (r"of which ", r"side roads add ", r"optional exercises "):
        value = next(numbers)
        contents = re.sub(rf"({label})(\d+)", lambda m: f"{m.group(1)}{value}", contents, count=1)
    return head + "## Contents" + contents + ("\n## " + tail if tail else "")


PLAN_ENTRY = re.compile(r"(Introduction|Prologue|Step \d+|Why ConvMixer|Where next) \((\d+)\)")


def plan_name(unit):
    """The name docs/teaching.md's lesson plan gives a unit: 'Step 3', 'Prologue', ..."""
    step = re.match(r"Step (\d+):", unit.title)
    if step:
        return f"Step {step.group(1)}"
    return {"Introduction": "Introduction", "Why ConvMixer": "Why ConvMixer",
            "Where to go from here": "Where next"}.get(unit.title, "Prologue")


def update_plan(teaching, text):
    """docs/teaching.md's text with its lesson plan's minutes set to those the walkthrough states."""
    stated, stated_totals = stated_minutes(text)
    minutes = {plan_name(u): stated[u.anchor] for u in units(text) if not u.side_road and u.anchor in stated}
    head, plan = teaching.split("## Lesson plan", 1)
    plan, tail = (plan.split("\n## ", 1) + [""])[:2]
    plan = PLAN_ENTRY.sub(lambda m: f"{m.group(1)} ({minutes.get(m.group(1), m.group(2))})", plan)
    if stated_totals:
        plan = re.sub(r"\d+(\s+minutes\s+of\s+reading,\s+running)", lambda m: f"{stated_totals[0]}{m.group(1)}", plan)
    return head + "## Lesson plan" + plan + ("\n## " + tail if tail else "")


def table(all_units):
    rows = ["unit                                                   minutes  stated  words  code  deriv  exercises"]
    for u in all_units:
        t = u.tally
        name = ("  side road: " + u.title[len("Side road: "):]) if u.side_road else u.title
        rows.append(f"{name[:54]:54} {u.minutes:7.1f}  {rounded(u.minutes):6d}  {t.words:5d}  {t.code_lines:4d}  "
                    f"{t.derivation_lines:5d}  {t.exercise_minutes:9.1f}")
    core, required, side, optional = totals(all_units)
    rows.append(f"core path {core:.0f} min ({core / 60:.1f} h), of which {required:.0f} for the required exercises; "
                f"side roads {side:.0f} min; optional exercises {optional:.0f} min")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the stated minutes drift from the count")
    parser.add_argument("--update", action="store_true", help="write the counted minutes into the contents "
                        "(and, for walkthrough.md, into docs/teaching.md's lesson plan)")
    parser.add_argument("path", nargs="?", default=str(WALKTHROUGH), help="the markdown file (default: walkthrough.md)")
    args = parser.parse_args(argv)
    text = Path(args.path).read_text(encoding="utf-8")
    all_units = units(text)
    print(table(all_units))
    if args.update:
        text = update(text)
        Path(args.path).write_text(text, encoding="utf-8")
        print(f"updated the minutes in {args.path}")
        if Path(args.path).resolve() == WALKTHROUGH:
            plan = REPO / "docs" / "teaching.md"
            plan.write_text(update_plan(plan.read_text(encoding="utf-8"), text), encoding="utf-8")
            print(f"updated the lesson plan's minutes in {plan.relative_to(REPO)}")
    if args.check:
        found = problems(text)
        for p in found:
            print("drift:", p, file=sys.stderr)
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

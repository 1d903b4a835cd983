"""Grading a class: `check --json`, Gradescope's results.json, the rubric, and the hidden seed."""

import json
import re

import pytest

from tinyconvmixer.exercises import EXERCISES, find, grading
from tinyconvmixer.exercises.__main__ import main
from tinyconvmixer.exercises.checker import SOLUTIONS

# Gradescope's results.json, as documented in "Autograder Specifications", Output format
# (https://gradescope-autograders.readthedocs.io/en/latest/specs/): every field is optional; a
# test's score is required unless there is a top-level score; visibility and status take the
# listed values; formats are text, html, simple_format, md or ansi.
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
NUMBER = {"type": "number"}
GRADESCOPE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "score": NUMBER, "execution_time": NUMBER, "output": {"type": "string"}, "output_format": FORMAT,
        "test_output_format": FORMAT, "test_name_format": FORMAT, "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY, "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "score": NUMBER, "max_score": NUMBER, "status": {"enum": ["passed", "failed"]},
                "name": {"type": "string"}, "name_format": FORMAT, "number": {"type": "string"},
                "output": {"type": "string"}, "output_format": FORMAT,
                "tags": {"type": "array", "items": {"type": "string"}}, "visibility": VISIBILITY,
                "extra_data": {"type": "object"}}}},
        "leaderboard": {"type": "array", "items": {
            "type": "object", "required": ["name", "value"],
            "properties": {"name": {"type": "string"}, "order": {"enum": ["asc", "desc"]}}}},
    },
}
TYPES = {"object": dict, "array": list, "string": str, "number": (int, float)}


def validate(value, schema, where="results"):
    """The subset of JSON Schema used above (type, enum, properties, additionalProperties,
    items, required): a list of problems, empty when the value follows the schema."""
    problems = []
    if "type" in schema and (not isinstance(value, TYPES[schema["type"]]) or isinstance(value, bool)):
        return [f"{where}: {type(value).__name__}, not {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                problems.append(f"{where}: {key} is missing")
        for key, item in value.items():
            if key in schema.get("properties", {}):
                problems += validate(item, schema["properties"][key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: {key} is not a documented field")
    if isinstance(value, list) and "items" in schema:
        for k, item in enumerate(value):
            problems += validate(item, schema["items"], f"{where}[{k}]")
    return problems


def gradescope_problems(results):
    problems = validate(results, GRADESCOPE_SCHEMA)
    if "score" not in results and any("score" not in t for t in results.get("tests", [])):
        problems.append("a test has no score and there is no top-level score")
    try:
        import jsonschema
    except ImportError:
        return problems
    return problems + [e.message for e in jsonschema.Draft7Validator(GRADESCOPE_SCHEMA).iter_errors(results)]


def test_the_validator_sees_what_the_spec_forbids():
    assert gradescope_problems({"score": 1.0, "tests": [{"name": "a", "status": "passed"}]}) == []
    assert gradescope_problems({"tests": [{"name": "a", "max_score": 2}]})                 # no score anywhere
    assert gradescope_problems({"score": 1, "tests": [{"status": "ok"}]})                  # not passed/failed
    assert gradescope_problems({"score": "1"})                                              # a string
    assert gradescope_problems({"score": 1, "visibility": "students"})
    assert gradescope_problems({"score": 1, "tests": [{"name": "a", "points": 3}]})        # an undocumented field


@pytest.fixture
def demo(tmp_path):
    """Reference solutions, with exercise 7 wrong (its variance term dropped)."""
    folder = tmp_path / "demo"
    main(["new", str(folder), "--solutions"])
    path = folder / find("batchnorm").file
    path.write_text(path.read_text().replace(" - through_var", ""))
    return folder


def test_gradescope_results_follow_the_spec(demo, tmp_path, capsys):
    results = tmp_path / "results.json"
    code = main(["check", "cross_entropy", "batchnorm", "--dir", str(demo), "--seed", "3",
                 "--gradescope", str(results)])
    assert code == 1
    out = capsys.readouterr().out
    data = json.loads(results.read_text())
    assert gradescope_problems(data) == []
    assert [t["name"] for t in data["tests"]] == ["9 cross_entropy", "7 batchnorm"]
    assert [(t["score"], t["max_score"], t["status"]) for t in data["tests"]] == [(10, 10, "passed"),
                                                                                  (0, 20, "failed")]
    assert data["score"] == 10 and "1 of 2 exercises pass" in data["output"]
    assert data["tests"][1]["output"].startswith("7 batchnorm          FAIL:")
    assert "dx[" in data["tests"][1]["output"] and "(dweight, dbias: right)" in data["tests"][1]["output"]
    assert all(len(line) <= 80 for t in data["tests"] for line in t["output"].splitlines())
    assert f"results in {results}" in " ".join(out.split())


def test_check_json_has_every_check_and_the_points(demo, capsys):
    assert main(["check", "--dir", str(demo), "--seed", "4", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)                # nothing else on stdout
    assert data["seed"] == 4 and data["max_score"] == 100 and data["score"] == 80 and data["passed"] == 8
    by_name = {e["name"]: e for e in data["exercises"]}
    assert [e["name"] for e in data["exercises"]] == [e.name for e in EXERCISES]
    bn = by_name["batchnorm"]
    assert bn["status"] == "FAIL" and bn["score"] == 0 and bn["failing"] > 0
    assert {line["part"] for line in bn["lines"] if line["status"] == "FAIL" and line["kind"] == "call"} == {"dx"}
    assert all(line["message"] == "" for e in data["exercises"] for line in e["lines"] if line["status"] == "PASS")


def test_students_prints_stay_out_of_the_json(tmp_path, capsys):
    path = tmp_path / find("matmul").file
    path.write_text((SOLUTIONS / path.name).read_text().replace("    ga = g @ b.T", "    print('debug!')\n    ga = g @ b.T"))
    assert main(["check", "matmul", "--dir", str(tmp_path), "--seed", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] == 1


SECRET = "918273645546372819"


@pytest.mark.parametrize("how", ["file", "environment"])
def test_a_hidden_seed_is_used_and_never_shown(how, demo, tmp_path, monkeypatch, capsys):
    results = tmp_path / "results.json"
    if how == "file":
        (tmp_path / "seed.txt").write_text(SECRET + "\n")
        hidden = ["--seed-file", str(tmp_path / "seed.txt")]
    else:
        monkeypatch.setenv(grading.SEED_ENV, SECRET)
        hidden = []
    main(["check", "batchnorm", "--dir", str(demo)] + hidden + ["--gradescope", str(results)])
    out, err = capsys.readouterr()
    main(["check", "batchnorm", "--dir", str(demo), "--json"] + hidden)
    text, err2 = capsys.readouterr()
    for shown in (out, err, text, err2, results.read_text()):
        assert SECRET not in shown and SECRET[:9] not in shown
    assert out.startswith("seed: hidden (a graded run)") and json.loads(text)["seed"] == "hidden"
    monkeypatch.delenv(grading.SEED_ENV, raising=False)
    main(["check", "batchnorm", "--dir", str(demo), "--json", "--seed", SECRET])
    assert json.loads(capsys.readouterr().out)["exercises"] == json.loads(text)["exercises"]


def test_bad_seed_files(tmp_path, capsys):
    (tmp_path / "seed.txt").write_text("not a number\n")
    assert main(["check", "--solutions", "--seed-file", str(tmp_path / "seed.txt")]) == 2
    assert main(["check", "--solutions", "--seed-file", str(tmp_path / "none.txt")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "must hold a whole number" in err and "cannot read the seed file" in err


def test_the_default_rubric_and_an_edited_one(demo, tmp_path, capsys):
    rubric = grading.load_rubric()
    assert sum(rubric["points"].values()) == 100 and not rubric["partial_credit"]
    path = demo / find("col2im").file                     # = instead of +=: right where windows do not overlap
    path.write_text(path.read_text().replace("+= cols", "= cols"))
    mine = tmp_path / "rubric.json"
    points = {e.name: 1 for e in EXERCISES}
    points["col2im"] = 7
    mine.write_text(json.dumps({"points": points, "partial_credit": True, "visibility": "after_due_date"}))
    results = tmp_path / "results.json"
    main(["check", "--dir", str(demo), "--seed", "4", "--rubric", str(mine), "--gradescope", str(results)])
    out = " ".join(capsys.readouterr().out.split())
    data = json.loads(results.read_text())
    col2im = next(t for t in data["tests"] if t["name"] == "6 col2im")
    assert col2im["max_score"] == 7 and 0 < col2im["score"] < 7          # partial credit: its passing checks
    bn = next(t for t in data["tests"] if t["name"] == "7 batchnorm")
    assert (bn["score"], bn["max_score"]) == (0, 1)                        # every check of it fails
    assert data["score"] == 7 + col2im["score"]
    assert all(t["visibility"] == "after_due_date" for t in data["tests"])
    assert re.search(rf"{data['score']:g} of 15 points", out)


@pytest.mark.parametrize("text, message", [
    ("{", "is not valid JSON"),
    ('{"points": {"unbroadcast": 10}}', "gives no points for matmul"),
    ('{"points": {"unbroadcst": 10}}', "names no exercise 'unbroadcst'"),
    ('{"points": {"unbroadcast": -1}}', "must be a number 0 or more"),
    ('{"points": {}, "extra": 1}', "unknown keys extra"),
    ('{"points": {}, "partial_credit": "yes"}', "partial_credit"),
])
def test_a_bad_rubric_is_one_error(text, message, tmp_path, capsys):
    path = tmp_path / "rubric.json"
    if "gives no points" not in message and "names no" not in message and "0 or more" not in message:
        text = text.replace('"points": {}', '"points": ' + json.dumps({e.name: 1 for e in EXERCISES}))
    elif "0 or more" in message:
        text = json.dumps({"points": {**{e.name: 1 for e in EXERCISES}, "unbroadcast": -1}})
    path.write_text(text)
    assert main(["check", "--solutions", "--rubric", str(path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: the rubric") and message in err

"""The README's performance table is what bench/last-run.json says, errors included.

bench/run.py --quick --write-readme measures, writes the JSON and rewrites the table; these
tests fail when someone edits one without the other, or when the rows in the JSON no longer
follow from its raw figures.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rt():
    spec = importlib.util.spec_from_file_location("readme_table", REPO / "bench" / "readme_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # it puts bench/ on sys.path for its sibling report.py
    return module


@pytest.fixture(scope="module")
def doc():
    return json.loads((REPO / "bench" / "last-run.json").read_text())


@pytest.fixture(scope="module")
def readme_rows(rt):
    table = rt.section((REPO / "README.md").read_text())
    return [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| figure ")]


def test_readme_table_is_rendered_from_the_committed_json(rt, doc):
    in_readme = rt.section((REPO / "README.md").read_text())
    assert in_readme == rt.render(doc), ("README.md's performance table differs from bench/last-run.json: "
                                         "run bench/readme_table.py --write (or bench/run.py --quick --write-readme)")


def test_rows_follow_from_the_raw_figures(rt, doc):
    rebuilt = rt.report.build_rows(doc)
    assert json.loads(json.dumps(rebuilt)) == doc["rows"], \
        "the rows in bench/last-run.json do not follow from its figures (edited by hand, or report.py changed)"


def test_every_error_in_the_json_is_shown_as_an_error_in_the_readme(doc, readme_rows):
    for row in doc["rows"]:
        if row["verdict"] == "ERROR":
            shown = [line for line in readme_rows if line.startswith(f"| {row['label']} |")]
            assert shown and "**ERROR**" in shown[0], f"{row['id']} failed in the run but the README hides it"
    for name, data in doc["figures"].items():
        if "error" in data:
            assert any(r["figure"] == name and r["verdict"] == "ERROR" for r in doc["rows"]), \
                f"figure {name} failed but no row says so"


def test_every_spec_has_one_row_and_references_are_never_targets(rt, doc):
    ids = [r["id"] for r in doc["rows"]]
    assert ids == [s.id for s in rt.report.SPECS], "the JSON's rows are not the declared specs, in order"
    for row in doc["rows"]:
        if row["kind"] == "target":
            assert row["verdict"] in ("PASS", "MISS", "ERROR", "NOT RUN"), f"target {row['id']}: {row['verdict']}"
            assert row["target"], f"target {row['id']} has no limit"
        else:
            assert row["verdict"] in ("REFERENCE", "INFO", "ERROR", "NOT RUN"), \
                f"{row['id']} is a {row['kind']} but has the verdict {row['verdict']}"
            assert not row["target"], f"{row['id']} is a {row['kind']} but shows a target"


def test_the_run_records_commit_and_machine(doc):
    meta = doc["meta"]
    assert len(meta["git"]["commit"]) == 40, "the JSON does not record the full commit"
    assert isinstance(meta["git"]["dirty"], bool), "the JSON does not say whether the tree was dirty"
    for key in ("cores", "cpu_model", "memory_bytes", "python", "paho_mqtt", "mosquitto"):
        assert meta["machine"].get(key), f"the JSON does not record the machine's {key}"


def test_a_changed_figure_or_a_hidden_error_is_noticed(rt, doc):
    in_readme = rt.section((REPO / "README.md").read_text())
    changed = copy.deepcopy(doc)
    row = next(r for r in changed["rows"] if r["value"] is not None)
    row["value"] = row["value"] * 2 + 1
    assert rt.render(changed) != in_readme, "doubling a figure did not change the rendered table"
    failed = copy.deepcopy(doc)
    failed["figures"]["drain"] = {"error": "RuntimeError: boom"}
    failed["rows"] = rt.report.build_rows(failed)
    assert "**ERROR**: RuntimeError: boom" in rt.render(failed), "a failed figure is not shown as an error"


def test_write_replaces_only_the_marked_section(rt, doc, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{rt.BEGIN}\nold table\n{rt.END}\nafter\n")
    rt.write(doc, readme)
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{rt.END}\nafter\n"), "text outside the markers changed"
    assert rt.section(text) == rt.render(doc), "the written section is not the rendered table"
    with pytest.raises(rt.SectionError):
        rt.split("no markers here")


def test_every_missed_or_failed_target_has_a_note(rt, doc):
    missing = rt.unexplained(doc, rt.load_notes())
    assert not missing, (f"targets missed or failed without a note in bench/notes.toml saying why: {missing}")

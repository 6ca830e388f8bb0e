"""Definition files in YAML: one file or a folder per agent, written and read back unchanged,
and every problem naming its file (and line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tactful.definitions.files import (
    dump_document,
    load_documents,
    read_source,
    write_folder,
)
from tactful.errors import ValidationError

LONG_CONDITION = "the customer " + "really " * 30 + "wants a refund"
DOCUMENT: dict[str, Any] = {
    "agent": {"id": "shop", "name": "Shop — Support", "description": "Sells things."},
    "tags": [{"id": "vip", "name": "vip"}],
    "canned_responses": [
        {"id": "days", "value": "Refunds take {{days}} days."},
        {"id": "steps", "value": "First:\n  open the order\nThen: click Return\n"},
        {"id": "odd", "value": "no"},
    ],
    "guidelines": [
        {"id": "refund", "condition": LONG_CONDITION, "action": "explain: 30 days"},
        {"id": "date", "condition": "2024-01-01", "tags": ["vip"]},
        {"id": "off", "condition": "the customer is angry", "enabled": False, "priority": 2},
    ],
    "journeys": [
        {
            "id": "returns",
            "title": "Return an item",
            "conditions": ["refund"],
            "states": [{"id": "start"}, {"id": "ask", "action": "Ask for the number"}],
            "transitions": [{"id": "t1", "source": "start", "target": "ask"}],
        }
    ],
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(raised: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return list(raised.value.problems)


def test_a_document_dumped_to_a_file_reads_back_the_same(tmp_path: Path) -> None:
    text = dump_document(DOCUMENT)
    path = write(tmp_path / "shop.yaml", text)

    [(label, document)] = load_documents([path])

    assert (label, document) == (str(path), DOCUMENT)
    lines = text.splitlines()
    # Sections in the document's order, lists indented under their key, nothing folded.
    assert [line for line in lines if not line.startswith(" ")][:3] == [
        "agent:",
        "tags:",
        "canned_responses:",
    ]
    assert "  - id: days" in lines
    assert f"    condition: {LONG_CONDITION}" in lines
    assert "name: Shop — Support" in text  # unicode as is, not escaped
    # Multi-line text as a literal block; values YAML would read as something else, quoted.
    block = lines.index("    value: |")
    assert lines[block + 1 : block + 3] == ["      First:", "        open the order"]
    assert "    value: 'no'" in lines
    assert "    condition: '2024-01-01'" in lines


def test_a_folder_is_one_agent_whose_files_are_merged_in_sorted_order(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    write(folder / "agent.yaml", "agent:\n  name: Shop\n")
    write(folder / "guidelines" / "b.yml", "guidelines:\n  - condition: b\n    action: do b\n")
    write(folder / "guidelines" / "a.yaml", "guidelines:\n  - condition: a\n    action: do a\n")
    write(folder / "more.yaml", "terms:\n  - name: RMA\n    description: x\nguidelines: []\n")
    write(folder / ".hidden" / "x.yaml", "agent: {name: Other}\n")
    write(folder / "notes.txt", "not yaml: [")
    write(folder / "empty.yaml", "# nothing yet\n")

    [(label, document)] = load_documents([folder])

    assert label == str(folder)
    assert document == {
        "agent": {"name": "Shop"},
        "guidelines": [
            {"condition": "a", "action": "do a"},
            {"condition": "b", "action": "do b"},
        ],
        "terms": [{"name": "RMA", "description": "x"}],
    }


def test_write_folder_reads_back_the_same_and_drops_sections_that_left(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    written = write_folder(DOCUMENT, folder)
    assert sorted(p.name for p in written) == [
        "agent.yaml",
        "canned_responses.yaml",
        "guidelines.yaml",
        "journeys.yaml",
        "tags.yaml",
    ]
    assert load_documents([folder]) == [(str(folder), DOCUMENT)]

    smaller = {k: v for k, v in DOCUMENT.items() if k != "journeys"}
    write_folder(smaller, folder)
    assert not (folder / "journeys.yaml").exists()
    assert load_documents([folder]) == [(str(folder), smaller)]


def test_write_folder_refuses_a_folder_with_other_yaml_files(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    write(folder / "mine.yaml", "guidelines: []\n")
    with pytest.raises(ValidationError, match="other YAML files") as raised:
        write_folder(DOCUMENT, folder)
    assert str(folder / "mine.yaml") in str(raised.value)
    assert not (folder / "agent.yaml").exists()


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "shop.yaml",
        "agent:\n  name: Shop\nguidelines:\n  - condition: [unclosed\n    action: x\n",
    )
    with pytest.raises(ValidationError) as raised:
        load_documents([path])
    [problem] = problems_of(raised)
    assert problem == (
        f"{path}:5:11: not valid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence from line 4)"
    )
    assert str(raised.value) == problem


def test_a_key_given_twice_is_an_error_not_the_last_one_winning(tmp_path: Path) -> None:
    path = write(
        tmp_path / "shop.yaml",
        "agent:\n  name: Shop\nguidelines:\n  - condition: a\nguidelines:\n  - condition: b\n",
    )
    with pytest.raises(ValidationError, match=r"the key 'guidelines' is given twice") as raised:
        load_documents([path])
    assert str(raised.value).startswith(f"{path}:5:1:")


def test_yaml_that_would_build_python_objects_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.yaml", "agent: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ValidationError, match=rf"^{path}:1:8: not valid YAML:.*python/object"):
        load_documents([path])


def test_the_agent_is_given_exactly_once_in_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    write(folder / "a.yaml", "agent: {name: Shop}\n")
    write(folder / "sub" / "b.yaml", "agent: {name: Shop}\n")
    with pytest.raises(ValidationError) as raised:
        load_documents([folder])
    [problem] = problems_of(raised)
    assert "`agent` is given in 2 files" in problem
    assert str(folder / "a.yaml") in problem and str(folder / "sub" / "b.yaml") in problem

    (folder / "a.yaml").unlink()
    (folder / "sub" / "b.yaml").write_text("guidelines: []\n")
    with pytest.raises(ValidationError, match=r"no `agent` section"):
        load_documents([folder])


def test_every_shape_problem_of_every_file_is_listed(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    write(folder / "agent.yaml", "agent: Shop\n")
    write(folder / "list.yaml", "- guidelines\n")
    write(folder / "terms.yaml", "terms: {name: RMA}\nrules: []\n")

    with pytest.raises(ValidationError) as raised:
        load_documents([folder])

    assert problems_of(raised) == [
        f"{folder / 'agent.yaml'}: `agent` must be a mapping (with at least its name)",
        f"{folder / 'list.yaml'}: a mapping of sections is expected, not a list",
        f"{folder / 'terms.yaml'}: `terms` must be a list, not dict",
        f"{folder / 'terms.yaml'}: unknown section 'rules' (the sections are agent, tags, "
        "services, canned_responses, guidelines, terms, capabilities, variables, journeys, "
        "relationships, code)",
    ]
    assert str(raised.value) == f"{folder}: 4 problems"


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.yaml", "does not exist"), ("shop.json", "not a YAML file")],
)
def test_a_path_that_is_no_yaml_file_or_folder(tmp_path: Path, name: str, message: str) -> None:
    write(tmp_path / "shop.json", "{}")
    with pytest.raises(ValidationError, match=message):
        load_documents([tmp_path / name])
    with pytest.raises(ValidationError, match="a folder without YAML files"):
        load_documents([tmp_path])


def test_a_documents_problem_is_located_in_the_file_and_line_of_its_entry(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "shop"
    write(folder / "agent.yaml", "agent: {name: Shop}\n")
    write(folder / "a.yaml", "guidelines:\n  - condition: a\n")
    write(folder / "b.yaml", "# b\nguidelines:\n  - condition: b\n\n  - action: no condition\n")

    source = read_source(folder)

    assert source.locate("guidelines[1].action: Field required") == (
        f"{folder / 'b.yaml'}:3: guidelines[1].action: Field required"
    )
    assert source.locate("guidelines[2].condition: Field required").startswith(
        f"{folder / 'b.yaml'}:5: "
    )
    assert source.locate("guidelines[9]: out of range") == "guidelines[9]: out of range"
    assert source.locate("tool 'x:y' is unknown") == "tool 'x:y' is unknown"

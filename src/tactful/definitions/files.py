"""Definition files: an agent's document (``tactful.definitions.document``, the file format) in
YAML, as ``tactful plan|apply`` read it and ``tactful export`` writes it.

A ``.yaml``/``.yml`` file is one agent's document. A folder is one agent too, split over as
many YAML files as its authors like (sub-folders included, hidden ones left out): the files are
read in sorted order, their list sections put end to end, and exactly one of them gives the
``agent``. ``write_folder`` writes ``agent.yaml`` and one file per section.

YAML is read the safe way only (``SafeLoader``: plain data, never Python objects), and a key
given twice in one mapping is an error rather than the last one silently winning. Every problem
names its file, and its line when YAML knows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# PyYAML ships no type information and types-PyYAML is not on our package index: the module is
# used only through the typed functions below.
import yaml  # type: ignore[import-untyped]

from tactful.definitions.document import SECTIONS
from tactful.errors import ValidationError

SUFFIXES = (".yaml", ".yml")
# Wide enough that PyYAML never folds a long condition or template over several lines.
_WIDTH = 1_000_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
# ``guidelines[3].condition: Field required``: the entry a document's problem is about.
_ENTRY = re.compile(r"^(?P<section>\w+)\[(?P<index>\d+)\]")


def _file_error(message: str, problems: Iterable[str] = ()) -> ValidationError:
    listed = tuple(problems)
    return ValidationError(message, problems=listed or (message,))


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML is untyped
    """``yaml.safe_load``'s loader, refusing a key given twice in one mapping."""

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if key.tag == _MERGE_TAG or not isinstance(key, yaml.ScalarNode):
                continue
            if (key.tag, key.value) in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"the key {key.value!r} is given twice",
                    key.start_mark,
                )
            seen.add((key.tag, key.value))
        return node


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML is untyped
    """``yaml.safe_dump``'s dumper, with lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _represent_text(dumper: Any, text: str) -> Any:
    # Multi-line text as a literal block (``|``), which reads as written; PyYAML falls back to
    # quotes for text a block cannot hold (trailing spaces, control characters).
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)


@dataclass
class DefinitionSource:
    """One agent's document as read from a file or a folder: ``label`` names where it comes
    from (the path given), ``origins`` where each entry of each list section was written
    (``path:line``), to point a document's problems back at the files."""

    label: str
    document: dict[str, Any]
    origins: dict[str, list[str]] = field(default_factory=dict)

    def locate(self, problem: str) -> str:
        """The problem, with the file and line of the entry it is about when it names one
        (``guidelines[3].condition: ...``)."""
        found = _ENTRY.match(problem)
        if found is None:
            return problem
        origins = self.origins.get(found["section"], [])
        index = int(found["index"])
        return f"{origins[index]}: {problem}" if index < len(origins) else problem


def read_yaml(path: Path) -> tuple[Any, dict[str, list[int]]]:
    """The data of one YAML file, and the line of each entry of each top-level list.

    Raises ``ValidationError`` naming ``file:line:column`` for a YAML error.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise _file_error(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise _file_error(f"{path}: cannot be read ({e.strerror or e})") from e
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        raise _file_error(_yaml_problem(path, e)) from e
    except yaml.YAMLError as e:
        raise _file_error(f"{path}: not valid YAML: {e}") from e
    finally:
        loader.dispose()
    lines: dict[str, list[int]] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.SequenceNode):
                lines[key.value] = [item.start_mark.line + 1 for item in value.value]
    return data, lines


def _yaml_problem(path: Path, error: Any) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    what = error.problem or error.context or str(error)
    if error.problem and error.context:
        # "while parsing a flow sequence": where the construct the problem is in began.
        began = error.context_mark
        what += f" ({error.context}{f' from line {began.line + 1}' if began else ''})"
    return f"{where}: not valid YAML: {what}"


def yaml_files(folder: Path) -> list[Path]:
    """The YAML files of a folder and its sub-folders, sorted, hidden ones left out."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _part(path: Path) -> tuple[dict[str, Any], dict[str, list[int]], list[str]]:
    """One file's sections, the lines of their entries, and its problems of shape."""
    data, lines = read_yaml(path)
    if data is None:
        return {}, lines, []
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else type(data).__name__
        return {}, lines, [f"{path}: a mapping of sections is expected, not {kind}"]
    problems = []
    for key, value in data.items():
        if key not in SECTIONS:
            problems.append(
                f"{path}: unknown section {key!r} (the sections are {', '.join(SECTIONS)})"
            )
        elif key == "agent" and not isinstance(value, dict):
            problems.append(f"{path}: `agent` must be a mapping (with at least its name)")
        elif key != "agent" and not isinstance(value, list | None):
            problems.append(f"{path}: `{key}` must be a list, not {type(value).__name__}")
    return data, lines, problems


def read_source(path: Path | str) -> DefinitionSource:
    """One agent's document from a YAML file, or from the YAML files of a folder."""
    path = Path(path)
    if path.is_dir():
        files = yaml_files(path)
        if not files:
            raise _file_error(f"{path}: a folder without YAML files ({', '.join(SUFFIXES)})")
    elif path.is_file():
        if path.suffix not in SUFFIXES:
            raise _file_error(f"{path}: not a YAML file (its name should end in .yaml or .yml)")
        files = [path]
    else:
        raise _file_error(f"{path} does not exist")
    document: dict[str, Any] = {}
    origins: dict[str, list[str]] = {}
    agent_files: list[Path] = []
    problems: list[str] = []
    for file in files:
        data, lines, shape = _part(file)
        problems += shape
        if shape:
            continue
        for section, value in data.items():
            if section == "agent":
                agent_files.append(file)
                document["agent"] = value
            elif value:
                document.setdefault(section, []).extend(value)
                origins.setdefault(section, []).extend(
                    f"{file}:{line}" for line in lines.get(section, [])
                )
    if not problems and len(agent_files) != 1:
        problems.append(_agent_problem(path, agent_files))
    if problems:
        first = problems[0] if len(problems) == 1 else f"{path}: {len(problems)} problems"
        raise _file_error(first, problems)
    return DefinitionSource(str(path), document, origins)


def _agent_problem(path: Path, agent_files: Sequence[Path]) -> str:
    if not agent_files:
        return (
            f"{path}: no `agent` section: one file must say which agent these definitions "
            "are (agent: {name: ...})"
        )
    listed = ", ".join(str(f) for f in agent_files)
    return f"{path}: `agent` is given in {len(agent_files)} files ({listed}); give it once"


def load_sources(paths: Iterable[Path | str]) -> list[DefinitionSource]:
    """The document of each path (a YAML file or a folder), each one agent's."""
    return [read_source(p) for p in paths]


def load_documents(paths: Iterable[Path | str]) -> list[tuple[str, dict[str, Any]]]:
    """``(label, document)`` for each path: a YAML file, or a folder whose YAML files form one
    document. Raises ``ValidationError`` (its ``problems`` one per line) when a file cannot be
    read as part of a document."""
    return [(s.label, s.document) for s in load_sources(paths)]


def dump_document(document: dict[str, Any]) -> str:
    """The document as YAML: sections and keys in the document's order, text unfolded,
    multi-line text as literal blocks."""
    text: str = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=_WIDTH,
        default_flow_style=False,
    )
    return text


def write_folder(document: dict[str, Any], folder: Path | str) -> list[Path]:
    """Write the document as a folder: ``agent.yaml`` and ``<section>.yaml`` for each section
    it has; ``read_source(folder)`` gives the same document back. Returns the files written.

    The folder may be new, or one written before by ``write_folder``: the files of sections the
    document no longer has are removed. Other YAML files in it would join the document when it
    is read, so a folder that holds some is refused.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise _file_error(f"{folder} exists and is not a folder")
    ours = {f"{section}.yaml" for section in SECTIONS}
    if folder.is_dir():
        others = [p for p in yaml_files(folder) if p.relative_to(folder).as_posix() not in ours]
        if others:
            listed = ", ".join(str(p) for p in others[:5])
            raise _file_error(
                f"{folder} holds other YAML files ({listed}) that would join the agent's "
                "definitions: write into a new folder, or one written by export"
            )
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for section in SECTIONS:
        path = folder / f"{section}.yaml"
        if document.get(section):
            path.write_text(dump_document({section: document[section]}), encoding="utf-8")
            written.append(path)
        elif path.exists():
            path.unlink()
    return written

"""The README's examples work verbatim, against real servers.

How the README marks what runs (keep to it when editing the README):

- ``<!-- readme-test: example -->`` before a ```` ```sh ```` block: the block runs in bash,
  in order with the other such blocks and in one shell (as in one terminal: variables carry
  over), against ``tactful serve --example --transient`` on a free port.
- ``<!-- readme-test: NAME.py -->`` before a ```` ```python ```` block: a program, saved as
  NAME.py and run with ``python NAME.py`` (it serves; ``TACTFUL_PORT`` is a free port); before
  a ```` ```sh ```` block: the block runs against that program's server.
- ``# => text`` in a block: what the server answers; the block's output must hold it, where
  ``...`` stands for anything on the same line. No output may hold ``"detail"`` (every API
  error answers with one).

The one edit: ``TACTFUL_URL=http://127.0.0.1:8800`` becomes the test server's URL (the README
says to set it to wherever the server listens). Blocks run in a scratch folder where
``.venv`` is this interpreter's environment, as ``./dev`` makes it in a clone.

Python blocks without a marker are fragments (``await agent.entail(apology, offer_help)``):
each runs on a fresh agent of a transient server, with the names it uses but does not define
made for it (guidelines, and the tool and hook a few of them name).
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import tactful
from tactful.llm.scripted import HashingEmbedder

README = Path(__file__).resolve().parents[1] / "README.md"
MARKED = re.compile(
    r"<!-- readme-test: (?P<group>\S+) -->\s*\n```(?P<lang>\w+)\n(?P<code>.*?)^```", re.S | re.M
)
FENCED = re.compile(r"^```(?P<lang>\w*)\n(?P<code>.*?)^```", re.S | re.M)
README_URL = "TACTFUL_URL=http://127.0.0.1:8800"
SHOWN = "# => "
START_TIMEOUT_S = 60
BLOCK_TIMEOUT_S = 60


@dataclass(frozen=True)
class Block:
    group: str
    lang: str
    code: str
    line: int

    @property
    def shown(self) -> list[str]:
        """What the block says the server answers (its ``# =>`` lines)."""
        return [
            line.strip()[len(SHOWN) :]
            for line in self.code.splitlines()
            if line.strip().startswith(SHOWN)
        ]


def marked_blocks() -> list[Block]:
    text = README.read_text()
    return [
        Block(m["group"], m["lang"], m["code"], text.count("\n", 0, m.start()) + 1)
        for m in MARKED.finditer(text)
    ]


def fragments() -> list[Block]:
    """The README's Python blocks that are not marked: pieces of a program."""
    text = README.read_text()
    marked = {b.code for b in marked_blocks()}
    return [
        Block("", "python", m["code"], text.count("\n", 0, m.start()) + 1)
        for m in FENCED.finditer(text)
        if m["lang"] == "python" and m["code"] not in marked
    ]


def as_pattern(shown: str) -> re.Pattern[str]:
    """``...`` stands for anything on the line; the rest is literal."""
    return re.compile(".*?".join(re.escape(part) for part in shown.split("...")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def scratch_env(**extra: str) -> dict[str, str]:
    """The environment without the caller's tactful settings, on the offline tier."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACTFUL_")}
    env.update(TACTFUL_MODEL_PROVIDER="offline", NO_COLOR="1", TERM="dumb", **extra)
    return env


def scratch(folder: Path) -> Path:
    """A folder where ``.venv/bin/tactful`` and ``.venv/bin/python`` are this environment's."""
    venv = Path(sys.prefix)
    assert (venv / "bin" / "tactful").exists(), (
        f"no tactful command in {venv}: install tactful into this environment (./dev does)"
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".venv").symlink_to(venv, target_is_directory=True)
    return folder


@contextmanager
def serving(command: list[str], cwd: Path, port: int) -> Iterator[str]:
    """Run ``command`` (a server on ``port``) until the block ends: its URL once it answers."""
    url = f"http://127.0.0.1:{port}"
    log = cwd / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=scratch_env(TACTFUL_PORT=str(port)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{command} did not come up:\n{log.read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def run_in_one_shell(blocks: list[Block], url: str, cwd: Path) -> list[str]:
    """Run the blocks in order in one bash, as a reader pastes them into one terminal; the
    output of each."""
    separator = "=== readme block ==="
    script = ["set -e -o pipefail"]
    for block in blocks:
        assert README_URL in block.code or "$TACTFUL_URL" in block.code, block.line
        script += [f"echo '{separator}'", block.code.replace(README_URL, f"TACTFUL_URL={url}")]
    env = scratch_env(TACTFUL_URL=url)
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S * len(blocks),
        check=False,
    )
    outputs = done.stdout.split(separator + "\n")[1:]
    assert done.returncode == 0, (
        f"a README block failed (exit {done.returncode}, README line "
        f"{blocks[len(outputs) - 1].line if outputs else '?'}):\n{done.stdout}\n{done.stderr}"
    )
    assert len(outputs) == len(blocks)
    return outputs


# An error's body: an object whose first key is "detail" (curl prints bodies back to back).
API_ERROR = re.compile(r'(?:^|[\]}\n])\{"detail":')
SHOWN_CHARS = 4000


def check_outputs(blocks: list[Block], outputs: list[str]) -> None:
    for block, output in zip(blocks, outputs, strict=True):
        said = output if len(output) <= SHOWN_CHARS else output[:SHOWN_CHARS] + " [...]"
        assert not API_ERROR.search(output), f"README line {block.line}: an API error:\n{said}"
        for shown in block.shown:
            assert as_pattern(shown).search(output), (
                f"README line {block.line} shows\n  {shown}\nbut the server said:\n{said}"
            )


@pytest.fixture(autouse=True)
def _commands() -> None:
    for command in ("bash", "curl", "python3"):
        if shutil.which(command) is None:
            pytest.skip(f"the README's snippets need {command}")


@pytest.mark.embedder
def test_the_quickstart_against_the_example(tmp_path: Path) -> None:
    blocks = [b for b in marked_blocks() if b.group == "example"]
    assert len(blocks) >= 3 and all(b.lang == "sh" for b in blocks)
    assert any(README_URL in b.code for b in blocks), "the README sets TACTFUL_URL once"
    cwd = scratch(tmp_path / "reader")
    serve = [sys.executable, "-m", "tactful.cli.main", "serve", "--example", "--transient"]
    with serving(serve, tmp_path, free_port()) as url:
        outputs = run_in_one_shell(blocks, url, cwd)
    check_outputs(blocks, outputs)
    # An order the example's database really has (it is seeded in examples/voltmart/orders.py).
    assert "there is no order with that number" not in outputs[0]


def test_an_api_error_or_another_answer_fails_the_check() -> None:
    [block] = [b for b in marked_blocks() if b.group == "example" and "flags" in b.code]
    good = (
        '[{"id":"f1","event_id":"e1","agent_id":"voltmart-support",'
        '"note":"could offer the email lookup"}]'
    )
    check_outputs([block], [good])
    with pytest.raises(AssertionError, match="an API error"):
        check_outputs([block], [good + '{"detail":"Session \'x\' was not found"}'])
    with pytest.raises(AssertionError, match="but the server said"):
        check_outputs([block], [good.replace("email", "phone")])
    # A field named detail inside an answer (a trace's resolution steps) is no error.
    check_outputs([block], [good + '{"resolution":[{"detail":"x"}]}'])


@pytest.mark.embedder
def test_the_agent_program_serves_what_it_defines(tmp_path: Path) -> None:
    programs = [b for b in marked_blocks() if b.group.endswith(".py")]
    assert programs, "the README marks a program"
    for name in {b.group for b in programs}:
        [program] = [b for b in programs if b.group == name and b.lang == "python"]
        blocks = [b for b in programs if b.group == name and b.lang == "sh"]
        cwd = scratch(tmp_path / name.removesuffix(".py"))
        (cwd / name).write_text(program.code)
        with serving([str(cwd / ".venv" / "bin" / "python"), name], cwd, free_port()) as url:
            outputs = run_in_one_shell(blocks, url, cwd)
        check_outputs(blocks, outputs)
        # It kept its data where the README says: ./.tactful under the working folder.
        assert (cwd / ".tactful" / "tactful.db").exists()


def free_names(code: str) -> list[str]:
    """Names a fragment uses without defining them (nor are they builtins)."""
    tree = ast.parse(code)
    defined = {"tactful", "agent", "server"} | set(dir(builtins))
    used: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif node.id not in used:
                used.append(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return [n for n in used if n not in defined]


async def _notify_crm(context: Any, guideline: Any) -> None:
    """A hook, for the fragment that names one."""


@tactful.tool
async def find_order(context: tactful.ToolContext, email: str) -> tactful.ToolResult:
    """Find the customer's orders (for the fragment that names a tool it does not define)."""
    return tactful.ToolResult(data={"orders": []})


SUPPLIED: dict[str, Any] = {"notify_crm": _notify_crm, "find_order": find_order}


async def definitions(agent: tactful.Agent) -> int:
    """How many guidelines and relationships the agent has."""
    return len(await agent.guidelines()) + len(await agent.relationships())


@pytest.mark.parametrize("block", fragments(), ids=lambda b: f"line {b.line}")
async def test_each_python_fragment_runs_on_a_fresh_agent(block: Block) -> None:
    names = free_names(block.code)
    function = f"async def fragment({', '.join(names)}):\n{textwrap.indent(block.code, '    ')}"
    namespace: dict[str, Any] = {"tactful": tactful}
    exec(compile(function, f"README.md:{block.line}", "exec"), namespace)
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as server:
        agent = await server.create_agent("Support")
        namespace.update(agent=agent, server=server)
        values: dict[str, Any] = {}
        for name in names:
            values[name] = SUPPLIED.get(name) or await agent.create_guideline(
                f"the customer talks about {name}", f"help with {name}"
            )
        before = await definitions(agent)
        await namespace["fragment"](**values)
        assert await definitions(agent) > before, "the fragment defined nothing"

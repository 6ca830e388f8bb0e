"""``tactful chat`` as a real process, fed by a pipe: replies, matched guidelines, failures."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cli_process import SHOP_AGENT, TACTFUL, Served, clean_env, free_port, run

RETURNS_REPLY = "Shopbot > You can return any item within 30 days for a full refund."
RETURNS_MATCH = "✓ the customer asks how to return an item or about the return policy"
SHIPPING_REPLY = "Shopbot > Standard shipping takes 3 to 5 business days."
SHIPPING_MATCH = "✓ the customer asks how long shipping or delivery takes"


def test_chat_against_a_running_server(served_shop: Served, tmp_path: Path) -> None:
    result = run(
        ["chat", "--url", served_shop.url],
        tmp_path,
        stdin="What is your return policy?\n\nHow long does delivery take?\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"connected to {served_shop.url} (offline tier)" in out
    assert "chatting with Shopbot" in out
    # The legend once, before the first reply; not again under the second.
    assert out.count("legend: ✓ matched and shaped the reply") == 1
    assert out.index("legend: ") < out.index(RETURNS_REPLY)
    lines = out.splitlines()
    # Each reply, then under it the guideline that matched with its score and rationale.
    returns = lines.index(RETURNS_REPLY)
    assert lines[returns + 1].strip().startswith(RETURNS_MATCH)
    assert "threshold" in lines[returns + 1]
    shipping = lines.index(SHIPPING_REPLY)
    assert lines[shipping + 1].strip().startswith(SHIPPING_MATCH)
    assert shipping > returns
    assert result.stderr == ""


def test_chat_uses_tactful_url_and_stops_at_quit(served_shop: Served, tmp_path: Path) -> None:
    env = clean_env() | {"TACTFUL_URL": served_shop.url}
    result = subprocess.run(
        [*TACTFUL, "chat", "--agent", "Shopbot"],
        input="How long does delivery take?\n/quit\nWhat is your return policy?\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert SHIPPING_REPLY in result.stdout
    assert RETURNS_REPLY not in result.stdout


def test_unreachable_server_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run(["chat", "--url", url], tmp_path, stdin="hello\n")
    assert result.returncode == 1
    assert result.stderr.strip() == f"cannot reach tactful at {url}: is `tactful serve` running?"
    assert result.stdout == ""


def test_in_process_chat_from_a_pipe(tmp_path: Path) -> None:
    result = run(
        ["chat", "--in-process", "--transient", "--agent-file", str(SHOP_AGENT)],
        tmp_path,
        stdin="What is your return policy?\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in-process (offline tier: TACTFUL_MODEL_PROVIDER=offline)" in result.stdout
    lines = result.stdout.splitlines()
    reply = lines.index(RETURNS_REPLY)
    assert lines[reply + 1].strip().startswith(RETURNS_MATCH)
    # The compact trace: a guideline a relationship added, why it did not shape this reply,
    # and the turn's cost.
    always = lines.index("  ○ in every reply  [0.00] added by always")
    assert lines[always + 1] == "      ↳ the reply is another guideline's template (returns-reply)"
    assert "0 model calls, 0 prompt tokens" in result.stdout
    assert not (tmp_path / ".tactful").exists()  # transient: nothing written


def test_in_process_chat_with_the_bundled_example(tmp_path: Path) -> None:
    result = run(
        ["chat", "--in-process", "--transient", "--example"],
        tmp_path,
        stdin="I want to return the headphones I received last week\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Voltmart Support > " in result.stdout
    assert "  ✓ " in result.stdout
    # The return journey starts, and the chat says where it stands.
    assert "↪ journey 'Return an item' start 1 (Ask for the order number" in result.stdout
    # The return guideline matched too, and the chat says why the journey's step answered.
    summary = result.stdout.split("Voltmart Support > ", 1)[1].splitlines()[1:]
    assert "      ↳ suppressed by priority: journey 'Return an item' take(s) priority over it" in (
        summary
    )
    assert len(summary) == len(set(summary))


def test_in_process_chat_keeps_its_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = run(
        ["chat", "--in-process", "--data-dir", str(data), "--agent-file", str(SHOP_AGENT)],
        tmp_path,
        stdin="How long does delivery take?\n",
    )
    assert first.returncode == 0, first.stderr
    # The agent is stored: a second chat finds it without the file.
    second = run(
        ["chat", "--in-process", "--data-dir", str(data)],
        tmp_path,
        stdin="What is your return policy?\n",
    )
    assert second.returncode == 0, second.stderr
    assert RETURNS_REPLY in second.stdout

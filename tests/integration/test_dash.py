"""`slurm dash` in a real terminal (tmux) against the dev cluster: start it, send keys, read
the screen with capture-pane (issue 24). With ``SLURM_SDK_UPDATE_SCREENSHOTS=1`` the screen
of a running workflow replaces the README's picture (``docs/images/dash.svg``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jobfuncs
import pytest

from slurm import Cluster, JobState

_SLURM = str(Path(sys.executable).with_name("slurm"))
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


class Screen:
    """A tmux session running one command; keys in, the visible screen out."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.tmux = ["tmux", "-L", name]  # a server of its own: no one else's options
        size = ["-x", "200", "-y", "50"]
        subprocess.run([*self.tmux, "new-session", "-d", "-s", name, *size, *command], check=True)
        subprocess.run([*self.tmux, "resize-window", "-t", name, *size], check=True)

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def text(self, *, colours: bool = False) -> str:
        argv = [*self.tmux, "capture-pane", "-p", *(["-e"] if colours else []), "-t", self.name]
        return subprocess.run(argv, capture_output=True, text=True).stdout

    def save_svg(self, path: Path, title: str) -> None:
        """The screen as it is, colours included, as an SVG picture (for the README)."""
        from rich.console import Console
        from rich.text import Text

        console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
        console.print(Text.from_ansi(self.text(colours=True).rstrip("\n")))
        path.parent.mkdir(parents=True, exist_ok=True)
        console.save_svg(str(path), title=title)
        console.file.close()

    def wait_for(self, *needles: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if all(n in text for n in needles):
                return text
            if time.monotonic() > deadline:
                pytest.fail(f"the dashboard never showed {needles}:\n{text}")
            time.sleep(0.5)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


@pytest.fixture()
def screen_for(cluster: Cluster) -> Iterator[Screen]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install -y tmux)")
    command = [
        "env", "-u", "COLUMNS", "-u", "LINES", f"SLURM_CONF={os.environ['SLURM_CONF']}",
        _SLURM, "dash",
        "--backend", "local", "--job-base-dir", cluster.base_dir, "--interval", "1",
    ]  # fmt: skip
    screen = Screen(f"sdk-dash-{os.getpid()}", command)
    try:
        yield screen
    finally:
        screen.close()


def test_dash_tree_log_pane_and_cancel_through_the_keys(
    cluster: Cluster, screen_for: Screen
) -> None:
    done = jobfuncs.print_and_return("hello from the node")
    assert done.get_result(timeout=120) == "hello from the node"
    flow = jobfuncs.train_with_slow_eval(epochs=2, epoch_steps=4, cap=2, eval_delay=30.0)
    victim = jobfuncs.sleep_forever()
    screen = screen_for
    try:
        # A running workflow's tree: its children hang under it.
        text = screen.wait_for("train_with_slow_eval", "└ train_epoch_segment", timeout=90)
        assert "the SDK's jobs" in text
        screen.wait_for("└ slow_evaluate", "RUNNING", timeout=90)
        if os.environ.get("SLURM_SDK_UPDATE_SCREENSHOTS"):  # the README's picture
            screen.save_svg(DOCS_IMAGES / "dash.svg", "slurm dash")

        # The log pane shows the selected job's output.
        screen.keys("/", *"print_and_return", "Enter")
        screen.wait_for(f"stdout of {done.id}", "hello from the node", "It completed")

        # Cancel through the keys: select, c, then y to confirm.
        screen.keys("/", *["BSpace"] * 20, *"sleep_forever", "Enter")
        screen.wait_for(f"stdout of {victim.id}")
        screen.keys("c")
        screen.wait_for(f"cancel job {victim.id}? y/n")
        screen.keys("y")
        screen.wait_for(f"cancelled {victim.id}")
        deadline = time.monotonic() + 60
        while victim.get_status() != JobState.CANCELLED and time.monotonic() < deadline:
            time.sleep(1)
        assert victim.get_status() == JobState.CANCELLED
        assert flow.get_status() != JobState.CANCELLED  # only that job

        # The whole queue, with the partitions' load; q quits.
        screen.keys("a")
        screen.wait_for("your queue", "partitions", "debug")
        screen.keys("q")
        deadline = time.monotonic() + 10
        while "your queue" in screen.text() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        cluster.slurm.cancel([flow.id, victim.id])

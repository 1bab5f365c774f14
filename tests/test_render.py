"""``evaluate.py --render``: a window on a real (virtual) X display, and one line where none exists.

The window test runs under Xvfb (Debian's ``xvfb``; ``.ci/run`` installs it and sets
PPO_REQUIRE_XVFB=1 so that CI fails rather than skips without it) and screenshots the display with
Pillow while the agent plays.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, assert_usage_error, only_run_dir, pendulum_flags, run_trainer

NO_DISPLAY = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def evaluate(trainer: str, *flags: str, env: dict, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / trainer / "evaluate.py"), *flags],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("trainer", ["ppo_continuous", "ppo_atari"])
def test_render_without_a_display_is_one_line_exit_2(trainer, tmp_path):
    # Refused before the checkpoint is even opened: this one does not exist.
    proc = evaluate(trainer, str(tmp_path / "no_run"), "--render", env=NO_DISPLAY, cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_usage_error(result, "--render")
    assert "--capture-video" in err and "xvfb-run" in err


@pytest.fixture
def xvfb_display() -> Iterator[str]:
    """A fresh Xvfb display with a black root window (-br), so a blank screen has one colour."""
    if shutil.which("Xvfb") is None:
        if os.environ.get("PPO_REQUIRE_XVFB"):
            pytest.fail("Xvfb is required (PPO_REQUIRE_XVFB=1): apt-get install xvfb")
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "640x640x24", "-br", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_fd)
    with os.fdopen(read_fd) as reader:
        number = reader.readline().strip()  # Xvfb writes its display number once it is ready
    try:
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def screen_colours(display: str) -> int:
    """How many distinct colours the whole screen shows (a blank one: 1)."""
    from PIL import ImageGrab

    image = ImageGrab.grab(xdisplay=display)
    return len(image.getcolors(maxcolors=1 << 20) or [])


def most_colours_while_running(proc: subprocess.Popen, display: str) -> int:
    """Screenshot the display until the process ends or shows 3+ colours; the most seen."""
    seen = 1
    while proc.poll() is None and seen < 3:
        time.sleep(0.25)
        seen = max(seen, screen_colours(display))
    return seen


def watch(trainer: str, run_dir: Path, display: str, cwd: Path) -> tuple[int, str]:
    """``evaluate.py RUN --render --episodes 1`` on ``display``: the most colours it showed, and
    its stdout (asserting exit code 0)."""
    assert screen_colours(display) == 1  # the black root window, before any window opens
    # No SDL_AUDIODRIVER: on a machine without a sound card evaluate.py must keep SDL's ALSA
    # errors (the ALE window plays sound) and the ALE's banner out of its output itself.
    env = {k: v for k, v in NO_DISPLAY.items() if k != "SDL_AUDIODRIVER"} | {"DISPLAY": display}
    proc = evaluate(trainer, str(run_dir), "--render", "--episodes", "1", env=env, cwd=cwd)
    try:
        seen = most_colours_while_running(proc, display)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "over 1 episodes" in out
    noise = [line for line in err.splitlines() if "ALSA" in line or "A.L.E:" in line]
    assert noise == [], noise
    return seen, out


def test_render_opens_a_window_that_shows_the_env(xvfb_display, runs_dir, tmp_path):
    trained = run_trainer("ppo_continuous", *pendulum_flags(update_epochs=1), "--total-timesteps",
                          "256", "--runs-dir", str(runs_dir), cwd=tmp_path)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    # One Pendulum episode is 200 steps, drawn at its 30 fps: about 7 s of pygame window.
    seen, _ = watch("ppo_continuous", only_run_dir(runs_dir), xvfb_display, tmp_path)
    # Pendulum's frame: a white background, the red rod, its black axle (anti-aliased: many more).
    assert seen >= 3, f"the screen showed {seen} colour(s) while the agent played: no window"


def test_render_shows_the_atari_screen_in_the_ales_window(xvfb_display, runs_dir, tmp_path):
    trained = run_trainer("ppo_atari", "--num-envs", "2", "--num-steps", "32", "--num-minibatches",
                          "1", "--update-epochs", "1", "--total-timesteps", "64",
                          "--runs-dir", str(runs_dir), cwd=tmp_path)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    # A Breakout game at the ROM's 60 fps: the walls, the score and six rows of coloured bricks.
    seen, _ = watch("ppo_atari", only_run_dir(runs_dir), xvfb_display, tmp_path)
    assert seen >= 3, f"the screen showed {seen} colour(s) while the agent played: no window"

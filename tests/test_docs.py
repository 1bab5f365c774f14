"""The documentation site (mkdocs.yml, docs/): it builds strictly, its math is typeset in a real
browser with no network, and the walkthrough shows each paper equation beside the code for it.

The browser tests run Debian's headless Chromium (``apt-get install chromium``). Where it is missing
they are skipped with the reason, which pytest prints. CI installs it (.ci/run) and sets
PPO_REQUIRE_CHROMIUM=1, which turns the skip into a failure (so does CI=true).
"""

from __future__ import annotations

import functools
import html
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WALKTHROUGH = REPO / "docs" / "walkthrough.md"
# The paper's equations that the code implements (the README's table of equations and code).
PAPER_EQUATIONS = (6, 7, 8, 9, 11, 12)
# Raw TeX that must not be left visible on a rendered page.
RAW_TEX = ("\\(", "\\)", "\\[", "\\]", "$$", "\\frac", "\\hat", "\\mathbb", "\\pi", "\\tag", "^{")


def build_site(site_dir: Path, config: Path = REPO / "mkdocs.yml") -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` from the repository root, as the README says, into ``site_dir``."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip


def problems_in_log(build: subprocess.CompletedProcess) -> list[str]:
    log = build.stdout + build.stderr
    bad = [line for line in log.splitlines() if re.match(r"\s*(WARNING|ERROR)\b", line)]
    if build.returncode != 0 and not bad:
        bad = [f"exit code {build.returncode}: {log[-2000:]}"]
    return bad


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    site_dir = tmp_path_factory.mktemp("site")
    return site_dir, build_site(site_dir)


@pytest.fixture(scope="module")
def site(built) -> Path:
    site_dir, build = built
    if problems_in_log(build):
        pytest.fail("mkdocs build --strict failed:\n" + "\n".join(problems_in_log(build)))
    return site_dir


def test_strict_build_has_no_warnings(built):
    site_dir, build = built
    assert problems_in_log(build) == [], build.stdout + build.stderr
    for page in ("index.html", "walkthrough/index.html", "usage/index.html",
                 "implementation/atari/index.html", "implementation/continuous/index.html",
                 "results/index.html", "benchmarks/atari_learning/index.html"):  # fmt: skip
        assert (site_dir / page).is_file(), page


def test_strict_build_fails_on_a_missing_include(tmp_path):
    """A snippet whose section is gone (renamed in the code) must fail the build, not vanish."""
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    page = docs / "walkthrough.md"
    page.write_text(page.read_text().replace(":clipped_surrogate", ":no_such_section", 1))
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config["docs_dir"] = str(docs)
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    build = build_site(tmp_path / "site", tmp_path / "mkdocs.yml")
    assert build.returncode != 0
    assert "no_such_section" in build.stdout + build.stderr


def test_site_loads_nothing_from_another_host(site):
    """No CDN: every script, stylesheet, font and image the pages load is a file of the site."""
    remote = re.compile(
        r"""<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//"""
    )
    css_remote = re.compile(r"""(?:url\(|@import\s+)["']?(?:https?:)?//""")
    offenders = []
    for path in site.rglob("*"):
        if path.suffix == ".html":
            offenders += [f"{path}: {m.group(0)}" for m in remote.finditer(path.read_text())]
        elif path.suffix == ".css":
            offenders += [f"{path}: {m.group(0)}" for m in css_remote.finditer(path.read_text())]
    assert offenders == []
    katex = site / "assets" / "katex"
    assert (katex / "katex.min.js").is_file() and (katex / "katex.min.css").is_file()
    assert list((katex / "fonts").glob("KaTeX_Main-Regular.woff2"))


# The walkthrough: every equation the code uses, beside the code that implements it


def source_section(path: Path, name: str) -> str:
    """The lines between ``--8<-- [start:name]`` and ``--8<-- [end:name]`` of a source file."""
    text = path.read_text()
    match = re.search(
        rf"^[^\n]*--8<-- \[start:{re.escape(name)}\][^\n]*\n(.*?)^[^\n]*--8<-- \[end:{re.escape(name)}\]",
        text, flags=re.M | re.S,
    )  # fmt: skip
    assert match, f"{path} has no section {name!r}"
    return match.group(1)


def walkthrough_sections() -> list[str]:
    return re.split(r"^## ", WALKTHROUGH.read_text(), flags=re.M)[1:]


@pytest.mark.parametrize("equation", PAPER_EQUATIONS)
def test_equation_is_beside_the_code_that_implements_it(equation, site):
    """The equation is typeset with its number, and the same section of the walkthrough includes
    source lines that name that equation (the implementing function's docstring) and a flag."""
    tag = re.compile(rf"\\tag\{{{equation}\}}")
    holding = [s for s in walkthrough_sections() if tag.search(s)]
    assert len(holding) == 1, f"eq. {equation} should be typeset once, \\tag{{{equation}}}"
    section = holding[0]
    includes = re.findall(r'^--8<-- "([^":]+):([\w-]+)"$', section, flags=re.M)
    assert includes, f"no source included beside eq. {equation}"
    sources = {name: source_section(REPO / path, name) for path, name in includes}
    naming = [name for name, src in sources.items() if re.search(rf"\b[Ee]q\. {equation}\b", src)]
    assert naming, (
        f"none of {list(sources)} beside eq. {equation} says it implements eq. {equation}"
    )
    assert re.search(r"\*\*Flags?:\*\* .*`--[a-z]", section), f"no flag given for eq. {equation}"
    # The built page shows those very lines (the include worked, it is not an empty block).
    page = page_text((site / "walkthrough" / "index.html").read_text())
    for name in naming:
        first_line = next(line for line in sources[name].splitlines() if line.strip())
        assert first_line.strip() in page, f"{name}'s code is not on the built page"


def page_text(markup: str) -> str:
    """The visible text of a page: tags, scripts, styles and KaTeX's hidden MathML source removed."""
    markup = re.sub(r"<(script|style|annotation)\b.*?</\1>", " ", markup, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def test_clip_plot_script_draws_what_the_code_computes(tmp_path):
    out = tmp_path / "clip.png"
    drawn = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "plot_clip_objective.py"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    spec = importlib.util.spec_from_file_location(
        "plot_clip", REPO / "scripts/plot_clip_objective.py"
    )
    plot = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = plot  # dataclasses look their module up there
    spec.loader.exec_module(plot)
    import numpy as np

    ratios = np.array([0.5, 1.0, 1.5])
    clipped, unclipped = plot.objective_curves(ratios, 1.0, 0.2)
    assert np.allclose(clipped, [0.5, 1.0, 1.2]) and np.allclose(unclipped, ratios)
    clipped, _ = plot.objective_curves(ratios, -1.0, 0.2)
    assert np.allclose(clipped, [-0.8, -1.0, -1.5])
    assert (REPO / "docs" / "img" / "clip_objective.png").is_file()  # the walkthrough's copy


# A real browser: headless Chromium renders the walkthrough from a local server


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    reason = "needs headless Chromium (Debian: apt-get install chromium)"
    if os.environ.get("PPO_REQUIRE_CHROMIUM") == "1" or os.environ.get("CI") == "true":
        pytest.fail(reason)  # .ci/run installs it: CI must not skip these
    pytest.skip(reason)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class LocalServer:
    """The built site over HTTP on 127.0.0.1, a free port, in a thread: what ``mkdocs serve``
    and any static host give a browser."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def browse(url: str, profile: Path, *mode: str) -> subprocess.CompletedProcess:
    """Headless Chromium on ``url``; it runs the page's scripts for up to 20 s of virtual time first."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--virtual-time-budget=20000", *mode, url],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def math_problems(rendered: str, static: str) -> list[str]:
    """What is wrong with the math of a page as the browser left it (``rendered``, its DOM), given
    the page as built (``static``). Empty when KaTeX typeset every formula."""
    problems = []
    formulas = len(re.findall(r'class="arithmatex"', static))
    displays = len(re.findall(r'<div class="arithmatex"', static))
    if formulas == 0:
        problems.append("the built page has no formulas")
    typeset = len(re.findall(r'<span class="katex"', rendered))
    shown = len(re.findall(r'<span class="katex-display"', rendered))
    if typeset < formulas:
        problems.append(f"KaTeX typeset {typeset} of the page's {formulas} formulas")
    if shown < displays:
        problems.append(f"{shown} of {displays} display equations are typeset as displays")
    if "katex-error" in rendered:
        problems.append("KaTeX could not parse a formula (katex-error)")
    text = page_text(re.sub(r"<pre\b.*?</pre>", " ", rendered, flags=re.S))
    problems += [f"raw TeX {tex!r} is visible" for tex in RAW_TEX if tex in text]
    return problems


@pytest.fixture(scope="module")
def served_site(site):
    chromium()
    server = LocalServer(site)
    yield server.url, site
    server.close()


def test_browser_renders_the_walkthrough_math(served_site, tmp_path):
    url, site = served_site
    dumped = browse(f"{url}/walkthrough/", tmp_path / "profile", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    static = (site / "walkthrough" / "index.html").read_text()
    assert math_problems(dumped.stdout, static) == []
    assert len(re.findall(r'<span class="katex"', dumped.stdout)) >= 50
    assert "katex-display" in dumped.stdout and "clip_objective.png" in dumped.stdout

    shot = Path(os.environ.get("PPO_DOCS_SCREENSHOT", tmp_path / "walkthrough.png"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    taken = browse(
        f"{url}/walkthrough/",
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,2400",
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    print(f"screenshot of the walkthrough: {shot}")


def test_browser_check_fails_without_katex(tmp_path):
    """The check above can fail: the same site without KaTeX's script leaves raw TeX."""
    chromium()
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config["docs_dir"] = str(REPO / "docs")
    config["extra_javascript"].remove("assets/katex/katex.min.js")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    build = build_site(tmp_path / "site", tmp_path / "mkdocs.yml")
    assert build.returncode == 0, build.stdout + build.stderr
    server = LocalServer(tmp_path / "site")
    try:
        dumped = browse(f"{server.url}/walkthrough/", tmp_path / "profile", "--dump-dom")
    finally:
        server.close()
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    static = (tmp_path / "site" / "walkthrough" / "index.html").read_text()
    problems = math_problems(dumped.stdout, static)
    assert any("KaTeX typeset 0 of" in p for p in problems), problems
    assert any("raw TeX" in p for p in problems), problems

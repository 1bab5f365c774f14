"""The documentation site (mkdocs.yml, docs/): it builds strictly, its math is typeset in a real
browser with no network, and the walkthrough shows each paper equation beside the code for it.

The browser tests run Debian's headless Chromium (``apt-get install chromium``). Where it is missing
they are skipped with the reason, which pytest prints. CI installs it (.ci/run) and sets
PPO_REQUIRE_CHROMIUM=1, which turns the skip into a failure (so does CI=true).
"""

from __future__ import annotations

import concurrent.futures
import functools
import html
import http.server
import importlib.util
import json
import os
import re
import shlex
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


# The README is the front page; everything else lives once, in the site


README = REPO / "README.md"


def markdown_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").rglob("*.md"))]


def paragraphs(path: Path) -> list[str]:
    """The prose paragraphs and table rows of a Markdown file, whitespace collapsed; code blocks,
    headings, include lines and short lines (a label, a link list entry) left out."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    blocks = [" ".join(block.split()) for block in re.split(r"\n\s*\n", text)]
    pieces = []
    for block in blocks:
        rows = block.split("| |") if block.startswith("|") else [block]
        pieces += [p for p in rows if len(p) >= 80 and not p.startswith(("#", "--8<--"))]
    return pieces


def test_readme_is_a_front_page():
    """At most ~150 lines, the CPU-torch note before the two commands (the main job, then the
    tests), and the site's table of contents on the first screen."""
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines"
    main_job = next(i for i, line in enumerate(lines) if "ppo_atari/train.py" in line)
    tests = next(i for i, line in enumerate(lines) if line.endswith("python -m pytest -q"))
    cpu_note = next(i for i, line in enumerate(lines) if "download.pytorch.org/whl/cpu" in line)
    assert cpu_note < main_job < tests
    first_screen = "\n".join(lines[:40])
    for page in ("docs/walkthrough.md", "docs/usage.md", "docs/results/index.md"):
        assert f"]({page}" in first_screen, page


def test_no_paragraph_is_in_both_the_readme_and_the_site():
    """The site includes what it shares with the README from it (``--8<-- "README.md:..."``), so
    the two cannot drift apart."""
    in_docs = {p for page in markdown_files()[1:] for p in paragraphs(page)}
    # The Table 1 headline is quoted from its page on purpose (tests/test_results_pages.py).
    shared = [p for p in paragraphs(README) if p in in_docs and not p.startswith("**Headline (")]
    assert shared == []


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every ``python <script>.py ...`` command of the README and the docs (code blocks and inline
    code), as (script, flags), the placeholders of run folders included."""
    commands = []
    for path in markdown_files():
        text = path.read_text()
        spans = re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)
        spans += re.findall(r"`((?:python|xvfb-run|torchrun)[^`\n]*)`", text)
        for span in spans:
            for line in span.replace("\\\n", " ").splitlines():
                for segment in re.split(r"&&|\|\|", line):
                    words = shlex.split(segment.replace("<", "_").replace(">", "_"), comments=True)
                    scripts = [i for i, w in enumerate(words) if w.endswith(".py")]
                    if scripts and words[scripts[0]] == "main.py":
                        continue  # PPO-for-Beginners' own command, beside ours in the map
                    if scripts and "python" in " ".join(words[: scripts[0]]) + "torchrun":
                        flags = [
                            w.split("=")[0] for w in words[scripts[0] + 1 :] if w.startswith("--")
                        ]
                        commands.append((words[scripts[0]], flags))
    return commands


def help_of(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_every_documented_command_runs_and_knows_its_flags():
    """``--help`` of each script the README and the site give a command for exits 0, and names
    every flag those commands use (a renamed flag fails here, not on a reader's machine)."""
    commands = documented_commands()
    scripts = sorted({script for script, _ in commands})
    assert "ppo_continuous/train.py" in scripts and "scripts/benchmark.py" in scripts
    for script in scripts:
        assert (REPO / script).is_file(), f"{script} is documented but does not exist"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        helps = dict(zip(scripts, pool.map(help_of, scripts), strict=True))
    unknown = []
    for script, result in helps.items():
        assert result.returncode == 0, f"{script} --help: {result.stderr[-1000:]}"
    for script, flags in commands:
        known = helps[script].stdout
        unknown += [
            f"{script} {flag}" for flag in flags if not re.search(rf"{flag}(?![\w-])", known)
        ]
    assert unknown == []


# The results pages as a reader sees them on a laptop screen

LAPTOP = (1280, 900)  # px: a common laptop screen, the browser window's inner size
# Loads a page of the site in a frame of the laptop's size and writes, once laid out, what a reader
# would have to scroll sideways for: each table wider than its box, and where the column named
# "paper" ends. --dump-dom then prints it in the element #layout.
LAYOUT_PROBE = """<!doctype html><html><body style="margin:0">
<iframe id="page" src="PAGE" style="width:WIDTHpx;height:HEIGHTpx;border:0"></iframe>
<pre id="layout">not measured</pre>
<script>
document.getElementById("page").addEventListener("load", () => setTimeout(() => {
  const doc = document.getElementById("page").contentDocument;
  const view = doc.documentElement.clientWidth;
  const tables = [...doc.querySelectorAll(".md-typeset table")].map((table, i) => {
    const box = table.closest(".md-typeset__scrollwrap") || table.parentElement;
    const heads = [...table.querySelectorAll("th")].map((th) => th.textContent.trim());
    const paper = [...table.querySelectorAll("th")].find((th) => th.textContent.trim() === "paper");
    return {index: i, heads: heads, scrolls: box.scrollWidth > box.clientWidth + 1,
            paper_right: paper ? paper.getBoundingClientRect().right : null};
  });
  document.getElementById("layout").textContent = JSON.stringify({view: view, tables: tables});
}, 500));
</script></body></html>"""


def laid_out(url: str, site: Path, page: str, profile: Path) -> dict:
    """The layout of ``page`` (a path of the site) at the laptop's size, as the probe measures it."""
    probe = site / "layout-probe.html"
    width, height = LAPTOP
    probe.write_text(LAYOUT_PROBE.replace("PAGE", page).replace("WIDTH", str(width))
                     .replace("HEIGHT", str(height)))  # fmt: skip
    dumped = browse(f"{url}/layout-probe.html", profile, "--dump-dom",
                    f"--window-size={width + 20},{height + 200}")  # fmt: skip
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    match = re.search(r'<pre id="layout">(.*?)</pre>', dumped.stdout, flags=re.S)
    assert match and match.group(1) != "not measured", dumped.stdout[-2000:]
    return json.loads(html.unescape(match.group(1)))


def test_table1_page_shows_the_papers_column_on_a_laptop_screen(served_site, tmp_path):
    """At 1280 px the Table 1 page's tables need no sideways scroll and its main table's "paper"
    column is in view; a screenshot of the page is kept for a person to look at."""
    url, site = served_site
    layout = laid_out(url, site, "/results/paper-table1/", tmp_path / "profile")
    tables = layout["tables"]
    # Table 1 itself, and the comparison of the setups once the 2017 record has runs: each has a
    # "paper" column, and each shows it without scrolling
    with_paper = [t for t in tables if t["paper_right"] is not None]
    assert with_paper
    for table in with_paper:
        assert 0 < table["paper_right"] <= layout["view"], (table, layout["view"])
    assert [t["heads"][:3] for t in tables if t["scrolls"]] == []

    shot = Path(os.environ.get("PPO_TABLE1_SCREENSHOT", tmp_path / "table1.png"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    width, height = LAPTOP
    taken = browse(f"{url}/results/paper-table1/", tmp_path / "profile", f"--screenshot={shot}",
                   f"--window-size={width},{height}")  # fmt: skip
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot of the Table 1 page at {width} px: {shot}")

"""docs/results/ is what scripts/report.py makes of the committed results records, exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from conftest import REPO

RESULTS = REPO / "docs" / "results"


def test_report_on_the_record_alone_reproduces_the_results_pages(tmp_path):
    from presets import presets as known

    # a record reported with another preset (the ablation's pairs) is on that preset's page
    records = [p.parent.name for p in (RESULTS / "records").glob("*/runs.csv")]
    presets = sorted({known()[name].reported_with or name for name in records})
    assert "paper-table1" in presets  # the Table 1 record is on main
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "report.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for preset in presets:
        page = f"{preset}.md"
        assert (tmp_path / page).read_text() == (RESULTS / page).read_text(), page
        made = sorted(p.relative_to(tmp_path) for p in (tmp_path / "img" / preset).glob("*.png"))
        committed = sorted(p.relative_to(RESULTS) for p in (RESULTS / "img" / preset).glob("*.png"))
        assert made == committed and made, (made, committed)
        for name in made:
            assert np.array_equal(iio.imread(tmp_path / name), iio.imread(RESULTS / name)), name


def test_every_results_page_is_on_the_site():
    nav = (REPO / "mkdocs.yml").read_text()
    for page in RESULTS.glob("*.md"):
        assert f"results/{page.name}" in nav, page.name


def test_the_record_holds_runs_of_the_preset_only():
    from presets import presets
    from records import Record

    for folder in (RESULTS / "records").glob("*/runs.csv"):
        preset = presets()[folder.parent.name]
        record = Record.load(folder.parent)
        for env_id, variant, seed in record.rows:
            assert env_id in preset.env_ids and variant in preset.variants and seed in preset.seeds
        assert set(record.curves) == set(record.rows)
        assert all(r["status"] in ("finished", "diverged") for r in record.rows.values())
        assert all(Path(r["run_name"]).name == r["run_name"] for r in record.rows.values())


def test_the_readme_quotes_table1_headline_as_the_page_has_it():
    """The README's Table 1 headline (best setting, clip 0.2, no clipping, runs counted) is the
    line report.py writes on the page, so it cannot fall behind the record."""
    page = (RESULTS / "paper-table1.md").read_text().splitlines()
    (line,) = [line for line in page if line.startswith("**Headline (")]
    assert "Clipping, epsilon = 0.2: " in line and "No clipping or penalty: " in line
    assert line in (REPO / "README.md").read_text().splitlines()

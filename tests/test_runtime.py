"""Provenance in every summary: the commit of the code and the host it ran on."""

from __future__ import annotations

import subprocess

from conftest import REPO

from common.runtime import code_version, host_description


def test_code_version_is_this_checkouts_commit():
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert code_version() == head + ("+dirty" if dirty else "")


def test_host_description_names_cores():
    assert host_description().endswith(" cores") and len(host_description()) > len(" cores")

"""The code may be reused and cited: an OSI licence that the package metadata names, and a citation file for the
software that references the paper it reproduces (README's BibTeX names the same paper)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

import dhclib

ROOT = Path(__file__).resolve().parent.parent


def test_the_licence_is_mit_and_the_package_says_so():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]


def test_the_citation_file_cites_the_software_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert cff["version"] == dhclib.__version__  # the one place it is written: dhclib/_version.py
    paper = cff["references"][0]
    assert paper["title"] == "Differentiable Hebbian Consolidation for Continual Learning"
    readme = (ROOT / "README.md").read_text()
    assert "@misc{" in readme and f"title        = {{{paper['title']}}}" in readme

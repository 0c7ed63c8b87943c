"""The docs site's hook that pulls README sections into pages and fixes their links."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

_ROOT = Path(__file__).parents[2]


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "readme_sections", _ROOT / "docs" / "_hooks" / "readme_sections.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hook = _hook()

README = """# proj

Intro, see [Usage](#usage) and [the docs](docs/).

## Usage

Run [the tutorial](docs/tutorial.md) or [examples/demo](examples/demo),
or read [the report](benchmarks/latest.md).

```bash
# not a heading
echo "[x](docs/kept.md)"
```

### Details

Deeper.

## Other

Last.
"""


def test_a_section_stops_at_the_next_heading_outside_code() -> None:
    section = hook.readme_section(README, "Usage")
    assert section.startswith("Run [the tutorial]")
    assert "# not a heading" in section
    assert "Deeper" not in section and "Last" not in section
    assert hook.readme_section(README, "Other") == "Last.\n"
    assert hook.readme_section(README, "*") == README


def test_a_missing_section_fails_the_build() -> None:
    with pytest.raises(KeyError, match="Renamed"):
        hook.readme_section(README, "Renamed")


def test_included_links_are_made_right_for_the_site() -> None:
    page = "# Page\n\n[README: Usage](../README.md#usage)\n\nAfter.\n"
    out = hook.expand(page, README)
    assert "[README:" not in out
    assert "Run [the tutorial](tutorial.md)" in out
    assert "or examples/demo,\n" in out  # no page on the site: the path, unlinked
    assert "[the report]" not in out and "the report (`benchmarks/latest.md` in" in out
    assert 'echo "[x](docs/kept.md)"' in out  # code is left alone
    assert out.endswith("After.\n")


def test_links_leaving_docs_on_any_page() -> None:
    page = "See [the intro](../README.md#usage), [home](../README.md) and [x](../examples/x).\n"
    assert hook.expand(page, README) == (
        "See [the intro](index.md#usage), [home](index.md) "
        "and x (`examples/x` in the repository).\n"
    )
    whole = hook.expand("[README: *](../README.md)\n", README)
    assert "see [Usage](index.md#usage) and [the docs](index.md)" in whole


def test_a_readme_image_under_docs_is_a_file_of_the_site() -> None:
    readme = "# p\n\n## Shots\n\n![The report](docs/images/report.png)\n"
    out = hook.expand("[README: Shots](../README.md#shots)\n", readme)
    assert out.strip() == "![The report](images/report.png)"


def test_every_directive_in_the_docs_names_a_readme_section() -> None:
    readme = (_ROOT / "README.md").read_text()
    for page in sorted((_ROOT / "docs").glob("*.md")):
        for title in re.findall(r"^\[README: ([^\]]+)\]", page.read_text(), re.M):
            hook.readme_section(readme, title)


def test_sphinx_roles_read_as_code() -> None:
    html = (
        "<p>raises :class:<code>~slurm.errors.InvalidOptionError</code>; see "
        ":func:<code>slurm.task</code>.</p><p>Example::</p>"
    )
    assert hook.plain_roles(html) == (
        "<p>raises <code>InvalidOptionError</code>; see <code>slurm.task</code>.</p><p>Example:</p>"
    )

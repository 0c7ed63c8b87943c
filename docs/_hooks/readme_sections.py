"""MkDocs hook: the README stays the one source of what it says; docs pages pull sections of it.

A paragraph that is only a link ``[README: Title](../README.md#anchor)`` is a
link to that README section on GitHub, and on the site it is replaced by the
section itself (``[README: *](../README.md)`` brings the whole README).
Links are then made right for the site, on every page:

- the README's ``docs/page.md`` become ``page.md`` (images ``docs/images/x.png``
  too), its ``#anchor`` become ``index.md#anchor`` (the home page is the README);
- ``../README.md#anchor`` becomes ``index.md#anchor``;
- a link to a file of the repository outside ``docs/`` (an example project,
  a benchmark report) keeps its text and names the path, since the site has
  no such page.

Code blocks are left as they are.

The API reference's docstrings use Sphinx's roles (``:class:`~slurm.Job```)
and ``Example::``; :func:`plain_roles` shows those as plain code and a plain
colon on the built pages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_DIRECTIVE = re.compile(
    r"^\[README: (?P<title>[^\]]+)\]\(\.\./README\.md(?:#[^)\s]*)?\)[ \t]*$", re.M
)
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]+)\]\((?P<target>[^)\s]+)\)")
_IMAGE = re.compile(r"!\[(?P<text>[^\]\n]*)\]\(docs/(?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")
_FENCE = re.compile(r"^(```|~~~)")
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>~?([\w.]+)</code>")


def readme_section(readme: str, title: str) -> str:
    """The text of the README section ``title`` (heading excluded) down to the next
    heading (its subsections are not included); ``"*"`` is the whole README.

    Raises:
        KeyError: the README has no such heading (so a renamed section fails the build).
    """
    if title == "*":
        return readme
    lines = readme.splitlines()
    start = None
    in_code = False
    for number, line in enumerate(lines):
        if _FENCE.match(line):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match is None:
            continue
        if start is None:
            if match.group(2) == title:
                start = number + 1
        else:
            return "\n".join(lines[start:number]).strip("\n") + "\n"
    if start is None:
        raise KeyError(f"README.md has no section titled {title!r}")
    return "\n".join(lines[start:]).strip("\n") + "\n"


def _outside_code(markdown: str, change: Any) -> str:
    """``change`` applied to the parts of ``markdown`` outside fenced code blocks."""
    parts: list[str] = []
    chunk: list[str] = []
    in_code = False
    for line in markdown.splitlines(keepends=True):
        if _FENCE.match(line.lstrip()):
            if not in_code:
                parts.append(change("".join(chunk)))
                chunk = []
            in_code = not in_code
            parts.append(line)
            continue
        (parts if in_code else chunk).append(line)
    parts.append(change("".join(chunk)))
    return "".join(parts)


def _from_repo_root(text: str) -> str:
    """README links (relative to the repository root) as seen from a page in docs/."""

    def fix(match: re.Match[str]) -> str:
        target = match.group("target")
        if "://" in target or target.startswith("mailto:"):
            return match.group(0)
        if target.startswith("#"):
            target = "index.md" + target
        elif target.startswith("docs/"):
            target = target.removeprefix("docs/") or "index.md"
        else:
            target = "../" + target
        return f"[{match.group('text')}]({target})"

    # An image under docs/ (a screenshot) is a file of the site too.
    return _LINK.sub(fix, _IMAGE.sub(r"![\g<text>](\g<target>)", text))


def _for_site(text: str) -> str:
    """Links that leave docs/: the README is the home page; other files are named."""

    def fix(match: re.Match[str]) -> str:
        text, target = match.group("text"), match.group("target")
        if not target.startswith("../"):
            return match.group(0)
        path, _, anchor = target.removeprefix("../").partition("#")
        if path == "README.md":
            return f"[{text}](index.md{'#' + anchor if anchor else ''})"
        return text if text.strip("`") == path else f"{text} (`{path}` in the repository)"

    return _LINK.sub(fix, text)


def expand(markdown: str, readme: str) -> str:
    """``markdown`` with its README directives replaced and its links made right for the site."""

    def include(match: re.Match[str]) -> str:
        section = readme_section(readme, match.group("title"))
        return _outside_code(section, _from_repo_root)

    return _outside_code(_DIRECTIVE.sub(include, markdown), _for_site)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs entry point (``hooks:`` in mkdocs.yml)."""
    del page, files
    readme = Path(config["docs_dir"]).parent.joinpath("README.md").read_text(encoding="utf-8")
    return expand(markdown, readme)


def plain_roles(html: str) -> str:
    """Sphinx roles as code (``~`` keeps the last name only), ``Word::`` as ``Word:``."""

    def code(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"<code>{name.rsplit('.', 1)[-1] if match.group(0).count('~') else name}</code>"

    return _ROLE.sub(code, html).replace("::</p>", ":</p>")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs entry point: the rendered page, before the theme wraps it."""
    del page, config, files
    return plain_roles(html)

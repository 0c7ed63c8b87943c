"""The closure of local modules a call needs: table-driven, on source trees in tmp dirs."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from slurm._client.packaging.closure import call_roots, find_closure, imported_names

# Each tree: relative path -> content. "site/" plays site-packages (never local).
BASE = {
    "main.py": "import helpers\nfrom stats import describe\nprint(helpers.mean([1]))\n",
    "helpers.py": "import json\nimport os.path\nimport stats.describe\nimport numpyish\n"
    "def mean(xs):\n    return sum(xs) / len(xs)\n",
    "stats/__init__.py": "from .describe import summary\n",
    "stats/describe.py": "from . import util\nfrom .util import scale\n"
    "def summary(x):\n    return scale(x)\n",
    "stats/util.py": "def scale(x):\n    return x\n",
    "stats/table.json": '{"k": 1}\n',
    "stats/data/weights.yaml": "a: 1\n",
    "stats/__pycache__/util.cpython-311.pyc": "junk",
    "stats/.hidden": "secret",
    "site/numpyish/__init__.py": "import helpers_in_site\n",
    "unrelated.py": "import helpers\n",
}

CASES: list[tuple[str, dict[str, str], list[str], list[str], list[str]]] = [
    # (id, extra files, roots, expected names, exclude)
    ("module-imports-package", {}, ["helpers"], ["helpers", "stats"], []),
    ("package-alone", {}, ["stats"], ["stats"], []),
    ("site-and-stdlib-are-not-shipped", {}, ["numpyish", "json", "os"], [], []),
    ("unknown-names-are-ignored", {}, ["no_such_module"], [], []),
    ("the-sdk-is-never-shipped", {"slurm.py": "x = 1\n"}, ["slurm"], [], []),
    ("a-wheel-provides-it", {}, ["helpers"], ["helpers"], ["stats"]),
    (
        "imports-inside-functions-count",
        {"lazy.py": "def f():\n    import later\n", "later.py": "x = 1\n"},
        ["lazy"],
        ["later", "lazy"],
        [],
    ),
    (
        "transitive-through-a-package",
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from other.b import c\n",
            "other/__init__.py": "",
            "other/b.py": "c = 1\n",
        },
        ["pkg"],
        ["other", "pkg"],
        [],
    ),
    (
        "syntax-errors-do-not-stop-it",
        {"broken.py": "def (:\n", "user.py": "import broken\n"},
        ["user"],
        ["broken", "user"],
        [],
    ),
    ("cycles-end", {"a.py": "import b\n", "b.py": "import a\n"}, ["a"], ["a", "b"], []),
]


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _closure(root: Path, roots: list[str], exclude: Sequence[str] = ()) -> Any:
    site = [root / "site"]
    return find_closure(
        roots,
        exclude=exclude,
        modules={},
        search_path=[str(root), str(root / "site")],
        dirs=site,
        installed_dirs=site,
    )


@pytest.mark.parametrize(
    ("extra", "roots", "expected", "exclude"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_closure_names(
    tmp_path: Path, extra: dict[str, str], roots: list[str], expected: list[str], exclude: list[str]
) -> None:
    _write(tmp_path, {**BASE, **extra})
    assert list(_closure(tmp_path, roots, exclude).names) == expected


def test_packages_travel_whole_with_their_data_and_without_caches(tmp_path: Path) -> None:
    _write(tmp_path, BASE)
    files = [relative for relative, _ in _closure(tmp_path, ["helpers"]).files()]
    assert files == [
        "helpers.py",
        "stats/__init__.py",
        "stats/data/weights.yaml",
        "stats/describe.py",
        "stats/table.json",
        "stats/util.py",
    ]


def test_an_imported_namespace_package_travels_as_a_directory(tmp_path: Path) -> None:
    _write(tmp_path, {"ns/mod.py": "import json\n", "user.py": "import ns.mod\n"})
    assert _closure(tmp_path, ["user"]).names == ("user",)  # a mere folder: not shipped
    namespace = types.ModuleType("ns")
    namespace.__path__ = [str(tmp_path / "ns")]
    closure = find_closure(
        ["user"], modules={"ns": namespace}, search_path=[str(tmp_path)], dirs=[tmp_path / "site"]
    )
    assert closure.names == ("ns", "user")
    assert [r for r, _ in closure.files()] == ["ns/mod.py", "user.py"]


def test_files_travel_under_their_import_names_through_links(tmp_path: Path) -> None:
    _write(tmp_path, {"real/helpers_v2.py": "x = 1\n", "real/pkg_v2/__init__.py": ""})
    (tmp_path / "helpers.py").symlink_to(tmp_path / "real" / "helpers_v2.py")
    (tmp_path / "pkg").symlink_to(tmp_path / "real" / "pkg_v2")
    closure = _closure(tmp_path, ["helpers", "pkg"])
    assert [r for r, _ in closure.files()] == ["helpers.py", "pkg/__init__.py"]


def test_digest_follows_content_and_data_files(tmp_path: Path) -> None:
    _write(tmp_path, BASE)
    first = _closure(tmp_path, ["helpers"]).digest()
    assert _closure(tmp_path, ["helpers"]).digest() == first
    (tmp_path / "stats" / "table.json").write_text('{"k": 2}\n')
    second = _closure(tmp_path, ["helpers"]).digest()
    assert second != first
    (tmp_path / "unrelated.py").write_text("changed = True\n")  # not in the closure
    assert _closure(tmp_path, ["helpers"]).digest() == second


def test_imported_modules_are_resolved_from_where_they_were_imported(tmp_path: Path) -> None:
    """A name already imported resolves to that module's file, not to the search path."""
    _write(tmp_path, {**BASE, "elsewhere/helpers.py": "import json\n"})
    imported = types.ModuleType("helpers")
    imported.__file__ = str(tmp_path / "elsewhere" / "helpers.py")
    closure = find_closure(
        ["helpers"],
        modules={"helpers": imported},
        search_path=[str(tmp_path)],
        dirs=[tmp_path / "site"],
    )
    assert [str(p) for _, p in closure.files()] == [imported.__file__]


def test_imported_names_reads_every_absolute_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import a.b, c\nfrom d.e import f\nfrom . import g\nfrom .h import i\n"
        "def k():\n    import j\n"
    )
    assert imported_names(source) == {"a", "c", "d", "j"}


def test_imported_names_finds_an_import_in_every_kind_of_block(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "class A:\n    import k1\n    def f(self):\n        import k2\n"
        "if x:\n    import k3\nelif y:\n    import k4\nelse:\n    import k5\n"
        "for i in x:\n    import k6\nelse:\n    import k7\n"
        "while x:\n    import k8\nelse:\n    import k9\n"
        "try:\n    import k10\nexcept E:\n    import k11\nelse:\n    import k12\n"
        "finally:\n    import k13\n"
        "with x:\n    import k14\n"
        "async def g():\n    async with x:\n        import k15\n"
        "    async for i in x:\n        import k16\n"
        "match x:\n    case 1:\n        import k17\n"
        "f = lambda: __import__('not_an_import_statement')\n"
        "s = 'import not_code'\n"
    )
    assert imported_names(source) == {f"k{i}" for i in range(1, 18)}


def test_imported_names_agrees_with_a_walk_of_every_node_on_the_sdks_own_sources() -> None:
    import ast

    import slurm

    for path in Path(slurm.__file__).parent.rglob("*.py"):
        every: set[str] = set()
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.Import):
                every.update(alias.name.split(".", 1)[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                every.add(node.module.split(".", 1)[0])
        assert imported_names(path) == every, path


def _by_value_function() -> Any:
    helpers = types.ModuleType("helpers_for_roots")
    scope: dict[str, Any] = {"helpers_for_roots": helpers, "__builtins__": __builtins__}
    exec(
        "def task(x):\n"
        "    import lazy_for_roots\n"
        "    return helpers_for_roots.mean(x) + len(str(x))\n",
        scope,
    )
    return scope["task"]


class _Local:
    pass


_Local.__module__ = "argmodule_for_roots"


def test_call_roots_of_a_function_by_value_and_its_arguments() -> None:
    roots = call_roots(_by_value_function(), None, [1, [_Local()], {"k": "v"}])
    assert {"helpers_for_roots", "lazy_for_roots", "argmodule_for_roots"} <= roots


def test_call_roots_of_a_function_by_reference() -> None:
    # Its module, and what its own code imports (a library it imports lazily).
    assert call_roots(_by_value_function(), "pkg.tasks", []) == {"pkg", "lazy_for_roots"}


def test_installed_modules_the_local_code_uses_are_reported(tmp_path: Path) -> None:
    """helpers imports numpyish (in site-packages): the job's environment needs it."""
    _write(tmp_path, BASE)
    site = tmp_path / "site"
    numpyish = types.ModuleType("numpyish")
    numpyish.__file__ = str(site / "numpyish" / "__init__.py")
    numpyish.__path__ = [str(site / "numpyish")]
    imported = find_closure(
        ["helpers", "json"],
        modules={"numpyish": numpyish},
        search_path=[str(tmp_path), str(site)],
        dirs=[site],
        installed_dirs=[site],
    )
    assert imported.installed == ("numpyish",)  # json is the standard library's
    # Not imported here yet: only the call's own code makes it count.
    assert _closure(tmp_path, ["helpers"]).installed == ()
    assert _closure(tmp_path, ["numpyish"]).installed == ("numpyish",)
    assert _closure(tmp_path, ["stats"]).installed == ()


def test_the_cached_closure_follows_edits_and_new_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """find_closure's defaults answer again from a cache, but never a stale one: an edit
    that adds a local import, a new module file on the path, or a new import in the
    process each make it look again (a notebook edits helpers.py between two calls)."""
    import os
    import sys
    import time

    from slurm._client.packaging import closure

    (tmp_path / "helpers.py").write_text("import json\n")
    (tmp_path / "extra.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(closure, "_closures", {})
    first = find_closure(["helpers"])
    assert first.names == ("helpers",)
    assert find_closure(["helpers"]) is first  # answered from the cache

    def later(path: Path, step: int) -> None:  # another mtime even on a coarse clock
        when = time.time_ns() + step * 10**9
        os.utime(path, ns=(when, when))

    (tmp_path / "helpers.py").write_text("import json\nimport extra\nimport later\n")
    later(tmp_path / "helpers.py", 1)
    edited = find_closure(["helpers"])
    assert edited.names == ("extra", "helpers")  # the edit is seen; later.py is missing
    (tmp_path / "later.py").write_text("y = 2\n")
    later(tmp_path, 2)
    again = find_closure(["helpers"])
    assert again.names == ("extra", "helpers", "later")
    monkeypatch.setitem(sys.modules, "brand_new_module_for_the_test", types.ModuleType("x"))
    assert find_closure(["helpers"]) is not again  # a new import: looked at again

    # A package's data file travels: editing it in place changes the digest.
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "__init__.py").write_text("")
    (tmp_path / "tables" / "t.json").write_text('{"k": 1}')
    later(tmp_path, 3)
    digest = find_closure(["tables"]).digest()
    assert find_closure(["tables"]).digest() == digest
    (tmp_path / "tables" / "t.json").write_text('{"k": 2}')
    later(tmp_path / "tables" / "t.json", 4)
    assert find_closure(["tables"]).digest() != digest


def test_the_process_stamp_follows_sys_path_and_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local directories on sys.path are worked out once per sys.path and working
    directory: a "" entry stamps the directory the process is in now, not the first one."""
    from slurm._client.packaging import closure

    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    monkeypatch.chdir(one)
    assert str(one) in {path for path, _, _ in closure._process_stamp()[1]}
    monkeypatch.chdir(two)
    stamped = {path for path, _, _ in closure._process_stamp()[1]}
    assert str(two) in stamped and str(one) not in stamped
    monkeypatch.setattr(sys, "path", [str(one), *sys.path[1:]])
    stamped = {path for path, _, _ in closure._process_stamp()[1]}
    assert str(one) in stamped and str(two) not in stamped

"""The package's layers, enforced: no import climbs a layer, none closes a cycle.

Every import of ``src/slurm`` is read from the source (module level, inside
functions and under ``TYPE_CHECKING`` alike). A module's layer is the first
entry of :data:`LAYERS` whose prefix it has; it may import its own layer and
the layers its entry lists. docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

#: (layer, module prefixes, layers it may import besides its own), bottom first.
LAYERS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("base", ("slurm.errors", "slurm.logging", "slurm._terminal", "slurm._types"), ()),
    ("transport", ("slurm._transport",), ("base",)),
    ("wire", ("slurm._wire",), ("base",)),
    ("slurm", ("slurm._slurm",), ("base", "transport", "wire")),
    # The job side may use the transport layer's pure ownership check (trust), not a
    # transport: nothing there imports paramiko until an SSHTransport is asked for.
    ("job", ("slurm._job",), ("base", "transport", "wire", "slurm")),
    ("client", ("slurm._client",), ("base", "transport", "wire", "slurm")),
    (
        "api",
        ("slurm._api", "slurm.callbacks"),
        ("base", "transport", "wire", "slurm", "job", "client"),
    ),
    ("devcluster", ("slurm.devcluster",), ("base", "transport")),
    # On top: the public shims and surface, the command line, the pytest plugin, examples.
    (
        "top",
        ("slurm",),
        ("base", "transport", "wire", "slurm", "job", "client", "api", "devcluster"),
    ),
]

#: Imports allowed although they break the rule, each with its reason (keep it short).
ALLOWED: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "slurm").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module of ours that an imported dotted name lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every module of the package ``module`` imports, wherever the import statement is."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
            names = [n if _owner(n) == n else base for n in names]
        else:
            continue
        for name in names:
            owner = _owner(name) if name.split(".")[0] == "slurm" else None
            if owner is not None and owner != module:
                found.add(owner)
    return found


def layer_of(module: str) -> tuple[str, tuple[str, ...]]:
    for name, prefixes, below in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name, below
    raise AssertionError(f"{module} is in no layer")


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_import_climbs_a_layer() -> None:
    climbing = []
    for module, imported in sorted(GRAPH.items()):
        layer, below = layer_of(module)
        for other in sorted(imported):
            other_layer, _ = layer_of(other)
            allowed = other_layer == layer or other_layer in below or (module, other) in ALLOWED
            if not allowed:
                climbing.append(f"{module} ({layer}) imports {other} ({other_layer})")
    assert not climbing, "imports that climb a layer:\n" + "\n".join(climbing)


#: Modules that use the SDK as users do: the names ``slurm`` exports and the public modules
#: (the inspection API :mod:`slurm.inspect` among them), never a private package.
PUBLIC_ONLY = ("slurm.cli", "slurm.pytest_plugin", "slurm.examples")


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])


def test_the_command_line_and_plugin_use_only_public_modules() -> None:
    found = [
        f"{module} imports {other}"
        for module, imported in sorted(GRAPH.items())
        if module.startswith(PUBLIC_ONLY)
        for other in sorted(imported)
        if _private(other)
    ]
    assert not found, "private modules used from the top:\n" + "\n".join(found)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if (node, other) in ALLOWED:
                continue
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_closes_a_cycle() -> None:
    # A package's __init__ re-exporting its own modules is not a cycle of ideas: its
    # modules may not import it back, which the graph shows as a cycle anyway.
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(
    graph: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert _cycles(graph) == expected


def test_the_import_reader_sees_function_local_and_type_checking_imports() -> None:
    # cluster.py imports the prune module inside a method and Job under TYPE_CHECKING
    # somewhere in the package: the reader must see both kinds.
    assert any("slurm._client.prune" in imported for imported in GRAPH.values())


def _own_private_names(tree: ast.AST) -> set[str]:
    """The ``_names`` a module's classes define: methods, ``self._x`` attributes, class
    attributes. Touching them from elsewhere in the same module is the class's business."""
    own: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                own.add(sub.name)
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
                if sub.value.id in ("self", "cls"):
                    own.add(sub.attr)
            elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name):
                own.add(sub.target.id)
            elif isinstance(sub, ast.Assign):
                own.update(t.id for t in sub.targets if isinstance(t, ast.Name))
    return own


#: Names of the standard library that are public despite their underscore.
_PUBLIC_UNDERSCORED = frozenset({"os._exit"})  # how a forked child leaves (slurm._job.pack)


def private_attribute_uses(source: str) -> list[tuple[int, str]]:
    """``obj._name`` where ``_name`` is no private attribute of a class of this module."""
    tree = ast.parse(source)
    own = _own_private_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") and node.attr.endswith("__"):
            continue  # a protocol of the language (or ours, such as __slurm_job_ref__)
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        if node.attr not in own and ast.unparse(node) not in _PUBLIC_UNDERSCORED:
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_nothing_touches_another_modules_private_attributes() -> None:
    found = [
        f"{MODULES[m].relative_to(SRC)}:{line}: {text}"
        for m in sorted(MODULES)
        for line, text in private_attribute_uses(MODULES[m].read_text(encoding="utf-8"))
    ]
    assert not found, "private attributes used outside their class's module:\n" + "\n".join(found)


def test_the_private_attribute_check_sees_a_use() -> None:
    source = "class A:\n    def f(self):\n        self._x = 1\n\ndef g(b):\n    return b._y, b._x\n"
    assert private_attribute_uses(source) == [(6, "b._y")]

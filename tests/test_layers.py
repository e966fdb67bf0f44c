"""The package's layers (mmgan/__init__.py draws them): no module imports a layer above its own, no cycles; the engines
import nothing from the book or the chapters, and only those two show things (IPython, matplotlib)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: From the bottom up; a module may import its own layer and the layers below it. The top level of the package
#: (the paper's mathematics, the verdict statistics, the paper's numbers) is the layer "math".
LAYERS = ("base", "math", "toys", "table1", "gan", "critics", "book", "chapters", "cli")
#: The engines: they compute, and import nothing from the presentation layers.
ENGINES = ("toys", "table1", "gan", "critics")
#: The presentation layers: the book's toolkit and the chapter facades.
PRESENTATION = ("book", "chapters")
#: Display libraries only the presentation layers may import.
DISPLAY = ("IPython", "matplotlib")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The mmgan modules ``path`` imports (``from mmgan.x import y`` names mmgan.x.y when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mmgan":
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if (ROOT / (candidate.replace(".", "/") + ".py")).exists()
                          or (ROOT / candidate.replace(".", "/")).is_dir() else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "mmgan"}
    return found


def external_imports(path: Path) -> set[str]:
    """The top-level names of the packages outside mmgan that ``path`` imports (at any depth of the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
    return found - {"mmgan"}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "math"  # mmgan/__init__.py
    if parts[1] == "__main__":
        return "cli"
    return parts[1] if parts[1] in LAYERS and (ROOT / "mmgan" / parts[1]).is_dir() or parts[1] == "cli" else "math"


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports(path) for path in sorted((ROOT / "mmgan").rglob("*.py"))}


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a layer above its own."""
    out = []
    for source, targets in edges.items():
        for target in targets:
            if LAYERS.index(layer(target)) > LAYERS.index(layer(source)):
                out.append(f"{source} ({layer(source)}) imports {target} ({layer(target)})")
    return sorted(out)


def engine_imports_of_presentation(edges: dict[str, set[str]]) -> list[str]:
    """Every import of the book or the chapters by an engine (whatever the order of :data:`LAYERS`)."""
    return sorted(f"{source} ({layer(source)}) imports {target} ({layer(target)})"
                  for source, targets in edges.items() if layer(source) in ENGINES
                  for target in targets if layer(target) in PRESENTATION)


def display_imports(imported: dict[str, set[str]]) -> list[str]:
    """Every import of a display library (:data:`DISPLAY`) outside the presentation layers."""
    return sorted(f"{module} ({layer(module)}) imports {name}" for module, names in imported.items()
                  if layer(module) not in PRESENTATION for name in names & set(DISPLAY))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between modules (each found once, from its first module in sorted order)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if target == node or target not in edges:
                continue
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_stays_in_its_layer_and_there_is_no_cycle():
    edges = graph()
    assert len(edges) > 40 and {layer(m) for m in edges} == set(LAYERS)
    assert violations(edges) == []
    assert cycles(edges) == []


def test_the_engines_import_nothing_from_the_book_or_the_chapters_and_only_those_show_things():
    assert {"book", "chapters"} <= {layer(m) for m in graph()}
    assert engine_imports_of_presentation(graph()) == []
    imported = {module_name(path): external_imports(path) for path in sorted((ROOT / "mmgan").rglob("*.py"))}
    assert any(names & set(DISPLAY) for module, names in imported.items() if layer(module) == "chapters")
    assert display_imports(imported) == []


def test_the_check_catches_an_import_upwards_and_a_cycle():
    edges = graph()
    broken = {**edges, "mmgan.gan.tables": edges["mmgan.gan.tables"] | {"mmgan.critics.measure"},
              "mmgan.norms": edges["mmgan.norms"] | {"mmgan.book.plots"},
              "mmgan.gan.report": edges["mmgan.gan.report"] | {"mmgan.book.glue"},
              "mmgan.critics.report": edges["mmgan.critics.report"] | {"mmgan.chapters.critic_margins"},
              "mmgan.book.plots": edges["mmgan.book.plots"] | {"mmgan.chapters.gan_tables"}}
    found = violations(broken)
    assert "mmgan.gan.tables (gan) imports mmgan.critics.measure (critics)" in found
    assert "mmgan.norms (math) imports mmgan.book.plots (book)" in found
    assert "mmgan.book.plots (book) imports mmgan.chapters.gan_tables (chapters)" in found
    assert engine_imports_of_presentation(broken) == [
        "mmgan.critics.report (critics) imports mmgan.chapters.critic_margins (chapters)",
        "mmgan.gan.report (gan) imports mmgan.book.glue (book)"]
    assert display_imports({"mmgan.gan.report": {"pandas", "matplotlib"}, "mmgan.book.plots": {"matplotlib"},
                            "mmgan.chapters.gan_tables": {"IPython"}}) == ["mmgan.gan.report (gan) imports matplotlib"]
    looped = {**edges, "mmgan.base.registry": edges["mmgan.base.registry"] | {"mmgan.base.results"},
              "mmgan.base.results": edges["mmgan.base.results"] | {"mmgan.base.registry"}}
    assert any({"mmgan.base.registry", "mmgan.base.results"} <= set(cycle) for cycle in cycles(looped))

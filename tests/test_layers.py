"""The package's layers (mmgan/__init__.py draws them): no module imports a layer above its own, no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: From the bottom up; a module may import its own layer and the layers below it. The top level of the package
#: (the paper's mathematics) is the layer "math".
LAYERS = ("base", "math", "book", "toys", "table1", "gan", "critics", "cli")


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


def test_the_check_catches_an_import_upwards_and_a_cycle():
    edges = graph()
    broken = {**edges, "mmgan.gan.tables": edges["mmgan.gan.tables"] | {"mmgan.critics.measure"},
              "mmgan.norms": edges["mmgan.norms"] | {"mmgan.book.plots"}}
    found = violations(broken)
    assert "mmgan.gan.tables (gan) imports mmgan.critics.measure (critics)" in found
    assert "mmgan.norms (math) imports mmgan.book.plots (book)" in found
    looped = {**edges, "mmgan.base.registry": edges["mmgan.base.registry"] | {"mmgan.base.results"},
              "mmgan.base.results": edges["mmgan.base.results"] | {"mmgan.base.registry"}}
    assert any({"mmgan.base.registry", "mmgan.base.results"} <= set(cycle) for cycle in cycles(looped))

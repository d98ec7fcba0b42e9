"""The package's layers: `soscope.models` (plain torch on tensors and index arrays) and
`soscope.data` (sections, files, tiles) never import each other, and no module imports a
private name of another."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "soscope"
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in `path`, relative ones resolved, wherever they are
    (inside functions and `TYPE_CHECKING` blocks too)."""
    found = []
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = [node.module] if node.module else []
            if node.level:
                parts = package[: len(package) - node.level + 1] + parts
            found.append((".".join(parts), [alias.name for alias in node.names]))
    return found


def inside(module: str, package: str) -> bool:
    return module == f"soscope.{package}" or module.startswith(f"soscope.{package}.")


def crossings(importer: str, imported: str) -> list[str]:
    """`file: module` for every import of package `imported` inside package `importer`."""
    return [
        f"{path.relative_to(PACKAGE.parent)}: {module}"
        for path in MODULES
        if inside(module_name(path), importer)
        for module, _ in imports(path)
        if inside(module, imported)
    ]


@pytest.mark.parametrize(("importer", "imported"), [("data", "models"), ("models", "data")])
def test_models_and_data_do_not_import_each_other(importer, imported):
    assert crossings(importer, imported) == []


def test_models_import_no_other_soscope_layer():
    outside = [
        f"{path.relative_to(PACKAGE.parent)}: {module}"
        for path in MODULES
        if inside(module_name(path), "models")
        for module, _ in imports(path)
        if module.startswith("soscope") and not inside(module, "models")
    ]
    assert outside == []


def test_no_module_imports_a_private_name_of_another():
    private = [
        f"{path.relative_to(PACKAGE.parent)}: {module}.{name}"
        for path in MODULES
        for module, names in imports(path)
        if module.startswith("soscope") and module != module_name(path)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


def test_the_check_sees_a_crossing(tmp_path, monkeypatch):
    """The scan itself: an import of the other layer, however written, is found."""
    data = tmp_path / "soscope" / "data"
    data.mkdir(parents=True)
    (data / "bad.py").write_text(
        "def f():\n    from ..models import losses\n    import soscope.models.likelihoods\n"
    )
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path / "soscope")
    monkeypatch.setitem(globals(), "MODULES", [data / "bad.py"])
    assert crossings("data", "models") == [
        "soscope/data/bad.py: soscope.models",
        "soscope/data/bad.py: soscope.models.likelihoods",
    ]

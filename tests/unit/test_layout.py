"""
The library's layout holds: code that runs on kiosks and relays loads no
master-side code, the library has no import circle, and the database package
is self-contained.

The import graph is read from the source (every ``import`` statement, at module
level or inside a function), so a lazy import cannot hide a dependency. The
minion-side loader modules are also really loaded, each in a fresh interpreter,
and what ended up in ``sys.modules`` is checked.
"""

import ast
import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIB = ROOT / "salt_kiosk"

#: Library modules the node side (salt_kiosk.node) may import besides itself.
NODE_MAY_IMPORT = {
    "salt_kiosk",
    "salt_kiosk.errors",
    "salt_kiosk.validate",
    "salt_kiosk.config",
    "salt_kiosk.files",
    "salt_kiosk.clock",
}
#: Third-party packages the node side uses: drivers of its own jobs, and
#: packaging, which Salt itself depends on.
# yaml: PyYAML, which Salt itself needs on every minion (release manifests).
NODE_THIRD_PARTY = {
    "wakeonlan",
    "nmap",
    "packaging",
    "yaml",
    "Adafruit_DHT",
    "adafruit_dht",
    "board",
    "RPi",
    "gpiozero",
}
#: Salt's master-side machinery, never loaded on a kiosk or relay by this library.
SALT_MASTER_SIDE = ("salt.client", "salt.runner", "salt.wheel", "salt.key", "salt.auth", "salt.master")


def module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path):
    """``(module, lineno, inside_function)`` for every import statement of ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else [])
                    )
                for alias in child.names:
                    # "from salt_kiosk import store" imports the submodule salt_kiosk.store
                    candidate = f"{base}.{alias.name}"
                    found.append((candidate if is_library(candidate) else base, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def library_files():
    return sorted(p for p in LIB.rglob("*.py") if "_" + p.parent.name not in ("__pycache__",))


def is_library(name):
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def library_graph():
    graph = {}
    for path in library_files():
        name = module_name(path)
        graph[name] = {target for target, _line, _inner in imports_of(path) if is_library(target) and target != name}
    return graph


def stdlib(name):
    return name.split(".")[0] in sys.stdlib_module_names


def test_no_import_circle_in_the_library():
    graph = library_graph()
    # Tarjan's strongly connected components: any component of more than one
    # module (or a module importing itself) is a circle.
    index, low, stack, on_stack, circles = {}, {}, [], set(), []
    counter = [0]

    def connect(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            connect(node)
    assert circles == []
    # The walk sees the packages: the graph is not trivially empty.
    assert "salt_kiosk.db.schema" in graph["salt_kiosk.db.migrations"]
    assert "salt_kiosk.node.release_install" in graph["salt_kiosk.node.grain"]


def test_node_side_imports_no_master_side_code():
    offences = []
    for path in sorted((LIB / "node").rglob("*.py")):
        for target, line, _inner in imports_of(path):
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if target.startswith("salt_kiosk"):
                if not (target.startswith("salt_kiosk.node") or target in NODE_MAY_IMPORT):
                    offences.append(where)
            elif target.split(".")[0] == "salt":
                if target.startswith(SALT_MASTER_SIDE):
                    offences.append(where)
            elif not stdlib(target) and target.split(".")[0] not in NODE_THIRD_PARTY:
                offences.append(where)
    assert offences == []


def test_db_package_is_self_contained():
    """db/schema.py depends on SQLAlchemy alone; nothing in db/ imports inside a function."""
    schema_imports = {target for target, _line, _inner in imports_of(LIB / "db" / "schema.py")}
    assert {name.split(".")[0] for name in schema_imports} == {"sqlalchemy"}
    late = [
        f"{path.name}:{line} {target}"
        for path in sorted((LIB / "db").glob("*.py"))
        for target, line, inner in imports_of(path)
        if inner
    ]
    assert late == []
    # Every table of the schema is created by a versioned migration.
    code = textwrap.dedent("""
        import json
        from salt_kiosk.db import migrations, schema
        import sqlalchemy as sa
        engine = sa.create_engine("sqlite://")
        migrations.upgrade(engine)
        print(json.dumps({"created": sorted(sa.inspect(engine).get_table_names()),
                          "declared": sorted(schema.metadata.tables)}))
    """)
    out = json.loads(
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT).stdout
    )
    assert out["created"] == out["declared"]
    assert "kiosk_scheduler_jobs" in out["created"] and "kiosk_assets" in out["created"]


LOADER_PROBE = textwrap.dedent("""
    import importlib.util, json, sys
    kind, path = sys.argv[1], sys.argv[2]
    import salt.config
    opts = salt.config.minion_config(None)
    opts.update(id="kiosk-probe", cachedir=sys.argv[3], kiosk={"release_dir": sys.argv[3] + "/rel"})
    spec = importlib.util.spec_from_file_location("salt.loaded.ext." + kind + ".kiosk_probe", path)
    module = importlib.util.module_from_spec(spec)
    module.__opts__ = opts
    module.__salt__ = {}
    module.__grains__ = {}
    module.__pillar__ = {}
    module.__context__ = {}
    spec.loader.exec_module(module)
    assert getattr(module, "HAS_LIB", True), "the library did not import"
    called = None
    if kind == "grains":
        called = sorted(module.kiosk()["kiosk"])
    elif kind == "modules":
        called = [module.version(), module.release()]
    elif kind == "beacons":
        called = module.validate([{"driver": "simulated"}])
    print(json.dumps({"modules": sorted(sys.modules), "called": called}, default=str))
""")

MINION_SIDE = [
    ("modules", "_modules/kiosk.py"),
    ("grains", "_grains/kiosk.py"),
    ("beacons", "_beacons/kiosk_env.py"),
    ("states", "_states/kiosk_file.py"),
    ("states", "_states/kiosk_release.py"),
]


@pytest.mark.parametrize("kind,path", MINION_SIDE, ids=[p for _k, p in MINION_SIDE])
def test_minion_side_loader_modules_load_no_master_side_code(kind, path, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", LOADER_PROBE, kind, str(ROOT / path), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    loaded = set(out["modules"])
    assert "sqlalchemy" not in loaded
    assert "salt.client" not in loaded
    assert not {m for m in loaded if m == "salt_kiosk.db" or m.startswith("salt_kiosk.db.")}
    library = {m for m in loaded if m.startswith("salt_kiosk")}
    assert library, "the loader module must load the library"
    assert {m for m in library if not (m.startswith("salt_kiosk.node") or m in NODE_MAY_IMPORT)} == set()
    if kind == "grains":
        assert {"role", "minion_id", "code"} <= set(out["called"])

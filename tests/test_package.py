"""The package as a user meets it: imports, installed names, the CLI, the layering rules, the README."""

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "mnemovision"
METHODS = ("splatting", "vos", "sr", "motion")
STDLIB = set(sys.stdlib_module_names)


def test_every_subpackage_imports_without_side_effects():
    code = (
        "import sys, mnemovision.kernels, mnemovision.vision, mnemovision.splatting, mnemovision.vos, "
        "mnemovision.sr, mnemovision.motion\n"
        "import torch\n"
        "assert not torch.cuda.is_initialized(), 'a GPU was queried at import'\n"
        "heavy = [m for m in ('mmengine', 'gradio', 'av', 'open3d') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_each_subpackage_has_a_design_note():
    for name in ("kernels", "vision", "splatting", "vos", "sr", "motion", "engine"):
        text = (SRC / name / "DESIGN.md").read_text()
        assert "may import" in text.lower(), name


def test_wheel_installs_only_the_mnemovision_top_level_name(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("mnemovision-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"mnemovision", next(t for t in top if t.endswith(".dist-info"))}
    assert "mnemovision/demos/hub.py" in names  # demos/ ships inside the package namespace
    assert "mnemovision/engine/configs/denoise_tiny.py" in names
    dist_info = next(t for t in top if t.endswith(".dist-info"))
    assert zipfile.ZipFile(wheel).read(f"{dist_info}/top_level.txt").decode().split() == ["mnemovision"]


def test_info_reports_backends():
    out = subprocess.run([sys.executable, "-m", "mnemovision", "info", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report["backends"]) == {"torch", "triton", "triton_interpreter", "gsplat"}
    assert report["backends"]["torch"] is True
    import torch

    assert report["cuda"] == torch.cuda.is_available()
    table = subprocess.run([sys.executable, "-m", "mnemovision", "info"], capture_output=True, text=True, timeout=120)
    assert "backend: triton" in table.stdout


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(package: str):
    return sorted((SRC / package).rglob("*.py"))


def test_kernels_import_only_torch_triton_and_the_stdlib():
    for path in python_files("kernels"):
        for name in imports_of(path):
            root = name.split(".")[0]
            assert root in STDLIB or root in ("torch", "triton") or name.startswith("mnemovision.kernels"), f"{path}: imports {name}"


def test_layering_rules():
    for path in python_files("vision"):
        for name in imports_of(path):
            assert not name.startswith(tuple(f"mnemovision.{m}" for m in (*METHODS, "engine"))), f"{path}: vision imports {name}"
            assert not name.startswith("mmengine"), f"{path}: vision imports mmengine"
    for method in METHODS:
        for path in python_files(method):
            rel = path.relative_to(SRC / method)
            for name in imports_of(path):
                others = tuple(f"mnemovision.{m}" for m in METHODS if m != method)
                assert not name.startswith(others), f"{path}: {method} imports {name}"
                if name.startswith("mmengine"):
                    assert rel.parts[0] in ("engine", "configs"), f"{path}: mmengine outside an engine module"
    for path in (REPO / "demos").rglob("*.py"):
        for name in imports_of(path):
            assert not name.startswith("mmengine"), f"{path}: demos import mmengine"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    text = (REPO / "README.md").read_text()
    first_block = text.split("```")[1]
    commands = [c for c in (line.strip() for line in first_block.splitlines()) if c and not c.startswith("#") and c != "bash"]
    assert len(commands) == 2, commands
    main_cmd, test_cmd = commands
    assert "mnemovision train splat_bundled" in main_cmd  # the main job: fit the bundled scene
    assert "pytest" in test_cmd
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd in ci, f".ci/run must call the README's test command: {test_cmd}"

"""No code from a store: ``base_dset`` and loader import paths are imported only when trusted.

Every hostile store here names a real, harmful call (``subprocess.call``, ``os.system``) whose
effect is a marker file; each test asserts the error and that the marker was never created.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

import zview
from zview import _trust
from zview.errors import UntrustedBaseError

ALLOW_WAYS = [r"zview\.register_base", "ZVIEW_TRUSTED_BASES", r"zview\.bases", r"trust=True",
              r"--trust"]


@pytest.fixture(autouse=True)
def _clean_trust(monkeypatch):
    """Each test starts with nothing registered and no trusted paths in the environment."""
    monkeypatch.setattr(_trust, "_registered", {})
    monkeypatch.delenv(_trust.ENV_VAR, raising=False)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch) -> str:
    """A harmless, importable base dataset module ``zview_test_plugin`` (not imported yet)."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "zview_test_plugin.py").write_text(textwrap.dedent("""
        import numpy as np

        IMPORTED = True

        class Frames:
            def __init__(self, n=5):
                self.labels = {"x": np.arange(n) * 10}

            def __len__(self):
                return len(self.labels["x"])

            def __getitem__(self, i):
                return {"x": int(self.labels["x"][i])}

        def double(value, factor=2):
            return value * factor
    """))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "zview_test_plugin", raising=False)
    return "zview_test_plugin"


def hostile_store(tmp_path: Path, base_dset: str, base_kwargs: dict, name: str = "evil") -> Path:
    """A view store whose ``meta.yaml`` names ``base_dset`` (written by hand, as an attacker)."""
    base = zview.write_dataset(tmp_path / "base", {"x": np.arange(5)}, progress=False) if not (
        tmp_path / "base").exists() else tmp_path / "base"
    store = tmp_path / name
    zview.write_view(store, {"v": np.arange(5)}, base=str(base), progress=False)
    meta = yaml.safe_load((store / "meta.yaml").read_text())
    meta.update(base_dset=base_dset, base_kwargs=base_kwargs)
    (store / "meta.yaml").write_text(yaml.safe_dump(meta))
    return store


@pytest.mark.parametrize(("base_dset", "kwargs"), [
    ("subprocess.call", {"args": ["touch", "{marker}"]}),
    ("subprocess.run", {"args": ["touch", "{marker}"]}),
    ("os.system", {"command": "touch {marker}"}),
])
@pytest.mark.parametrize("entry", ["open", "MetaViewDataset", "validate", "render"])
def test_hostile_base_is_refused_before_any_import(tmp_path, marker, base_dset, kwargs, entry,
                                                   monkeypatch):
    kwargs = yaml.safe_load(yaml.safe_dump(kwargs).replace("{marker}", str(marker)))
    store = hostile_store(tmp_path, base_dset, kwargs)
    imported = []
    real_import = _trust.importlib.import_module
    monkeypatch.setattr(_trust.importlib, "import_module",
                        lambda name, *a: imported.append(name) or real_import(name, *a))
    calls = {"open": zview.open, "MetaViewDataset": zview.MetaViewDataset,
             "render": zview.render}
    if entry == "validate":
        problems = zview.validate(store)
        assert len(problems) == 1 and "UntrustedBaseError" in problems[0]
        assert base_dset in problems[0]
    else:
        with pytest.raises(UntrustedBaseError, match=base_dset.replace(".", r"\.")) as info:
            calls[entry](store)
        for way in ALLOW_WAYS:
            assert info.match(way)
        assert info.value.key == "base_dset"
        assert info.value.value == base_dset
        assert info.value.store == str(store)
        assert isinstance(info.value, PermissionError)
    assert imported == []
    assert not marker.exists()


def test_hostile_base_command_would_run_if_trusted(tmp_path, marker):
    """The hostile stores above are real: with trust=True the command does run."""
    store = hostile_store(tmp_path, "subprocess.call", {"args": ["touch", str(marker)]})
    with pytest.raises(zview.errors.BaseBuildError, match=r"subprocess\.call"):
        zview.open(store, trust=True)  # an int is not a dataset, but the call happened
    assert marker.exists()


@pytest.mark.parametrize("loader", ["os.system", "subprocess.getoutput", "builtins.eval"])
def test_hostile_loader_is_refused(tmp_path, marker, loader):
    store = tmp_path / "base"
    zview.write_dataset(store, {"cmd": np.array([f"touch {marker}"] * 3)},
                        loaders={"cmd": loader}, progress=False)
    with pytest.raises(UntrustedBaseError, match=loader.replace(".", r"\.")) as info:
        zview.open(store)[0]
    for way in ALLOW_WAYS:
        assert info.match(way)
    assert info.value.value == loader
    assert info.value.key == "loader of 'cmd'"
    assert not marker.exists()


def test_hostile_loader_in_a_legacy_file_name_is_refused(tmp_path, marker):
    """An edflow folder names loaders in label file names (``KEY:loader-*-...``)."""
    store = tmp_path / "legacy"
    (store / "labels").mkdir(parents=True)
    (store / "meta.yaml").write_text("description: x\n")
    # edflow's label files are raw memmaps, no .npy header
    np.array([f"touch {marker}"] * 3, dtype="<U40").tofile(
        store / "labels" / "cmd:os.system-*-3-*-<U40.npy")
    with pytest.raises(UntrustedBaseError, match=r"os\.system"):
        zview.open(store)[0]
    assert not marker.exists()


# -- each way to allow a base -----------------------------------------------------------------
def plugin_store(tmp_path: Path, base_dset: str) -> Path:
    store = tmp_path / "view"
    store.mkdir()
    (store / "meta.yaml").write_text(yaml.safe_dump(
        {"base_dset": base_dset, "base_kwargs": {"n": 5}, "views": {"v": "v"}}))
    (store / "labels").mkdir()
    np.array([4, 0, 2], dtype=np.int64).tofile(store / "labels" / "v-*-3-*-int64.npy")
    return store


def test_untrusted_plugin_is_not_imported(tmp_path, plugin):
    store = plugin_store(tmp_path, f"{plugin}.Frames")
    with pytest.raises(UntrustedBaseError, match=rf"{plugin}\.Frames"):
        zview.open(store)
    assert plugin not in sys.modules


def test_register_base(tmp_path, plugin):
    zview.register_base(f"{plugin}.Frames")
    view = zview.open(plugin_store(tmp_path, f"{plugin}.Frames"))
    assert [view[i]["v"]["x"] for i in range(3)] == [40, 0, 20]


def test_register_base_with_object_never_imports(tmp_path, plugin):
    class Tiny:
        def __init__(self, n):
            self.labels = {"x": np.arange(7)}

        def __len__(self):
            return 7

        def __getitem__(self, i):
            return {"x": i}

    zview.register_base(f"{plugin}.Frames", Tiny)
    view = zview.open(plugin_store(tmp_path, f"{plugin}.Frames"))
    assert view[0]["v"]["x"] == 4
    assert plugin not in sys.modules


@pytest.mark.parametrize("value", ["{plugin}.Frames", "{plugin}.*", "other.Thing, {plugin}.*",
                                   " {plugin}.Frames ,x.y"])
def test_env_var_allows(tmp_path, plugin, monkeypatch, value):
    monkeypatch.setenv("ZVIEW_TRUSTED_BASES", value.format(plugin=plugin))
    view = zview.open(plugin_store(tmp_path, f"{plugin}.Frames"))
    assert view[1]["v"]["x"] == 0


@pytest.mark.parametrize("value", ["{plugin}", "{plugin}.Frame", "{plugin}.Frames.x",
                                   "{plugin}x.*", "zview_test.*", "*", ".*", ""])
def test_env_var_does_not_allow_near_misses(tmp_path, plugin, monkeypatch, value):
    monkeypatch.setenv("ZVIEW_TRUSTED_BASES", value.format(plugin=plugin))
    with pytest.raises(UntrustedBaseError, match="not a trusted import path"):
        zview.open(plugin_store(tmp_path, f"{plugin}.Frames"))
    assert plugin not in sys.modules


def test_trust_true_allows(tmp_path, plugin):
    view = zview.open(plugin_store(tmp_path, f"{plugin}.Frames"), trust=True)
    assert view[2]["v"]["x"] == 20


def test_trust_true_allows_a_loader(tmp_path, plugin):
    store = tmp_path / "base"
    zview.write_dataset(store, {"n": np.arange(3)}, loaders={"n": f"{plugin}.double"},
                        loader_kwargs={"n": {"factor": 3}}, progress=False)
    with pytest.raises(UntrustedBaseError, match="double"):
        zview.open(store)
    assert zview.open(store, trust=True)[2]["n"] == 6


def test_entry_point_group_allows(tmp_path, plugin, monkeypatch):
    """A tiny installed distribution that declares the base in the ``zview.bases`` group."""
    site = tmp_path / "site"
    info = site / "zview_test_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zview-test-plugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zview.bases]\nframes = {plugin}:Frames\n")
    monkeypatch.syspath_prepend(str(site))
    view = zview.open(plugin_store(tmp_path, f"{plugin}.Frames"))
    assert view[0]["v"]["x"] == 40


def test_entry_point_names_only_what_it_declares(tmp_path, plugin, monkeypatch):
    site = tmp_path / "site"
    info = site / "zview_test_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zview-test-plugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zview.bases]\nother = {plugin}:double\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(UntrustedBaseError, match="Frames"):
        zview.open(plugin_store(tmp_path, f"{plugin}.Frames"))


def test_builtin_names_open_without_trust(edflow_copy):
    """edflow's believer classes name zview's own and need no trust."""
    meta = yaml.safe_load((edflow_copy / "view" / "meta.yaml").read_text())
    assert meta["base_dset"].startswith("edflow.")
    assert len(zview.open(edflow_copy / "view")) > 0


def test_store_cannot_grant_itself_trust(tmp_path, marker):
    """A builtin base cannot be told ``trust: true`` by base_kwargs to pass it on."""
    base = tmp_path / "evilbase"
    zview.write_dataset(base, {"cmd": np.array([f"touch {marker}"] * 5)},
                        loaders={"cmd": "os.system"}, progress=False)
    store = hostile_store(tmp_path, "zview.MetaDataset", {"root": "../evilbase", "trust": True})
    with pytest.raises(zview.errors.MetaError, match="'trust': True is not accepted") as info:
        zview.open(store)[0]
    assert (info.value.key, info.value.value) == ("base_kwargs/trust", True)
    assert not marker.exists()


def test_base_inherits_no_trust_for_its_loaders(tmp_path, marker):
    """A trusted (builtin) base whose own store names a hostile loader is still refused."""
    base = tmp_path / "evilbase"
    zview.write_dataset(base, {"cmd": np.array([f"touch {marker}"] * 5)},
                        loaders={"cmd": "os.system"}, progress=False)
    store = hostile_store(tmp_path, "zview.MetaDataset", {"root": "../evilbase"})
    with pytest.raises(UntrustedBaseError, match=r"os\.system"):
        zview.open(store)[0]
    assert not marker.exists()


@pytest.mark.parametrize("command", ["info", "show", "render", "validate"])
def test_command_line_refuses_and_trust_flag_allows(tmp_path, marker, plugin, command, capsys):
    from zview.cli import main

    store = hostile_store(tmp_path, "subprocess.call", {"args": ["touch", str(marker)]})
    assert main([command, str(store)]) != 0
    err = capsys.readouterr()
    assert "subprocess.call" in err.err + err.out and "--trust" in err.err + err.out
    assert not marker.exists()
    good = plugin_store(tmp_path, f"{plugin}.Frames")
    assert main(["info", str(good)]) != 0
    assert main(["info", "--trust", str(good)]) == 0

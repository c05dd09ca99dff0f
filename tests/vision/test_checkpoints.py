import collections

import pytest
import torch
from torch import nn

from mnemovision.vision.checkpoints import (
    atomic_write,
    load_checkpoint,
    load_safetensors,
    load_state_dict_strict,
    read_safetensors_metadata,
    save_safetensors,
    save_torch,
)
from mnemovision.vision.errors import CheckpointError
from tests.vision.mutation import refusals


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path, "w") as handle:
            handle.write("half of the new cont")
            raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left
    with atomic_write(path, "w") as handle:
        handle.write("new")
    assert path.read_text() == "new"
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):  # appending cannot be atomic
        with atomic_write(path, "a"):
            pass
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C mid-write: the same clean-up
        with atomic_write(path, "w") as handle:
            handle.write("interrupted")
            raise KeyboardInterrupt
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    with atomic_write(tmp_path / "runs" / "a" / "b.txt", "w") as handle:  # folders made as needed
        handle.write("deep")
    assert (tmp_path / "runs" / "a" / "b.txt").read_text() == "deep"


def test_safetensors_entry_points_name_what_they_cannot_take(tmp_path):
    with pytest.raises(TypeError, match="save_safetensors: 'step' is a int, expected a torch.Tensor"):
        save_safetensors(tmp_path / "a.safetensors", {"w": torch.ones(2), "step": 3})
    assert not (tmp_path / "a.safetensors").exists()
    (tmp_path / "folder.safetensors").mkdir()  # safetensors raises OSError here
    with pytest.raises(CheckpointError, match="folder.safetensors: not a readable safetensors file"):
        load_safetensors(tmp_path / "folder.safetensors")
    save_safetensors(tmp_path / "b.safetensors", {"w": torch.arange(3.0)})
    loaded = load_checkpoint(tmp_path / "b.safetensors")
    assert list(loaded) == ["w"] and torch.equal(loaded["w"], torch.arange(3.0))


def test_atomic_write_syncs_the_data_before_the_rename(tmp_path, monkeypatch):
    import os

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    save_torch(tmp_path / "x.pth", {"w": torch.ones(2)})
    assert events == ["fsync", "replace"]  # a crash after the rename cannot leave a file that is not on disk


def test_safetensors_round_trip_with_metadata(tmp_path):
    net = small_net()
    path = tmp_path / "net.safetensors"
    save_safetensors(path, net.state_dict(), metadata={"arch": "small_net"})
    loaded = load_safetensors(path)
    for key, value in net.state_dict().items():
        assert torch.equal(loaded[key], value)
    assert read_safetensors_metadata(path) == {"arch": "small_net"}
    save_safetensors(tmp_path / "bare.safetensors", {"w": torch.ones(1)})
    assert read_safetensors_metadata(tmp_path / "bare.safetensors") == {}
    fresh = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    load_state_dict_strict(fresh, load_checkpoint(path), source=str(path))
    assert torch.equal(fresh[0].weight, net[0].weight)


def test_shared_tensors_are_saved(tmp_path):
    w = torch.randn(4, 4)
    save_safetensors(tmp_path / "tied.safetensors", {"a": w, "b": w})  # safetensors alone refuses shared storage
    out = load_safetensors(tmp_path / "tied.safetensors")
    assert torch.equal(out["a"], out["b"])


def test_strict_loading_names_missing_unexpected_and_shape_mismatch():
    net = small_net()
    state = collections.OrderedDict(net.state_dict())
    del state["0.bias"]
    state["head.weight"] = torch.zeros(1)
    state["2.weight"] = torch.zeros(3, 4)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_strict(small_net(), state, source="ckpt.safetensors")
    message = str(info.value)
    assert "ckpt.safetensors" in message
    assert "missing keys (1): 0.bias" in message
    assert "unexpected keys (1): head.weight" in message
    assert "2.weight: checkpoint (3, 4) vs model (2, 4)" in message
    many = nn.Sequential(*[nn.Linear(1, 1, bias=False) for _ in range(25)])
    with pytest.raises(CheckpointError, match=r"missing keys \(25\): 0\.weight, 1\.weight, 10\.weight, .*, 3\.weight, 4\.weight \.\.\.$"):
        load_state_dict_strict(many, {}, source="empty.pth")  # the first 20 (sorted) named, the rest elided


def test_pth_loads_weights_only(tmp_path):
    net = small_net()
    save_torch(tmp_path / "net.pth", {"state_dict": net.state_dict(), "step": 3})
    out = load_checkpoint(tmp_path / "net.pth")
    assert out["step"] == 3 and torch.equal(out["state_dict"]["0.weight"], net[0].weight)
    save_torch(tmp_path / "list.pth", [net[0].weight.detach()])
    with pytest.raises(CheckpointError, match="list.pth: expected a dict of tensors, found list"):
        load_checkpoint(tmp_path / "list.pth")


class Payload:
    """An arbitrary class: unpickling it would run code, so weights-only loading must refuse it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_are_refused(tmp_path, capsys):
    torch.save({"x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth.*weights_only=True"):
        load_checkpoint(tmp_path / "evil.pth")
    assert "this must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_checkpoint_names_the_file(tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    if suffix == ".pth":
        save_torch(good, small_net().state_dict())
    else:
        save_safetensors(good, small_net().state_dict())
    raw = good.read_bytes()
    bad = tmp_path / f"truncated{suffix}"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=f"truncated{suffix}"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="nothing"):
        load_checkpoint(tmp_path / f"nothing{suffix}")


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    import os
    import stat

    from mnemovision.vision.checkpoints import atomic_write

    with atomic_write(tmp_path / "f.bin") as handle:
        handle.write(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_mutated_checkpoints_load_or_name_the_file(tmp_path, suffix):
    path = tmp_path / f"net{suffix}"
    (save_torch if suffix == ".pth" else save_safetensors)(path, small_net().state_dict())
    assert refusals(path, lambda: load_checkpoint(path), CheckpointError, 60) >= 5

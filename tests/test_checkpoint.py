"""Checkpoints: exact round trips, clear errors for bad files, atomic writes, nested state."""
from __future__ import annotations

import json
import math
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import sciml.io.checkpoint as checkpoint
from sciml.io import (CheckpointError, flatten_state, load_checkpoint, load_state, load_torch_file,
                      save_checkpoint, save_state, unflatten_state)


def assert_same(a, b):
    """Structural, bitwise equality of nested states (tensors compared by dtype, shape and bytes)."""
    assert type(a) is type(b) or isinstance(a, dict) and isinstance(b, dict), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "w": torch.randn(3, 4, generator=g, dtype=torch.float64),
        "wt": torch.randn(4, 3, generator=g).t(),  # non-contiguous
        "half": torch.randn(5, generator=g).to(torch.bfloat16),
        "idx": torch.arange(7),
        "mask": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }


@pytest.fixture
def saved(tmp_path, tensors):
    return save_checkpoint(tmp_path / "model.safetensors", tensors, {"lr": 1e-3, "layers": [4, 8]})


def test_round_trip_is_exact_and_keeps_config(tmp_path, tensors):
    config = {"lr": 1e-3, "hidden": [16, 16], "name": "lpn", "seed": 7, "nested": {"a": None, "b": True}}
    path = save_checkpoint(tmp_path / "sub" / "model.safetensors", tensors, config)
    assert path == tmp_path / "sub" / "model.safetensors"
    loaded, cfg = load_checkpoint(path)
    assert cfg == config
    assert_same(loaded, {k: v.contiguous() for k, v in tensors.items()})
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.safetensors"]  # no temp files left


def test_default_config_and_tied_weights(tmp_path):
    w = torch.randn(3, 3)
    path = save_checkpoint(tmp_path / "tied.safetensors", {"a": w, "b": w, "view": w[0]})
    loaded, cfg = load_checkpoint(path)
    assert cfg == {}
    assert torch.equal(loaded["a"], w) and torch.equal(loaded["b"], w) and torch.equal(loaded["view"], w[0])


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.safetensors.*does not exist.*check the path"):
        load_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 12, 40, -1])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*(truncated|empty).*re(-copy|save)"):
        load_checkpoint(saved)


def test_text_file_is_foreign(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("these are not weights, just some text that is long enough\n")
    with pytest.raises(CheckpointError, match=r"notes\.safetensors.*not a safetensors file.*save_checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("zipfile", [True, False])
def test_torch_pickle_is_recognised(tmp_path, zipfile):
    path = tmp_path / "model.pt"
    weights = {"w": torch.randn(2, 2)}
    torch.save(weights, path, _use_new_zipfile_serialization=zipfile)
    with pytest.raises(CheckpointError, match=r"model\.pt.*torch\.save.*load_torch_file"):
        load_checkpoint(path)
    assert torch.equal(load_torch_file(path)["w"], weights["w"])


def test_safetensors_without_marker(tmp_path):
    path = tmp_path / "hf.safetensors"
    save_file({"w": torch.zeros(2)}, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"hf\.safetensors.*not a sciml checkpoint.*load_file"):
        load_checkpoint(path)


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(2)}, path, metadata={"sciml_format": "sciml-checkpoint/99"})
    with pytest.raises(CheckpointError, match=r"future\.safetensors.*sciml-checkpoint/99.*upgrade"):
        load_checkpoint(path)


def test_corrupt_header(tmp_path):
    body = b'{"w": broken json}    '
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors.*unreadable safetensors header"):
        load_checkpoint(path)


class _Custom:
    pass


def test_load_torch_file_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": _Custom()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*add_safe_globals"):
        load_torch_file(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_torch_file(tmp_path / "missing.pt")


def test_load_torch_file_always_passes_weights_only(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: seen.update(kwargs))
    path = tmp_path / "x.pt"
    path.write_bytes(b"\0")
    load_torch_file(path)
    assert seen["weights_only"] is True


def test_load_torch_file_on_garbage(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(CheckpointError, match=r"garbage\.pt.*not a readable torch file"):
        load_torch_file(path)


def test_failed_write_leaves_previous_file(saved, monkeypatch):
    before = saved.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(saved, {"w": torch.ones(3)})
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]
    with pytest.raises(TypeError, match="'w' is a list"):
        save_checkpoint(saved, {"w": [1.0]})
    assert saved.read_bytes() == before


def _trained_optimizer(steps=3):
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    for _ in range(steps):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler, x


def test_nested_training_state_round_trip(tmp_path):
    model, optimizer, scheduler, x = _trained_optimizer()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "step": 3, "rng": torch.get_rng_state(), "note": None}
    path = save_state(tmp_path / "state.safetensors", state, config={"recipe": "adam"})
    loaded, cfg = load_state(path)
    assert cfg == {"recipe": "adam"}
    assert_same(loaded, state)
    assert list(loaded["optimizer"]["state"]) == [0, 1, 2, 3]  # int keys survive
    assert isinstance(loaded["optimizer"]["param_groups"][0]["betas"], tuple)

    clone, clone_opt, clone_sched, _ = _trained_optimizer(steps=0)
    clone.load_state_dict(loaded["model"])
    clone_opt.load_state_dict(loaded["optimizer"])
    clone_sched.load_state_dict(loaded["scheduler"])
    for m, o in ((model, optimizer), (clone, clone_opt)):
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)


def test_state_and_plain_checkpoints_are_told_apart(saved, tmp_path):
    with pytest.raises(CheckpointError, match="load_checkpoint"):
        load_state(saved)
    tensors, _ = load_checkpoint(save_state(tmp_path / "s.safetensors", {"a": {"b": torch.ones(2)}}))
    assert list(tensors) == ["a/b"]


def test_flatten_rejects_unsupported_values():
    with pytest.raises(TypeError, match="'a/0' is a object"):
        flatten_state({"a": [object()]})
    with pytest.raises(TypeError, match="keys must be"):
        flatten_state({(1, 2): 3})


def test_flatten_names_do_not_collide():
    state = {"a/b": torch.zeros(1), "a": {"b": torch.ones(1)}, 0: torch.full((1,), 2.0),
             "0": torch.full((1,), 3.0)}
    tensors, meta = flatten_state(state)
    assert len(tensors) == 4
    assert_same(unflatten_state(tensors, json.loads(json.dumps(meta))), state)


_keys = st.one_of(st.text(max_size=5), st.integers(-5, 5))
_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**62, 2**62), st.text(max_size=8),
                    st.floats(allow_nan=False), st.builds(lambda n, s: torch.arange(n, dtype=torch.float64) * s,
                                                         st.integers(0, 3), st.floats(-10, 10)))
_nested = st.recursive(_leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.lists(inner, max_size=3).map(tuple),
                                                        st.dictionaries(_keys, inner, max_size=3)),
                       max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(_nested)
def test_flatten_round_trip_property(state):
    tensors, meta = flatten_state(state)
    assert_same(unflatten_state(tensors, json.loads(json.dumps(meta))), state)

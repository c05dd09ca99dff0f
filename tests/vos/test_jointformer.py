"""JointFormer: the joint read, the compressed token's two updates, the official layout, the session,
and a few training steps under mmengine."""

import numpy as np
import pytest
import torch

from mnemovision.vos.api import VOSSession, load_model
from mnemovision.vos.jointformer_model import JointFormerPropagator, load_jointformer, save_jointformer
from mnemovision.vos.models import build_jointformer, convert_official_jointformer
from mnemovision.vos.models.jointformer import sincos_pos_embed
from mnemovision.vision.checkpoints import load_state_dict_strict


def test_shapes_and_gradients_reach_every_part():
    torch.manual_seed(0)
    net = build_jointformer("tiny")
    img, masks = torch.randn(2, 3, 64, 96), torch.rand(2, 2, 64, 96)
    cache, token = net.encode_memory(img, masks, net.new_token(2))
    assert len(cache) == len(net.blocks3) and cache[0].shape == (2, 4 * 6, 96) and token.shape == (2, 1, 96)
    f4, f8, f16, grid = net.read(img, [torch.cat([c, c], 1) for c in cache])
    assert f4.shape == (2, 32, 16, 24) and f8.shape == (2, 48, 8, 12) and f16.shape == (2, 24, 96) and grid == (4, 6)
    logits, fusion = net.segment(f4, f8, f16, grid, token)
    token2 = net.update_token(token, fusion)
    assert logits.shape == (2, 1, 64, 96) and fusion.shape == (2, 96, 4, 6)
    (logits.sum() + token2.sum()).backward()
    for name in ("patch_embed1_memory.proj.weight", "patch_embed1_query.proj.weight", "blocks3.0.attn.qkv.weight", "blocks4.1.mlp.fc2.weight", "blocks5.0.attn.qkv.weight", "cls_token", "decoder.pred.weight"):
        assert net.get_parameter(name).grad.abs().sum() > 0, name


def test_query_reads_memory_and_top_k_equals_dense_when_k_covers_it():
    torch.manual_seed(0)
    net = build_jointformer("tiny").eval()
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        cache_a, _ = net.encode_memory(img, torch.zeros(1, 2, 64, 64), net.new_token(1))
        cache_b, _ = net.encode_memory(img, torch.ones(1, 2, 64, 64), net.new_token(1))
        dense = net.read(img, cache_b)[2]
        assert torch.allclose(net.read(img, cache_b, top_k=16)[2], dense, atol=1e-5)  # 16 = all memory tokens
        assert not torch.allclose(net.read(img, cache_a)[2], dense, atol=1e-3)  # the memory's masks matter
        assert not torch.allclose(net.read(img, cache_b, top_k=2)[2], dense, atol=1e-4)


def test_position_embedding_is_fixed_and_grid_aware():
    pe = sincos_pos_embed(3, 5, 16)
    assert pe.shape == (1, 15, 16) and torch.allclose(pe[0, 0, :4], torch.tensor([0.0, 0.0, 0.0, 0.0]))
    assert not torch.allclose(pe[0, 1], pe[0, 5])  # (0, 1) and (1, 0) differ


def test_official_base_layout_converts_and_loads_strictly():
    net = build_jointformer("base")
    official = {f"module.convmae.{k}": v for k, v in net.state_dict().items() if not k.startswith("decoder.")}
    official.update({f"module.{k}": v for k, v in net.state_dict().items() if k.startswith("decoder.")})
    official["module.convmae.pos_embed"] = torch.zeros(1, 576, 768)  # the official fixed 24x24 table
    for key in ("convmae.patch_embed1_memory.proj.weight", "convmae.blocks3.10.attn.qkv.weight", "convmae.blocks4.1.norm1.weight",
                "convmae.patch_embed4_block5.weight", "convmae.cls_token", "convmae.blocks1.1.attn.weight"):
        assert f"module.{key}" in official, key
    assert official["module.convmae.patch_embed1_memory.proj.weight"].shape == (256, 5, 4, 4)
    fresh = build_jointformer("base")
    load_state_dict_strict(fresh, convert_official_jointformer({"model": official}))
    assert torch.equal(fresh.cls_token, net.cls_token)
    with pytest.raises(KeyError, match="head.weight: not a key"):
        convert_official_jointformer({"head.weight": torch.zeros(1)})


def test_session_runs_with_bounded_memory_and_weights_round_trip(tmp_path):
    from tests.vos.test_api import moving_square_video

    torch.manual_seed(0)
    net = build_jointformer("tiny")
    save_jointformer(tmp_path / "jf.safetensors", net, "tiny")
    model = load_model(str(tmp_path / "jf.safetensors"), internal_size=48, top_k=8, mem_every=2, max_memory_frames=2)
    assert isinstance(model, JointFormerPropagator)
    frames, masks = moving_square_video(10)
    session = VOSSession(model)
    session.add_mask(0, masks[0])
    late = np.zeros_like(masks[0])
    late[34:44, 40:50] = 3
    session.add_mask(4, late)
    outputs = [session.step(f) for f in frames]
    assert outputs[-1].shape == masks[0].shape and set(np.unique(outputs[4])) <= {0, 1, 3} and (outputs[4] == 3).sum() == 100
    banks = [len(o.bank) for o in session.state.objects]
    assert banks == [3, 3]  # first frame + 2 memory frames each, however long the video
    back = load_jointformer(tmp_path / "jf.safetensors")
    assert torch.allclose(back.cls_token, net.cls_token, atol=1e-3)  # float16 storage


@pytest.mark.parametrize("max_memory_frames, bank, temporary", [(0, [0], True), (1, [0, 6], False), (2, [0, 4, 6], False)])
def test_bank_keeps_the_first_frame_and_the_last_frame_is_temporary_memory(max_memory_frames, bank, temporary):
    """mem_every 2 over 7 frames memorises frames 0, 2, 4, 6; with no room beside the first frame,
    frame 6 is read as the temporary last frame instead (it once evicted the annotated frame 0)."""
    from tests.vos.test_api import moving_square_video

    torch.manual_seed(0)
    model = JointFormerPropagator(build_jointformer("tiny"), internal_size=48, top_k=None, mem_every=2, max_memory_frames=max_memory_frames)
    frames, masks = moving_square_video(7)
    session = VOSSession(model)
    session.add_mask(0, masks[0])
    for frame in frames:
        session.step(frame)
    (obj,) = session.state.objects
    assert [e.frame_index for e in obj.bank.entries] == bank and [e.permanent for e in obj.bank.entries] == [True] + [False] * (len(bank) - 1)
    assert (obj.last is not None) == temporary
    tokens = 3 * 4  # 48 x 64 frames at 1/16
    memory = model._memory(obj)
    assert len(memory) == 3 and all(m.shape == (1, tokens * (len(bank) + temporary), 96) for m in memory)


def test_stored_inference_settings_apply_unless_overridden(tmp_path):
    from mnemovision.vision.checkpoints import save_safetensors
    from mnemovision.vision.errors import CheckpointError
    from mnemovision.vos.jointformer_model import FORMAT, inference_settings

    net = build_jointformer("tiny")
    path = tmp_path / "jf.safetensors"
    save_jointformer(path, net, "tiny", inference={"internal_size": 112, "top_k": 20})
    assert inference_settings(path) == {"internal_size": 112, "top_k": 20}
    model = load_model(str(path))
    assert (model.internal_size, model.top_k, model.mem_every) == (112, 20, 5)
    model = load_model(str(path), internal_size=64)
    assert (model.internal_size, model.top_k) == (64, 20)
    with pytest.raises(ValueError, match="unknown inference settings"):
        save_jointformer(path, net, "tiny", inference={"resolution": 112})
    save_safetensors(tmp_path / "bad.safetensors", net.state_dict(), {"format": FORMAT, "size": "tiny", "inference": "[1, 2]"})
    with pytest.raises(CheckpointError, match="bad.safetensors: metadata field 'inference'"):
        load_model(str(tmp_path / "bad.safetensors"))


@pytest.mark.parametrize("option, value, message", [
    ("internal_size", 0, "internal_size must be an int >= 16, got 0"),
    ("internal_size", 2.5, "internal_size must be an int >= 16"),
    ("mem_every", 0, "mem_every must be an int >= 1, got 0"),  # once a ZeroDivisionError at the second frame
    ("mem_every", -1, "mem_every must be an int >= 1, got -1"),  # once memorised every frame, silently
    ("mem_every", None, "mem_every must be an int >= 1, got None"),
    ("max_memory_frames", 1.5, "max_memory_frames must be an int >= 0"),
    ("max_memory_frames", None, "max_memory_frames must be an int >= 0"),
    ("adapt_steps", 2.5, "adapt_steps must be an int >= 0"),
    ("top_k", 0, "top_k must be None .dense. or an int >= 1, got 0"),
    ("adapt_lr", float("nan"), "adapt_lr must be a positive finite number, got nan"),
])
def test_propagator_options_out_of_range_are_named(option, value, message):
    net = build_jointformer("tiny")
    with pytest.raises(ValueError, match=f"JointFormerPropagator: {message}"):
        JointFormerPropagator(net, **{option: value})
    assert JointFormerPropagator(net, internal_size=16, max_memory_frames=0, top_k=None).max_memory_frames == 0


def test_stored_inference_settings_out_of_range_name_the_file(tmp_path):
    from mnemovision.vision.checkpoints import save_safetensors
    from mnemovision.vision.errors import CheckpointError
    from mnemovision.vos.jointformer_model import FORMAT

    net = build_jointformer("tiny")
    save_safetensors(tmp_path / "bad.safetensors", net.state_dict(), {"format": FORMAT, "size": "tiny", "inference": '{"mem_every": -1}'})
    with pytest.raises(CheckpointError, match="bad.safetensors: metadata field 'inference': mem_every must be an int >= 1, got -1"):
        load_model(str(tmp_path / "bad.safetensors"))


def test_a_few_training_steps_lower_the_loss(tmp_path):
    from mnemovision.engine import build_runner, load_config

    cfg = load_config("jointformer_tiny_s0", {"train_dataloader.batch_size": 2, "train_dataloader.dataset.size": 64, "log_level": "ERROR",
                                               "default_hooks.logger.interval": 1000, "default_hooks.checkpoint.interval": 12, "optim_wrapper.optimizer.lr": 1e-3})
    cfg.custom_hooks = []
    cfg.param_scheduler = None  # the recipe's warm-up and cosine are sized for its 6000 steps
    losses = []

    from mnemovision.engine.hooks import CallbackHook

    runner = build_runner(cfg, work_dir=tmp_path, cfg_options={"train_cfg.max_iters": 12})
    runner.register_hook(CallbackHook(lambda r, out: losses.append(float(out["loss"].detach()))))
    runner.train()
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    from mnemovision.vos.engine import export_jointformer

    export_jointformer(tmp_path / "iter_12.pth", tmp_path / "jf.safetensors")
    assert isinstance(load_model(str(tmp_path / "jf.safetensors")), JointFormerPropagator)


def test_unknown_size_in_a_jointformer_file_names_the_file(tmp_path):
    from mnemovision.vision.checkpoints import save_safetensors
    from mnemovision.vision.errors import CheckpointError
    from mnemovision.vos.jointformer_model import FORMAT

    save_safetensors(tmp_path / "huge.safetensors", build_jointformer("tiny").state_dict(), {"format": FORMAT, "size": "huge"})
    with pytest.raises(CheckpointError, match="huge.safetensors: metadata field 'size': .*'base', 'small', 'tiny'"):
        load_jointformer(tmp_path / "huge.safetensors")


def test_prepare_frame_caps_the_longer_side_for_extreme_aspect_ratios():
    from mnemovision.vos.jointformer_model import MAX_ASPECT, prepare_frame

    image, size = prepare_frame(np.zeros((240, 320, 3), np.uint8), 480)
    assert size == (480, 640) and image.shape == (1, 3, 480, 640)  # ordinary frames: shorter side 480
    image, size = prepare_frame(np.zeros((2, 300, 3), np.uint8), 480)
    assert size == (16, MAX_ASPECT * 480) and image.shape == (1, 3, 16, 1920)  # was 480 x 72,000

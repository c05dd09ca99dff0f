"""JointFormerPropagator around a recording stand-in network: what each frame and mask becomes before
the network sees it (scale, normalisation, padding, the own / others mask pair), which memory each
object reads, where its compressed token goes, how probabilities come back to the frame, the
per-video adaptation, and the weights file's checks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnemovision.vos.clips import IMAGENET_MEAN, IMAGENET_STD
from mnemovision.vos.jointformer_model import JointFormerPropagator, prepare_frame

D = 4  # the stand-in's token width


class RecordingNet(torch.nn.Module):
    """JointFormer's interface with known outputs. Tokens count what happened to them: encoding a
    memory adds 1, a token update adds 10. Each memory frame's cached tokens are filled with its
    encode call's number, so a read's memory says which frames it holds. Logits are +20 where the
    query image has content and -20 on its zero padding."""

    def __init__(self, layers=2):
        super().__init__()
        self.blocks3 = torch.nn.ModuleList([torch.nn.Identity() for _ in range(layers)])
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = []
        self.encoded = 0

    def new_token(self, batch):
        return torch.zeros(batch, 1, D)

    def encode_memory(self, image, masks, token):
        self.encoded += 1
        self.calls.append(("encode", image, masks, token.clone()))
        hw = (image.shape[-2] // 16) * (image.shape[-1] // 16)
        return [torch.full((1, hw, D), float(self.encoded)) for _ in self.blocks3], token + 1

    def read(self, image, memory, top_k=None):
        self.calls.append(("read", image, memory, top_k))
        return image, None, None, (image.shape[-2] // 16, image.shape[-1] // 16)

    def segment(self, f4, f8, f16, grid, token):
        self.calls.append(("segment", token.clone()))
        content = f4.abs().sum(1, keepdim=True) > 0
        return torch.where(content, 20.0, -20.0), torch.zeros(1, D, *grid)

    def update_token(self, token, fusion):
        return token + 10

    def of(self, kind):
        return [c for c in self.calls if c[0] == kind]


def frame_with_content(h, w, seed=0):
    """Random colours that never normalise to exactly 0 (so padding is the only zero)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8) | 1


# --------------------------------------------------------------------------- prepare_frame
def test_prepare_frame_normalises_with_imagenet_statistics():
    frame = np.empty((32, 48, 3), np.uint8)
    frame[...] = [10, 128, 250]
    image, size = prepare_frame(frame, 32)  # no resize
    assert size == (32, 48) and image.shape == (1, 3, 32, 48)
    want = (np.array([10, 128, 250]) / 255.0 - IMAGENET_MEAN.astype(np.float64)) / IMAGENET_STD.astype(np.float64)
    np.testing.assert_allclose(image[0, :, 5, 7].numpy(), want, rtol=1e-5)


def test_prepare_frame_rounds_the_scaled_side_and_pads_bottom_right_with_zeros():
    image, size = prepare_frame(frame_with_content(30, 52), 20)  # 52 * 2 / 3 = 34.67
    assert size == (20, 35) and image.shape == (1, 3, 32, 48)
    assert torch.all(image[..., :20, :35] != 0)
    assert torch.all(image[..., 20:, :] == 0) and torch.all(image[..., :, 35:] == 0)


def test_prepare_frame_antialiases_when_it_shrinks():
    """Noise shrunk 4x: plain bilinear averages 2 x 2 pixels (std / 2), the antialiased filter about
    8 x 8 with triangle weights (std / 6 or less)."""
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    image, size = prepare_frame(noise, 64)
    assert size == (64, 64)
    full = (noise[..., 0] / 255.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    ratio = float(image[0, 0].std()) / float(full.std())
    assert ratio < 0.2


# --------------------------------------------------------------------------- propagate / memorize
def make(net=None, **kw):
    kw = {"internal_size": 32, "top_k": 7, "mem_every": 3, "max_memory_frames": 1, **kw}
    model = JointFormerPropagator(net if net is not None else RecordingNet(), **kw)
    return model, model.new_state()


def test_the_network_is_put_in_eval_mode():
    net = RecordingNet().train()
    make(net)
    assert not net.training


def test_memorize_passes_own_and_others_masks_resized_bilinearly_and_padded_like_the_frame():
    model, state = make(internal_size=16)  # 32 x 40 frames -> 16 x 20, padded to 16 x 32
    masks = np.zeros((3, 32, 40), np.float32)
    masks[0, 8:16, 5:6] = 1  # a one-pixel-wide line: half of each 2 x 2 cell after shrinking
    masks[1, 20:28, 20:36] = 1
    masks[2, 0:4, 0:4] = 1
    model.memorize(state, frame_with_content(32, 40), 0, masks, annotated=True)
    encodes = model.net.of("encode")
    assert len(encodes) == 3 and len(state.objects) == 3
    for k, (_, image, pair, token) in enumerate(encodes):
        assert image.shape == (1, 3, 16, 32) and pair.shape == (1, 2, 16, 32)
        assert torch.equal(token, torch.zeros(1, 1, D))  # each object starts from a fresh token
        shrunk = F.interpolate(torch.from_numpy(masks)[None], size=(16, 20), mode="bilinear", align_corners=False)[0]
        torch.testing.assert_close(pair[0, 0, :, :20], shrunk[k])
        torch.testing.assert_close(pair[0, 1, :, :20], shrunk.sum(0) - shrunk[k])  # the other objects together
        assert torch.all(pair[..., 20:] == 0)
    assert set(torch.unique(encodes[0][2][0, 0]).tolist()) == {0.0, 0.5}  # bilinear, not nearest
    assert [float(obj.token[0, 0, 0]) for obj in state.objects] == [1.0, 1.0, 1.0]  # the encoder's updated token is kept


def test_bank_takes_the_first_annotated_and_every_mem_every_frame_else_the_last_frame_is_temporary():
    model, state = make(mem_every=3, max_memory_frames=2)
    frame, mask = frame_with_content(32, 32), np.ones((1, 32, 32), np.float32)
    stored = {}
    for t, annotated in [(0, True), (1, False), (2, False), (3, False), (4, True), (5, False)]:
        model.memorize(state, frame, t, mask, annotated)
        obj = state.objects[0]
        stored[t] = ([e.frame_index for e in obj.bank.entries], obj.last is not None)
    assert stored[0] == ([0], False) and stored[1] == ([0], True) and stored[2] == ([0], True)
    assert stored[3] == ([0, 3], False)  # mem_every
    assert stored[4] == ([0, 3, 4], False)  # annotated frames are memorised whenever they come
    assert stored[5] == ([0, 3, 4], True)
    model.memorize(state, frame, 6, mask, False)
    assert [e.frame_index for e in state.objects[0].bank.entries] == [0, 4, 6]  # two beside the first


def test_each_object_reads_its_own_bank_then_its_temporary_frame_with_the_propagators_top_k():
    model, state = make(top_k=7, mem_every=2)
    frame = frame_with_content(32, 32)
    two = np.ones((2, 32, 32), np.float32)
    model.memorize(state, frame, 0, two, True)  # encodes 1 (object 0), 2 (object 1)
    model.memorize(state, frame, 1, two, False)  # 3, 4: temporary
    model.propagate(state, frame, 2, 2)
    reads = model.net.of("read")
    assert [r[3] for r in reads] == [7, 7]
    for obj_reads, (bank_id, last_id) in zip(reads, [(1, 3), (2, 4)]):
        memory = obj_reads[2]
        assert len(memory) == 2 and memory[0].shape == (1, 8, D)  # 2 x 2 tokens of the bank frame + the temporary frame
        assert memory[1][0, :4].unique().tolist() == [bank_id] and memory[1][0, 4:].unique().tolist() == [last_id]


def test_propagate_segments_known_objects_only_and_updates_their_tokens():
    model, state = make()
    frame = frame_with_content(32, 32)
    model.memorize(state, frame, 0, np.ones((2, 32, 32), np.float32), True)  # both tokens at 1
    probs = model.propagate(state, frame, 1, 1)  # the session knows one object here
    assert probs.shape == (1, 32, 32) and probs.dtype == np.float64
    assert [float(o.token[0, 0, 0]) for o in state.objects] == [11.0, 1.0]
    assert [float(s[1][0, 0, 0]) for s in model.net.of("segment")] == [1.0]  # segmented with the encoded token


def test_probabilities_are_cropped_to_the_frame_before_resizing_back():
    model, state = make(internal_size=40)  # 40 x 40 frames are padded to 48 x 48
    frame = frame_with_content(40, 40)
    model.memorize(state, frame, 0, np.ones((1, 40, 40), np.float32), True)
    probs = model.propagate(state, frame, 1, 1)
    assert probs.min() > 0.999  # padding (logit -20) would darken the right and bottom edges


def test_probabilities_are_resized_back_bilinearly():
    model, state = make(internal_size=16)
    frame = frame_with_content(64, 64)
    frame[:, 40:] = 0  # normalised, black is nonzero: make the stand-in's logits depend on the image
    model.net.segment = lambda f4, f8, f16, grid, token: (f4[:, :1] * 10, torch.zeros(1, D, *grid))
    model.memorize(state, frame, 0, np.ones((1, 64, 64), np.float32), True)
    probs = model.propagate(state, frame, 1, 1)[0]
    assert len(np.unique(probs[5])) > 16  # 16 values per row at the working size; bilinear adds more


def test_removing_an_object_forgets_that_one():
    model, state = make()
    frame = frame_with_content(32, 32)
    model.memorize(state, frame, 0, np.ones((3, 32, 32), np.float32), True)
    tokens = [o.token for o in state.objects]
    model.remove_object(state, 1)
    assert [o.token for o in state.objects] == [tokens[0], tokens[2]]


def test_adaptation_runs_once_on_a_copy_at_the_first_annotated_frame_at_a_size_of_multiples_of_16(monkeypatch):
    import mnemovision.vos.adapt as adapt

    seen = []

    def fake_adapt(net, frame, masks, size, steps, lr, seed):
        seen.append((net, size, steps, lr, seed))
        net.adapted = True

    monkeypatch.setattr(adapt, "adapt_jointformer", fake_adapt)
    net = RecordingNet()
    model, state = make(net, internal_size=24, adapt_steps=5, adapt_lr=0.5, adapt_seed=9)
    frame, mask = frame_with_content(24, 44), np.ones((1, 24, 44), np.float32)
    model.memorize(state, frame, 0, mask, False)  # not annotated: no adaptation
    assert seen == [] and state.net is None
    model.memorize(state, frame, 1, mask, True)
    assert len(seen) == 1 and seen[0][0] is state.net and state.net is not net and not hasattr(net, "adapted")
    assert seen[0][1:] == ((32, 48), 5, 0.5, 9)  # 24 x 44 -> the nearest multiples of 16
    model.memorize(state, frame, 2, mask, True)
    model.propagate(state, frame, 3, 1)
    assert len(seen) == 1 and net.calls[-1][0] == "encode" and net.encoded == 1  # later work on the copy
    assert state.net.of("read") and state.net.encoded == 3


def test_weights_file_checks_name_the_file_and_the_field(tmp_path):
    from mnemovision.vision.checkpoints import save_safetensors
    from mnemovision.vision.errors import CheckpointError
    from mnemovision.vos.jointformer_model import FORMAT, inference_settings, load_jointformer
    from mnemovision.vos.models import build_jointformer

    state = build_jointformer("tiny").state_dict()
    for name, text, message in [("extra", '{"resolution": 112}', "must be a JSON object with keys among"), ("list", "[1]", "must be a JSON object"),
                                ("broken", "{internal_size: 1", "is not JSON")]:
        save_safetensors(tmp_path / f"{name}.safetensors", state, {"format": FORMAT, "size": "tiny", "inference": text})
        with pytest.raises(CheckpointError, match=f"{name}.safetensors: metadata field 'inference' {message}"):
            inference_settings(tmp_path / f"{name}.safetensors")
    save_safetensors(tmp_path / "other.safetensors", state, {"format": "something-else/1", "size": "tiny"})
    with pytest.raises(CheckpointError, match="other.safetensors: metadata field 'format' is 'something-else/1', expected 'mnemovision-jointformer/1'"):
        load_jointformer(tmp_path / "other.safetensors")
    for top_k in (2.5, "8", True):
        with pytest.raises(ValueError, match="top_k must be None .dense. or an int >= 1, got"):
            JointFormerPropagator(RecordingNet(), top_k=top_k)

"""The per-video session: objects joining mid-video, corrections, removal, reset; the memory bank."""

import numpy as np
import pytest
import torch

from mnemovision.vos.api import VOSSession, aggregate, aggregate_probs, load_model
from mnemovision.vos.memory import MemoryBank


def moving_square_video(n=8, h=48, w=64):
    """A textured background with a bright square moving right 2 px per frame, and its masks."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
    frames, masks = [], []
    for t in range(n):
        frame, mask = background.copy(), np.zeros((h, w), np.uint8)
        frame[10:26, 8 + 2 * t : 24 + 2 * t] = 230
        mask[10:26, 8 + 2 * t : 24 + 2 * t] = 1
        frames.append(frame)
        masks.append(mask)
    return frames, masks


@pytest.mark.parametrize("model", ["copy-first", "flow"])
def test_objects_join_later_and_ids_are_kept(model):
    frames, masks = moving_square_video()
    session = VOSSession(load_model(model))
    session.add_mask(0, masks[0])
    late = np.zeros_like(masks[0])
    late[34:44, 40:50] = 7
    session.add_mask(3, late)  # object 7 joins at frame 3
    out = [session.step(f) for f in frames]
    assert set(np.unique(out[0])) == {0, 1} and set(np.unique(out[2])) == {0, 1}
    assert set(np.unique(out[5])) == {0, 1, 7} and session.object_ids == [1, 7]
    assert (out[3] == 7).sum() == 100


def test_flow_follows_motion_better_than_copying():
    frames, masks = moving_square_video()
    iou = {}
    for model in ("copy-first", "flow"):
        session = VOSSession(load_model(model))
        session.add_mask(0, masks[0])
        last = [session.step(f) for f in frames][-1]
        iou[model] = ((last == 1) & (masks[-1] == 1)).sum() / ((last == 1) | (masks[-1] == 1)).sum()
    assert iou["copy-first"] < 0.4 and iou["flow"] > 0.8  # the square moved 14 px over 7 frames


def test_remove_reset_and_errors():
    frames, masks = moving_square_video(4)
    session = VOSSession(load_model("flow"))
    two = masks[0].copy()
    two[30:40, 30:40] = 2
    session.add_mask(0, two)
    session.step(frames[0])
    session.remove_object(1)
    assert session.object_ids == [2] and set(np.unique(session.step(frames[1]))) <= {0, 2}
    with pytest.raises(KeyError, match="not tracked"):
        session.remove_object(1)
    with pytest.raises(ValueError, match="already processed"):
        session.add_mask(0, two)
    with pytest.raises(ValueError, match="uint8"):
        session.step(frames[2].astype(np.float32))
    session.reset()
    assert session.object_ids == [] and session.next_index == 0
    assert session.step(frames[0]).max() == 0  # nothing to track yet


@pytest.mark.parametrize("call, message", [
    (lambda s, m: s.add_mask(1.5, m), "frame_index must be an int, got 1.5"),  # once kept forever, never applied
    (lambda s, m: s.add_mask(0, m * 1.7), "whole-number ids in 0..255, got dtype float64 with values from 0.0 to 1.7"),  # once truncated to 1
    (lambda s, m: s.add_mask(0, m.astype(np.int32) * 257, object_ids=[1]), "values from 0 to 257"),  # once wrapped to id 1
    (lambda s, m: s.add_mask(0, np.where(m > 0, np.nan, 0.0)), "whole-number ids"),
    (lambda s, m: s.add_mask(0, m, object_ids=[1.5]), "object ids must be ints, got \\[1.5\\]"),  # once read as 1
    (lambda s, m: s.add_mask(0, m, object_ids=[0, 1]), "object ids must be in 1..254, got \\[0, 1\\]"),  # 0 is the background
    (lambda s, m: s.step(np.zeros((0, 8, 3), np.uint8)), "H, W >= 1, got shape \\[0, 8, 3\\]"),  # once an empty answer
])
def test_masks_frames_and_indices_that_would_be_misread_are_refused(call, message):
    session = VOSSession(load_model("copy-first"))
    mask = np.zeros((6, 8), np.uint8)
    mask[:3, :4] = 1
    with pytest.raises(ValueError, match=message):
        call(session, mask)
    session.add_mask(np.int64(0), mask.astype(np.float32), object_ids=[np.uint8(1)])  # whole floats and numpy ints are fine
    assert (session.step(np.zeros((6, 8, 3), np.uint8)) == mask).all()


@pytest.mark.parametrize("model", ["copy-first", "flow"])
def test_a_frame_of_another_size_is_refused_until_reset(model):
    # copy-first returned the first frame's mask at the old size; flow failed inside OpenCV
    frames, masks = moving_square_video(3)
    session = VOSSession(load_model(model))
    session.add_mask(0, masks[0])
    session.step(frames[0])
    with pytest.raises(ValueError, match=r"frame 1 is 64x40, this video's frames are 64x48 \(reset\(\) starts a new video\)"):
        session.step(frames[1][:40])
    session.reset()
    session.add_mask(0, masks[0][:40])
    assert session.step(frames[0][:40]).shape == (40, 64)


@pytest.mark.parametrize("h, w", [(1, 1), (5, 7), (2, 60)])
def test_flow_tracks_frames_smaller_than_dis_takes(h, w):
    # OpenCV's DIS refuses images below about 12 pixels a side: the frames are padded for it
    frames, masks = moving_square_video(3)
    session = VOSSession(load_model("flow"))
    mask = np.zeros((h, w), np.uint8)
    mask[: max(1, h // 2), : max(1, w // 2)] = 1
    session.add_mask(0, mask)
    still = [np.ascontiguousarray(frames[0][10 : 10 + h, 4 : 4 + w])] * 3  # a static crop: the mask stays
    out = [session.step(f) for f in still]
    assert all(o.shape == (h, w) for o in out)
    np.testing.assert_array_equal(out[-1], mask)


def test_aggregate_is_a_distribution_with_background_first():
    probs = np.stack([np.full((2, 2), 0.9), np.full((2, 2), 0.2)])
    agg = aggregate(probs)
    assert agg.shape == (3, 2, 2) and np.allclose(agg.sum(0), 1) and (agg.argmax(0) == 1).all()


def test_aggregate_probs_works_along_the_object_dim_of_a_batch():
    """[B, K, H, W] along dim 1 (what training uses): each batch item as ``aggregate`` scores it alone."""
    probs = torch.rand(3, 2, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = aggregate_probs(probs, dim=1)
    assert got.shape == (3, 3, 4, 5)
    for b in range(3):
        np.testing.assert_allclose(got[b].numpy(), aggregate(probs[b].numpy()), rtol=1e-12)


@pytest.mark.parametrize("policy,kept", [("fifo", [3, 4, 5]), ("keep_first", [0, 4, 5]), ("usage", [0, 2, 5])])
def test_memory_bank_policies_keep_the_capacity(policy, kept):
    bank = MemoryBank(capacity=3, policy=policy)
    for t in range(6):
        bank.add(t, {"keys": torch.zeros(2, 4)})
        if len(bank) == 3:  # one read: frame 2's slots get the most attention whenever present
            usage = torch.tensor([1.0 if e.frame_index == 2 else 0.1 for e in bank.entries for _ in range(2)])
            bank.record_usage(usage)
    assert len(bank) == 3 and [e.frame_index for e in bank.entries] == kept
    assert bank.evicted == 3 and bank.stacked("keys").shape == (6, 4) and bank.nbytes() == 3 * 2 * 4 * 4


def test_permanent_entries_stay():
    bank = MemoryBank(capacity=2, policy="fifo")
    bank.add(0, {"keys": torch.zeros(1, 1)}, permanent=True)
    for t in range(1, 5):
        bank.add(t, {"keys": torch.zeros(1, 1)})
    assert [e.frame_index for e in bank.entries] == [0, 4]
    with pytest.raises(ValueError, match="policy"):
        MemoryBank(policy="random")


def test_memory_bank_usage_is_a_mean_per_read_and_ties_evict_the_oldest():
    """An entry's score is the mean usage of its slots per read since it was added, so a new entry with
    one good read outranks an old one with many weak reads; equal scores evict the older frame."""
    bank = MemoryBank(capacity=3, policy="usage")
    bank.add(0, {"keys": torch.zeros(1, 2)})
    bank.add(1, {"keys": torch.zeros(4, 2)})  # four slots: its mean, not its sum, counts
    for _ in range(3):
        bank.record_usage(torch.tensor([0.0, 0.3, 0.3, 0.3, 0.3]))
    bank.add(2, {"keys": torch.zeros(1, 2)})
    bank.record_usage(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.5]))  # frame 1: 0.9 over 4 reads; frame 2: 0.5 over 1
    assert [(e.usage, e.reads) for e in bank.entries] == [(0.0, 4), (pytest.approx(0.9), 4), (0.5, 1)]
    bank.add(3, {"keys": torch.zeros(1, 2)})  # frame 0 is kept (first); frame 1 scores 0.225 < 0.5
    assert [e.frame_index for e in bank.entries] == [0, 2, 3]
    bank.add(4, {"keys": torch.zeros(1, 2)})  # frames 2 (0.5) and 3 (never read: 0) -> 3 goes
    assert [e.frame_index for e in bank.entries] == [0, 2, 4]
    bank.record_usage(torch.tensor([0.0, 0.0, 0.0]))
    bank.add(5, {"keys": torch.zeros(1, 2)})  # frame 2 at 0.25, frame 4 at 0
    assert [e.frame_index for e in bank.entries] == [0, 2, 5]
    tie = MemoryBank(capacity=3, policy="usage")
    for t in (0, 7, 3):
        tie.add(t, {"keys": torch.zeros(1, 2)})
    tie.add(9, {"keys": torch.zeros(1, 2)})  # frames 7 and 3 both unread: the older frame (3) goes
    assert [e.frame_index for e in tie.entries] == [0, 7, 9]
    with pytest.raises(ValueError, match=r"usage must be \[M\] with M = 3 slots of 'keys' in the bank, got \[4\]"):
        bank.record_usage(torch.zeros(4))
    with pytest.raises(ValueError, match=r"usage must be \[M\] with M = 3 slots of 'keys' in the bank, got \[3, 1\]"):
        bank.record_usage(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="capacity must be an int >= 1, got 0"):
        MemoryBank(capacity=0)
    bank.clear()
    assert len(bank) == 0 and bank.evicted == 0


def test_when_every_entry_is_permanent_the_oldest_goes():
    bank = MemoryBank(capacity=2, policy="usage")
    for t in range(3):
        bank.add(t, {"keys": torch.zeros(1, 1)}, permanent=True)
    assert [e.frame_index for e in bank.entries] == [1, 2] and bank.evicted == 1


def test_a_bank_full_of_permanent_entries_declines_a_frame_that_is_not():
    bank = MemoryBank(capacity=1, policy="keep_first")
    assert bank.add(0, {"keys": torch.zeros(1, 1)}, permanent=True)
    assert not bank.add(1, {"keys": torch.zeros(1, 1)})  # once it evicted frame 0 to make room
    assert [e.frame_index for e in bank.entries] == [0] and bank.evicted == 0
    assert bank.add(2, {"keys": torch.zeros(1, 1)}, permanent=True)  # a permanent frame: the oldest goes
    assert [e.frame_index for e in bank.entries] == [2] and bank.evicted == 1
    mixed = MemoryBank(capacity=2, policy="fifo")
    mixed.add(0, {"keys": torch.zeros(1, 1)}, permanent=True)
    assert mixed.add(1, {"keys": torch.zeros(1, 1)}) and mixed.add(2, {"keys": torch.zeros(1, 1)})  # room is made from frame 1
    assert [e.frame_index for e in mixed.entries] == [0, 2] and mixed.evicted == 1


def test_memory_bank_order_its_own_dicts_and_keep_first_spares_only_the_first_entry():
    """``keep_first`` spares the bank's first entry, not the first non-permanent one: with frame 0
    permanent, the oldest other frame goes. ``stacked`` is oldest first; an entry keeps its own dict
    (the caller's later changes do not reach it); ``remove_frames`` keeps what the predicate keeps."""
    bank = MemoryBank(capacity=3, policy="keep_first")
    bank.add(0, {"keys": torch.zeros(1, 1)}, permanent=True)
    for t in (1, 2, 3):
        bank.add(t, {"keys": torch.full((1, 1), float(t))})
    assert [e.frame_index for e in bank.entries] == [0, 2, 3]
    assert bank.stacked("keys").flatten().tolist() == [0.0, 2.0, 3.0]
    given = {"keys": torch.full((1, 1), 4.0)}
    bank.add(4, given)
    given["keys"], given["values"] = torch.zeros(5, 1), torch.zeros(5, 1)
    assert bank.slot_counts("keys") == [1, 1, 1] and "values" not in bank.entries[-1].tensors
    bank.remove_frames(lambda entry: entry.frame_index != 3)
    assert [e.frame_index for e in bank.entries] == [0, 4]
    bank.capacity = 4
    for t in (5, 6):
        bank.add(t, {"keys": torch.zeros(1, 1)})
    bank.capacity = 2  # a smaller capacity set on a fuller bank: the next add evicts down to it
    bank.add(7, {"keys": torch.zeros(1, 1)})
    assert [e.frame_index for e in bank.entries] == [0, 7]


def test_load_model_names_an_option_the_model_does_not_take():
    with pytest.raises(TypeError, match=r"'copy-first' does not take the option\(s\) \['top_k'\]"):
        load_model("copy-first", top_k=3)
    with pytest.raises(TypeError, match=r"'flow' does not take the option\(s\) \['adapt_steps'\]; it takes \['method'\]"):
        load_model("flow", adapt_steps=2)
    assert load_model("flow", method="farneback").method == "farneback"
    # the network a JointFormer file holds is not an option: only the keywords after it are
    with pytest.raises(TypeError, match=r"'jointformer' does not take the option\(s\) \['net'\]; it takes \['internal_size'"):
        load_model("jointformer", net=None)
    with pytest.raises(FileNotFoundError, match="missing.safetensors: no such JointFormer weights file"):
        load_model("missing.safetensors")


def test_cli_refuses_adaptation_for_a_baseline_in_one_line(tmp_path, capsys):
    from mnemovision.cli import main

    args = ["vos", "run", "--frames", str(tmp_path), "--masks", str(tmp_path), "--out", str(tmp_path / "out"), "--model", "flow", "--adapt-steps", "2"]
    assert main(args) == 2  # once a bare SystemExit: status 1, without the CLI's error prefix
    assert capsys.readouterr().err.startswith("mnemovision: error: --adapt-steps applies to JointFormer models: VOS model 'flow' does not take")


class RecordingModel:
    """A VOS model that predicts ``probability`` for every known object everywhere and records what the
    session asks of it."""

    name = "recording"

    def __init__(self, probability: float = 0.9):
        self.probability = probability

    def new_state(self):
        return {"propagated": [], "memorised": [], "removed": []}

    def propagate(self, state, frame, frame_index, n_objects):
        state["propagated"].append((frame_index, n_objects))
        return np.full((n_objects, *frame.shape[:2]), self.probability)

    def memorize(self, state, frame, frame_index, masks, annotated):
        state["memorised"].append((frame_index, masks.copy(), annotated))

    def remove_object(self, state, index):
        state["removed"].append(index)


def test_aggregate_hand_values():
    agg = aggregate(np.array([0.9, 0.2]).reshape(2, 1, 1))[:, 0, 0]
    odds = np.array([0.1 * 0.8 / (1 - 0.08), 0.9 / 0.1, 0.2 / 0.8])  # background = prod(1 - p); softmax of logits = odds normalised
    np.testing.assert_allclose(agg, odds / odds.sum(), rtol=1e-9)


def test_session_corrections_own_their_pixels_and_annotated_frames_are_flagged():
    frame = np.zeros((4, 6, 3), np.uint8)
    session = VOSSession(RecordingModel(0.9))
    first = np.zeros((4, 6), np.uint8)
    first[:2, :2], first[3, 5] = 1, 2
    session.add_mask(0, first)
    np.testing.assert_array_equal(session.step(frame), first)
    assert np.all(session.step(frame) == 1)  # 0.9 for both objects everywhere: the first wins the tie
    correction = np.zeros((4, 6), np.uint8)
    correction[:, 3:] = 2
    session.add_mask(2, correction, object_ids=[2])
    correction_1 = np.zeros((4, 6), np.uint8)
    correction_1[0, 0] = 1
    session.add_mask(2, correction_1, object_ids=[1])  # a second mask for the same frame adds to the first
    out = session.step(frame)
    expected = np.zeros((4, 6), np.uint8)
    expected[:, 3:], expected[0, 0] = 2, 1  # object 1 drops to its corrected pixel; object 2 owns its mask's pixels
    np.testing.assert_array_equal(out, expected)
    state = session.state
    assert [t for t, _, _ in state["memorised"]] == [0, 1, 2] and [a for _, _, a in state["memorised"]] == [True, False, True]
    np.testing.assert_array_equal(state["memorised"][2][1], np.stack([expected == 1, expected == 2]))  # final masks, per object
    assert state["propagated"] == [(1, 2), (2, 2)]  # nothing to propagate before the first mask
    session.remove_object(2)
    assert state["removed"] == [1] and session.object_ids == [1]  # the model forgets position 1


def test_a_given_mask_overrides_every_object_under_it():
    frame = np.zeros((4, 6, 3), np.uint8)
    session = VOSSession(RecordingModel(1.0))  # certain of every object everywhere
    both = np.zeros((4, 6), np.uint8)
    both[0, 0], both[0, 1] = 1, 2
    session.add_mask(0, both)
    session.step(frame)
    region = np.zeros((4, 6), np.uint8)
    region[2:, :] = 2
    session.add_mask(1, region, object_ids=[2])
    out = session.step(frame)
    assert np.all(out[2:] == 2)  # object 1's certainty does not reach under object 2's mask
    assert np.all(out[:2] == 1)


def test_session_frame_bookkeeping_and_refusals():
    frame = np.zeros((4, 6, 3), np.uint8)
    session = VOSSession(RecordingModel())
    assert session.step(frame).max() == 0  # no object yet, frame 0 is still done
    with pytest.raises(ValueError, match="frame 0 is already processed .next is 1."):
        session.add_mask(0, np.ones((4, 6), np.uint8))
    mask = np.ones((4, 6), np.uint8)
    session.add_mask(1, mask)
    session.step(frame)
    with pytest.raises(ValueError, match="frame 1 is already processed .next is 2."):  # the frame just done
        session.add_mask(1, mask)
    for bad in (dict(mask=mask, object_ids=[255]), dict(mask=mask * 255)):
        with pytest.raises(ValueError, match=r"object ids must be in 1..254, got \[255\]"):
            session.add_mask(3, **bad)
    session.add_mask(2, np.ones((3, 6), np.uint8))
    with pytest.raises(ValueError, match="mask for frame 2 is 6x3, the frame 6x4"):
        session.step(frame)


@pytest.mark.parametrize("model", ["copy-first", "flow"])
def test_baselines_forget_the_removed_object_not_another(model):
    frames, masks = moving_square_video(3)
    two = masks[0].copy()
    two[34:44, 40:50] = 2  # a still second object
    session = VOSSession(load_model(model))
    session.add_mask(0, two)
    session.step(frames[0])
    session.remove_object(1)
    out = session.step(frames[1])
    assert (out == 2).sum() > 80 and (out[34:44, 40:50] == 2).mean() > 0.9 and (out[10:26] != 2).all()


@pytest.mark.parametrize("model", ["copy-first", "flow"])
def test_baselines_propagate_exactly_the_objects_asked_for(model):
    frames, masks = moving_square_video(2)
    built = load_model(model)
    state = built.new_state()
    objects = np.stack([masks[0] == 1, masks[0] == 0])
    built.memorize(state, frames[0], 0, objects, True)
    assert built.propagate(state, frames[1], 1, 1).shape == (1, 48, 64)


def test_farneback_flow_follows_the_motion_and_unknown_methods_are_named():
    from mnemovision.vos.baselines import FlowPropagation

    frames, masks = moving_square_video()
    session = VOSSession(FlowPropagation("farneback"))
    session.add_mask(0, masks[0])
    last = [session.step(f) for f in frames][-1]
    iou = ((last == 1) & (masks[-1] == 1)).sum() / ((last == 1) | (masks[-1] == 1)).sum()
    assert iou > 0.7  # copying the first mask scores under 0.4 here
    with pytest.raises(ValueError, match="method must be 'dis' or 'farneback', got 'lk'"):
        FlowPropagation("lk")


def test_copy_first_keeps_the_given_masks_until_new_ones_are_given():
    from mnemovision.vos.baselines import CopyFirst

    model, frame = CopyFirst(), np.zeros((4, 4, 3), np.uint8)
    first, predicted, corrected = (np.full((1, 4, 4), v, np.float32) for v in (1.0, 0.3, 0.0))
    state = model.new_state()
    model.memorize(state, frame, 0, first, annotated=True)
    model.memorize(state, frame, 1, predicted, annotated=False)  # its own output: not a new mask
    assert np.array_equal(model.propagate(state, frame, 2, 1), first)
    model.memorize(state, frame, 2, corrected, annotated=True)  # a correction replaces it
    assert np.array_equal(model.propagate(state, frame, 3, 1), corrected)


def test_flow_brings_in_nothing_from_outside_the_frame():
    import cv2

    from mnemovision.vos.baselines import FlowPropagation

    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (64, 90, 3), dtype=np.uint8), (5, 5), 1.5)
    before, after = texture[:, 10:74].copy(), texture[:, 5:69].copy()  # the view pans: content moves 5 px right
    mask = np.zeros((1, 64, 64), np.float32)
    mask[0, :, :10] = 1.0  # touching the left border
    model = FlowPropagation()
    state = model.new_state()
    model.memorize(state, before, 0, mask, annotated=True)
    out = model.propagate(state, after, 1, 1)[0]
    assert out[:, :5].max() == 0.0  # new pixels at the left come from outside: not the object (replicating the edge would say so)
    assert out[:, 5:15].mean() > 0.9 and out[:, 16:].max() == 0.0  # the object moved with the content

"""JointFormer's clip loss: the two loss terms against hand-computed values, and the clip pass's
memory schedule traced through a recording stand-in for the network."""

import math

import pytest
import torch

from mnemovision.vos.api import aggregate_probs
from mnemovision.vos.losses import bootstrapped_ce, clip_loss, clip_pass, dice_loss


def test_bootstrapped_ce_averages_the_hardest_fraction_of_each_image():
    probs = torch.tensor([[0.9, 0.6, 0.3, 0.2], [0.5, 0.5, 0.5, 0.5]])  # probability of the true class
    log_probs = torch.stack([probs.log(), (1 - probs).log()], 1)[..., None]  # [B=2, C=2, 4, 1], class 0 true
    labels = torch.zeros(2, 4, 1, dtype=torch.long)
    nll = -probs.log()
    assert bootstrapped_ce(log_probs, labels, 1.0) == pytest.approx(float(nll.mean()))
    # p = 0.5: the 2 hardest pixels of each image (k from the pixels of one image, not the batch)
    assert bootstrapped_ce(log_probs, labels, 0.5) == pytest.approx((-math.log(0.3) - math.log(0.2) - 2 * math.log(0.5)) / 4)
    assert bootstrapped_ce(log_probs, labels, 0.1) == pytest.approx((-math.log(0.2) - math.log(0.5)) / 2)  # at least one pixel


def test_dice_loss_is_smoothed_by_one():
    target = torch.zeros(1, 1, 2, 2)
    target[0, 0, 0, 0] = 1
    assert dice_loss(target, target) == 0.0
    assert dice_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)) == 0.0  # absent and predicted absent: perfect
    assert dice_loss(torch.full((1, 1, 2, 2), 0.5), target) == pytest.approx(1 - (2 * 0.5 + 1) / (2 + 1 + 1))


class RecordingNet:
    """The four calls ``clip_pass`` makes, recording what each receives. Memory entries carry their
    frame's value; each object's logit is its index, so the aggregated prediction is known."""

    blocks3 = [None]  # one memory layer

    def __init__(self, k):
        self.k = k  # objects per clip
        self.encoded, self.reads, self.tokens_in = [], [], []

    def new_token(self, n):
        return torch.zeros(n, 1, 1)

    def encode_memory(self, frames, masks, token):
        self.encoded.append((float(frames[0, 0, 0, 0]), masks.clone(), float(token[0, 0, 0])))
        return [frames[:, :1, :1, 0].reshape(-1, 1, 1)], token + 100.0

    def read(self, frames, read_memory):
        self.reads.append(read_memory[0][0, :, 0].tolist())
        return None, None, None, frames

    def segment(self, f4, f8, f16, grid, token):
        self.tokens_in.append(float(token[0, 0, 0]))
        k = torch.arange(grid.shape[0], dtype=grid.dtype) % self.k
        return (k[:, None, None, None] - 0.5).expand(-1, 1, *grid.shape[-2:]), None

    def update_token(self, token, fusion):
        return token + 1.0


def clip(t_len=4, k_len=2, size=16):
    frames = torch.arange(float(t_len))[None, :, None, None, None].expand(1, t_len, 3, size, size).clone()
    masks = torch.zeros(1, t_len, k_len, size, size)
    masks[:, :, 0, :4] = 1  # object 1: the top rows; object 2: the bottom rows
    masks[:, :, 1, -4:] = 1
    return frames, masks


def test_clip_pass_reads_every_earlier_frame_and_memorises_its_own_predictions():
    net = RecordingNet(k=2)
    frames, masks = clip()
    outputs, token = clip_pass(net, frames, masks)
    assert len(outputs) == 3 and outputs[0].shape == (1, 3, 16, 16)
    assert net.reads == [[0.0], [0.0, 1.0], [0.0, 1.0, 2.0]]  # frame t reads frames 0..t-1
    assert [frame for frame, _, _ in net.encoded] == [0.0, 1.0, 2.0]  # the last frame is not memorised
    # tokens: 0 in; +100 per memorisation, +1 per update (update 1 before update 2)
    assert net.tokens_in == [100.0, 201.0, 302.0] and [tok for _, _, tok in net.encoded] == [0.0, 101.0, 202.0]
    assert float(token[0, 0, 0]) == 303.0
    first = net.encoded[0][1]  # [B*K, 2, H, W]: own mask, then the other objects'
    assert torch.equal(first[0], torch.stack([masks[0, 0, 0], masks[0, 0, 1]]))
    assert torch.equal(first[1], torch.stack([masks[0, 0, 1], masks[0, 0, 0]]))
    predicted = outputs[0][0, 1:]  # frame 1's predicted objects, not its ground truth
    second = net.encoded[1][1]
    torch.testing.assert_close(second[0], torch.stack([predicted[0], predicted[1]]))
    torch.testing.assert_close(second[1], torch.stack([predicted[1], predicted[0]]))


def test_clip_loss_sums_both_terms_over_the_frames_after_the_first():
    net = RecordingNet(k=2)
    frames, masks = clip(t_len=3)
    masks[:, 2] = 0
    masks[:, 2, 1, 6:10] = 0.7  # frame 2: only object 2, soft
    masks[:, 2, 0, 12:14] = 0.3  # and object 1 at under a half: background for the cross-entropy, not for Dice
    losses = clip_loss(net, frames, masks, 1.0)
    agg = aggregate_probs(torch.sigmoid(torch.tensor([-0.5, 0.5]))[None, :, None, None].expand(1, 2, 16, 16), dim=1)
    labels = [torch.zeros(1, 16, 16, dtype=torch.long) for _ in range(2)]
    labels[0][:, :4], labels[0][:, -4:], labels[1][:, 6:10] = 1, 2, 2  # background 0, objects 1 and 2
    expected_ce = sum(-agg.log().gather(1, lab[:, None]).mean() for lab in labels)
    expected_dice = sum(1 - ((2 * (agg[:, 1:] * masks[:, t]).flatten(2).sum(-1) + 1) / (agg[:, 1:].flatten(2).sum(-1) + masks[:, t].flatten(2).sum(-1) + 1)).mean() for t in (1, 2))
    torch.testing.assert_close(losses["loss_ce"], expected_ce)
    torch.testing.assert_close(losses["loss_dice"], expected_dice)
    hardest = clip_loss(net, frames, masks, 0.25)["loss_ce"]  # p reaches the cross-entropy
    expected_hardest = sum((-agg.log().gather(1, lab[:, None])).flatten().topk(64).values.mean() for lab in labels)
    torch.testing.assert_close(hardest, expected_hardest)
    assert hardest > losses["loss_ce"]


@pytest.mark.parametrize("frames, masks", [
    ((1, 2, 4, 16, 16), (1, 2, 1, 16, 16)),  # RGBA frames
    ((1, 2, 3, 32, 16), (1, 2, 1, 16, 16)),  # frames and masks of different sizes
    ((1, 2, 3, 16, 16), (1, 2, 0, 16, 16)),  # no object
])
def test_clip_pass_refuses_clips_of_other_shapes(frames, masks):
    with pytest.raises(ValueError, match="clips"):
        clip_pass(RecordingNet(k=1), torch.zeros(frames), torch.zeros(masks))

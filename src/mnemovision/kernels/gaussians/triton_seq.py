"""Triton tile compositing one Gaussian at a time (forward and backward): the whole compositor for
few channels (C <= 4), and in WIDE mode the channel-free walks of the wide path (``triton_wide``).

The batched compositor (``triton_impl``) evaluates tiles of 256 pixels x G Gaussians: its
cumulative products along the batch and its per-Gaussian sums over pixels need cross-thread work,
and every layout change and cross-warp sum goes through shared memory behind a block barrier (60
to 90 barriers in the small-C backward's sm_90 code, ``bench/kernel_resources.py``).
Here each program walks its tile's depth-sorted list one Gaussian at a time, as 3DGS's CUDA
rasterizer does per thread: the Gaussian's parameters are scalars (the same value in every thread),
transmittance and the running prefix are per-pixel registers updated in order (no scans), and a
per-Gaussian gradient is summed within each warp by shuffles, then added by one relaxed atomic per
warp that saw a non-zero term (the warp-level reduction of 3DGS's backward). The pixels are held as
[R, NW, 32] with NW the program's warps (``num_warps``): warp w owns lanes of 32 consecutive pixels
(two image rows of the tile) in each of the R = 256 / (32 NW) slabs, so the per-warp sum is an
in-thread sum over R and a shuffle sum over the 32 lanes (the candidates use NW = 8, R = 1: see
``FWD_SETTINGS``). With SUB > 1 a tile is split among SUB programs by rows (R = 256 / (32 NW SUB));
one-warp programs (NW = 1) on two or four rows each then stop on their own and, in the backward,
skip a Gaussian that reaches none of their pixels, the warp-level skip of 3DGS's backward. With NW
equal to ``num_warps`` the loop has no block barrier except the tile's liveness test once every
``BLOCK_G`` Gaussians (the walk stops once every in-image pixel has stopped, as in the batched
kernels). Parameters are prefetched
(ids two Gaussians ahead, parameters and features one ahead). Same maths and stopping rule as
``ref.composite``; the backward recomputes the forward front to back like ``triton_impl``'s.
Under ``TRITON_INTERPRET=1`` the same kernels run on CPU.
"""
from __future__ import annotations

import triton
import triton.language as tl

from mnemovision.kernels.gaussians.ref import ALPHA_MAX, ALPHA_MIN, T_MIN

ALPHA_MAX_C = tl.constexpr(ALPHA_MAX)
ALPHA_MIN_C = tl.constexpr(ALPHA_MIN)
T_MIN_C = tl.constexpr(T_MIN)
MAX_CHANNELS = 4


@triton.jit
def _tile_pixel(tile, offs, N_TILES, TILES_X, H, W, TILE: tl.constexpr):
    """Pixels ``offs`` (row-major within the TILE x TILE tile, any shape) of a (view, tile) index:
    (flat pixel index, in-image mask, centre x, centre y). Shared by every compositor kernel."""
    view = tile // N_TILES
    local = tile % N_TILES
    x = (local % TILES_X) * TILE + offs % TILE
    y = (local // TILES_X) * TILE + offs // TILE
    return (view * H + y) * W + x, (x < W) & (y < H), x.to(tl.float32) + 0.5, y.to(tl.float32) + 0.5


@triton.jit
def _pixels(tile, sub, N_TILES, TILES_X, H, W, NW: tl.constexpr, SUB: tl.constexpr):
    """Part ``sub`` of SUB of the 256 pixels of a (view, tile) index (whole rows: 256 / SUB pixels
    from pixel 256 sub / SUB on) as [R, NW, 32]: (flat pixel index, in-image mask, centre x, centre
    y, index in the tile); pixel 256 sub / SUB + r 32 NW + w 32 + lane of the tile, row-major 16 x 16."""
    R: tl.constexpr = 256 // (NW * 32 * SUB)
    offs = sub * (256 // SUB) + tl.arange(0, R)[:, None, None] * (NW * 32) + tl.arange(0, NW)[None, :, None] * 32 + tl.arange(0, 32)[None, None, :]
    pix, inside, px, py = _tile_pixel(tile, offs, N_TILES, TILES_X, H, W, 16)
    return pix, inside, px, py, offs


@triton.jit
def _feature_row(pair, VN, NF, SHARED_FEATS: tl.constexpr):
    """The feature row of a pair (view v of batch element e, Gaussian g: e V N + v N + g): e N + g
    when the features are shared across views, else the pair itself (SH colours, one row per view).
    Shared by every compositor kernel."""
    if SHARED_FEATS:
        return (pair // VN) * NF + pair % NF
    return pair


@triton.jit
def _gaussian_id(b, end, FlatIds, VN, NF, SHARED_FEATS: tl.constexpr):
    """(pair id, feature row, valid) of list entry b (scalars; valid = b < end)."""
    valid = b < end
    pair = tl.load(FlatIds + b, mask=valid, other=0)
    return pair, _feature_row(pair, VN, NF, SHARED_FEATS), valid


@triton.jit
def _feature(Values, fid, valid, ch: tl.constexpr, C, NCH: tl.constexpr):
    """Channel ``ch`` of the feature row (a load masked off at compile time past NCH: 0)."""
    return tl.load(Values + fid * C + ch, mask=valid & (ch < NCH), other=0.0)


@triton.jit
def _geometry(pair, valid, Means2d, Conics, Opac, Depths, HAS_DEPTH: tl.constexpr):
    """2-D mean (x, y), conic (a, b, c), opacity and depth (0 without HAS_DEPTH) of pairs: scalars
    here, [G, 1] columns in the batched kernels (zeros where not valid)."""
    mx = tl.load(Means2d + pair * 2, mask=valid, other=0.0)
    my = tl.load(Means2d + pair * 2 + 1, mask=valid, other=0.0)
    ca = tl.load(Conics + pair * 3, mask=valid, other=0.0)
    cb = tl.load(Conics + pair * 3 + 1, mask=valid, other=0.0)
    cc = tl.load(Conics + pair * 3 + 2, mask=valid, other=0.0)
    op = tl.load(Opac + pair, mask=valid, other=0.0)
    if HAS_DEPTH:
        z = tl.load(Depths + pair, mask=valid, other=0.0)
    else:
        z = tl.zeros_like(op)
    return mx, my, ca, cb, cc, op, z


@triton.jit
def _gaussian_params(pair, fid, valid, Means2d, Conics, Opac, Values, Depths, C, NCH: tl.constexpr, HAS_DEPTH: tl.constexpr):
    """The Gaussian's ``_geometry`` and its NCH <= 4 features (0 past NCH), all scalars (zeros when
    not valid)."""
    mx, my, ca, cb, cc, op, z = _geometry(pair, valid, Means2d, Conics, Opac, Depths, HAS_DEPTH)
    f0 = _feature(Values, fid, valid, 0, C, NCH)
    f1 = _feature(Values, fid, valid, 1, C, NCH)
    f2 = _feature(Values, fid, valid, 2, C, NCH)
    f3 = _feature(Values, fid, valid, 3, C, NCH)
    return mx, my, ca, cb, cc, op, z, f0, f1, f2, f3


@triton.jit
def _first_gaussians(start, end, FlatIds, Means2d, Conics, Opac, Values, Depths, VN, NF, C, SHARED_FEATS: tl.constexpr, NCH: tl.constexpr, HAS_DEPTH: tl.constexpr):
    """A walk's prologue: the first entry's (pair, feature row, valid), the second's, then the first's
    parameters (``_gaussian_params``), flat."""
    pair, fid, valid = _gaussian_id(start, end, FlatIds, VN, NF, SHARED_FEATS)
    pair_n, fid_n, valid_n = _gaussian_id(start + 1, end, FlatIds, VN, NF, SHARED_FEATS)
    mx, my, ca, cb, cc, op, z, f0, f1, f2, f3 = _gaussian_params(pair, fid, valid, Means2d, Conics, Opac, Values, Depths, C, NCH, HAS_DEPTH)
    return pair, fid, valid, pair_n, fid_n, valid_n, mx, my, ca, cb, cc, op, z, f0, f1, f2, f3


@triton.jit
def _alpha(px, py, mx, my, ca, cb, cc, op):
    """alpha of Gaussians at pixels, with the pieces its gradient needs: [R, NW, 32] here (pixels
    against one Gaussian's scalars); [G, P] tiles in the batched kernels (px, py [1, P] rows, the
    rest [G, 1] columns). Entries past the end of a list need no mask here: ``_geometry`` gives
    them opacity 0, so alpha 0 < 1/255 (in the batched kernels a mask would be one more [G, 1]
    column to broadcast to every thread through shared memory per batch)."""
    dx = px - mx
    dy = py - my
    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
    g = tl.exp(-sigma)
    raw = op * g
    alpha = tl.minimum(raw, ALPHA_MAX_C)
    ok = (sigma >= 0.0) & (alpha >= ALPHA_MIN_C)
    return tl.where(ok, alpha, 0.0), ok, raw, g, dx, dy


@triton.jit
def _alpha_grads(d_alpha, keep, ok, raw, g, dx, dy, ca, cb, cc):
    """Per pixel and Gaussian, from dL/d alpha: the terms whose sums over pixels are dL/d opacity,
    dL/d conic (a, b, c) and dL/d mean2d (x, y) (alpha = min(0.99, o exp(-sigma)); no gradient
    where alpha was clamped or not composited). Shared with the batched backward."""
    d_alpha = tl.where(keep & ok, d_alpha, 0.0)
    d_raw = tl.where(raw < ALPHA_MAX_C, d_alpha, 0.0)
    d_sigma = -d_raw * raw
    d_mx = -d_sigma * (ca * dx + cb * dy)
    d_my = -d_sigma * (cc * dy + cb * dx)
    return d_raw * g, d_sigma * 0.5 * dx * dx, d_sigma * dx * dy, d_sigma * 0.5 * dy * dy, d_mx, d_my


@triton.jit
def _live(done, inside):
    """1 while some in-image pixel of the tile still takes light (a block-wide max: the loop's only barrier)."""
    return tl.max(tl.where(inside, 1 - done, 0))


@triton.jit
def _store_channel(Out, pix, inside, value, ch: tl.constexpr, OUT_C, NCH: tl.constexpr):
    if ch < NCH:
        tl.store(Out + pix * OUT_C + ch, value, mask=inside)


@triton.jit(do_not_specialize=["UNIT"])
def _seq_fwd_kernel(
    Offsets, FlatIds, Means2d, Conics, Opac, Values, Depths, Out, Alpha, Scratch, Stops, RowStart,
    H, W, TILES_X, N_TILES, C, OUT_C, VN, NF, TILE0, ROW0, UNIT,
    SHARED_FEATS: tl.constexpr, NCH: tl.constexpr, HAS_DEPTH: tl.constexpr, WIDE: tl.constexpr, BLOCK_G: tl.constexpr, NW: tl.constexpr,
    SUB: tl.constexpr,
):
    """One program per (view, tile): front to back, one Gaussian at a time, NCH = C <= 4 channels
    (and the depth with HAS_DEPTH); the liveness test every BLOCK_G Gaussians.

    WIDE (C > 4 channels, ``triton_wide``): program i takes tile TILE0 + i and has no channels of its
    own (NCH = 0): it writes each list entry's weights w [256] to its scratch row (entry start + j:
    row RowStart[tile] - ROW0 + j) for ``triton_wide``'s matmul of weights and features, and where
    it stopped to Stops[tile]; final transmittance and depth as usual. UNIT is 1 (never specialised).
    SUB > 1 (not WIDE): SUB programs per tile, each on its share of the rows (``_pixels``), walking
    the list until its own pixels stop."""
    tile = TILE0 + tl.program_id(0) // SUB
    pix, inside, px, py, offs = _pixels(tile, tl.program_id(0) % SUB, N_TILES, TILES_X, H, W, NW, SUB)
    start = tl.load(Offsets + tile)
    end = tl.load(Offsets + tile + 1)
    stride = 256 * UNIT  # scratch row stride (see the backward)
    if WIDE:  # entry e's scratch row: base + e
        base = tl.load(RowStart + tile) - ROW0 - start
    t_run = tl.full(px.shape, 1.0, dtype=tl.float32)
    done = tl.zeros(px.shape, dtype=tl.int32)
    a0 = tl.zeros(px.shape, dtype=tl.float32)
    a1 = tl.zeros(px.shape, dtype=tl.float32)
    a2 = tl.zeros(px.shape, dtype=tl.float32)
    a3 = tl.zeros(px.shape, dtype=tl.float32)
    acc_d = tl.zeros(px.shape, dtype=tl.float32)
    pair, fid, valid, pair_n, fid_n, valid_n, mx, my, ca, cb, cc, op, z, f0, f1, f2, f3 = _first_gaussians(
        start, end, FlatIds, Means2d, Conics, Opac, Values, Depths, VN, NF, C, SHARED_FEATS, NCH, HAS_DEPTH,
    )
    b = start
    live = _live(done, inside)
    while (b < end) & (live > 0):
        for _ in tl.static_range(BLOCK_G):
            # in flight while this Gaussian is composited: the id two ahead, the parameters one ahead
            pair_nn, fid_nn, valid_nn = _gaussian_id(b + 2, end, FlatIds, VN, NF, SHARED_FEATS)
            nxt = _gaussian_params(pair_n, fid_n, valid_n, Means2d, Conics, Opac, Values, Depths, C, NCH, HAS_DEPTH)
            alpha, ok, raw, g, dx, dy = _alpha(px, py, mx, my, ca, cb, cc, op)
            t_after = t_run * (1.0 - alpha)
            keep = (t_after >= T_MIN_C) & (done == 0)
            w = tl.where(keep, alpha * t_run, 0.0)
            if WIDE:
                tl.store(Scratch + (base + b) * stride + offs, w, mask=valid)
            a0 += w * f0
            if NCH > 1:
                a1 += w * f1
            if NCH > 2:
                a2 += w * f2
            if NCH > 3:
                a3 += w * f3
            if HAS_DEPTH:
                acc_d += w * z
            t_run = tl.where(keep, t_after, t_run)
            done = tl.where(keep, done, 1)
            b += 1
            valid, pair_n, fid_n, valid_n = valid_n, pair_nn, fid_nn, valid_nn
            mx, my, ca, cb, cc, op, z, f0, f1, f2, f3 = nxt
        live = _live(done, inside)
    _store_channel(Out, pix, inside, a0, 0, OUT_C, NCH)
    _store_channel(Out, pix, inside, a1, 1, OUT_C, NCH)
    _store_channel(Out, pix, inside, a2, 2, OUT_C, NCH)
    _store_channel(Out, pix, inside, a3, 3, OUT_C, NCH)
    tl.store(Alpha + pix, 1.0 - t_run, mask=inside)  # alpha = 1 - the final transmittance
    if HAS_DEPTH:
        tl.store(Out + pix * OUT_C + C, acc_d, mask=inside)
    if WIDE:  # the weights of entries from here on were not written: the matmul stops here
        tl.store(Stops + tile, tl.minimum(b, end).to(Stops.dtype.element_ty))


@triton.jit
def _warp_scatter(Target, terms, valid):
    """Add the sum over pixels of ``terms`` [R, NW, 32] to the scalar pointer ``Target``: summed
    within each warp (in-thread over R, shuffles over the 32 lanes), then one relaxed atomic per
    warp, from its first lane, where that warp's sum is non-zero."""
    per_warp = tl.sum(tl.sum(terms, axis=0), axis=1, keep_dims=True)  # [NW, 1]
    part = tl.broadcast_to(per_warp, terms.shape[1:])
    lane = tl.broadcast_to(tl.arange(0, 32)[None, :], part.shape)
    tl.atomic_add(Target + lane, part, mask=(lane == 0) & valid & (part != 0.0), sem="relaxed")


@triton.jit
def _add_geometry(DOpac, DConics, DMeans2d, AbsGrad, pair, valid, parts, abs_parts, ABSGRAD: tl.constexpr, ADD: tl.constexpr):
    """ADD(target, part, valid) each of the six geometry gradient parts (opacity, conic a, b, c, 2-D
    mean x, y) and with ABSGRAD the two |2-D mean| ones to its place among pairs ``pair``: parts
    over pixels here (ADD = ``_warp_scatter`` sums them), sums in the batched kernels."""
    p_op, p_ca, p_cb, p_cc, p_mx, p_my = parts
    ADD(DOpac + pair, p_op, valid)
    ADD(DConics + pair * 3, p_ca, valid)
    ADD(DConics + pair * 3 + 1, p_cb, valid)
    ADD(DConics + pair * 3 + 2, p_cc, valid)
    ADD(DMeans2d + pair * 2, p_mx, valid)
    ADD(DMeans2d + pair * 2 + 1, p_my, valid)
    if ABSGRAD:
        a_mx, a_my = abs_parts
        ADD(AbsGrad + pair * 2, a_mx, valid)
        ADD(AbsGrad + pair * 2 + 1, a_my, valid)


@triton.jit
def _scatter_geometry(DOpac, DConics, DMeans2d, AbsGrad, pair, valid, terms, ABSGRAD: tl.constexpr):
    """Scatter the sums over pixels of ``_alpha_grads``' terms (pixels [R, NW, 32] against one
    Gaussian): opacity, conic (a, b, c), 2-D mean and (ABSGRAD) |2-D mean| gradients, per warp."""
    abs_parts = (terms[4], terms[5])
    if ABSGRAD:
        abs_parts = (tl.abs(terms[4]), tl.abs(terms[5]))
    _add_geometry(DOpac, DConics, DMeans2d, AbsGrad, pair, valid, terms, abs_parts, ABSGRAD, _warp_scatter)


@triton.jit
def _channel_dot(g_ch, f_ch, ch: tl.constexpr, NCH: tl.constexpr):
    """Channel ``ch``'s share of G . f per pixel, G_ch f_ch [R, NW, 32] (0 past NCH)."""
    if ch < NCH:
        return g_ch * f_ch
    return tl.zeros_like(g_ch)


@triton.jit
def _channel_scatter(DValues, fid, valid, w, g_ch, ch: tl.constexpr, C, NCH: tl.constexpr):
    """Channel ``ch`` (below NCH): add dF_ch = sum_p w G_ch to the feature's gradient."""
    if ch < NCH:
        _warp_scatter(DValues + fid * C + ch, w * g_ch, valid)


@triton.jit
def _grad_channel(GradPlanes, pix, inside, ch: tl.constexpr, NPIX, NCH: tl.constexpr):
    """G_ch per pixel for channel ``ch`` of the output (zeros past NCH), from its plane."""
    if ch < NCH:
        return tl.load(GradPlanes + ch * NPIX + pix, mask=inside, other=0.0)
    return tl.zeros(pix.shape, dtype=tl.float32)


@triton.jit(do_not_specialize=["UNIT"])
def _seq_bwd_kernel(
    Offsets, FlatIds, Means2d, Conics, Opac, Values, Depths, GradPlanes, GRest,
    DMeans2d, DConics, DOpac, DValues, DDepths, AbsGrad, Scratch, Stops, RowStart,
    H, W, TILES_X, N_TILES, C, OUT_C, VN, NF, TILE0, ROW0, UNIT, NPIX,
    SHARED_FEATS: tl.constexpr, NCH: tl.constexpr, HAS_DEPTH: tl.constexpr, ABSGRAD: tl.constexpr, WIDE: tl.constexpr,
    BLOCK_G: tl.constexpr, NW: tl.constexpr, SUB: tl.constexpr,
):
    """Recomputes the forward front to back and scatters each Gaussian's gradients by warp:
    dL/d alpha = T (G . f) - (G . out - g_A T_final - prefix) / (1 - alpha), the prefix the running
    sum of w (G . f) up to and including this Gaussian. The output gradient G comes as channel
    planes (GradPlanes [NCH (+ 1 with HAS_DEPTH), NPIX], NPIX = V H W pixels) and
    G . out - g_A T_final per pixel as GRest [NPIX] (g_A: the gradient of the rendered alpha =
    1 - T_final), both computed by the launcher: every pixel load then reads consecutive addresses
    along the lanes, so each gets the pixels' own register layout (an interleaved [pixel, channel]
    read would get another layout, and with Triton 3.6 conversions between them in the loop).

    WIDE (C > 4 channels, ``triton_wide``): program i takes tile TILE0 + i; G . f of its list entry
    start + j comes from scratch row RowStart[tile] - ROW0 + j ([256] per entry, written by
    ``triton_wide``'s first pass) and its weights w are written back there for the feature pass;
    the walk ends at Stops[tile] (the forward's) and stores there where it ended. NCH is 0 then (the
    feature gradients are the third pass's) and GradPlanes holds the depth's plane only. UNIT is 1
    (a runtime argument, never specialised).

    SUB > 1 (not WIDE), as in the forward: SUB programs per tile. A one-warp program (NW = 1) skips
    the gradient sums and atomics of a Gaussian that reaches none of its pixels (w = 0 at every
    one: its sums would all be zero), as CUDA rasterizers skip it warp by warp: on the garden views
    about 55% of the (entry, 32 pixels) pairs walked (``bench/tile_order.py``). The test is a
    warp's max; in a program of several warps it would be a block-wide one, so they sum as before."""
    tile = TILE0 + tl.program_id(0) // SUB
    pix, inside, px, py, offs = _pixels(tile, tl.program_id(0) % SUB, N_TILES, TILES_X, H, W, NW, SUB)
    start = tl.load(Offsets + tile)
    if WIDE:
        end = tl.load(Stops + tile).to(start.dtype)
    else:
        end = tl.load(Offsets + tile + 1)
    g0 = _grad_channel(GradPlanes, pix, inside, 0, NPIX, NCH)
    g1 = _grad_channel(GradPlanes, pix, inside, 1, NPIX, NCH)
    g2 = _grad_channel(GradPlanes, pix, inside, 2, NPIX, NCH)
    g3 = _grad_channel(GradPlanes, pix, inside, 3, NPIX, NCH)
    g_depth = tl.zeros(px.shape, dtype=tl.float32)
    if HAS_DEPTH:
        g_depth = tl.load(GradPlanes + NCH * NPIX + pix, mask=inside, other=0.0)  # the plane after the channels
    g_rest = tl.load(GRest + pix, mask=inside, other=0.0)
    t_run = tl.full(px.shape, 1.0, dtype=tl.float32)
    done = tl.zeros(px.shape, dtype=tl.int32)
    prefix = tl.zeros(px.shape, dtype=tl.float32)
    pair, fid, valid, pair_n, fid_n, valid_n, mx, my, ca, cb, cc, op, z, f0, f1, f2, f3 = _first_gaussians(
        start, end, FlatIds, Means2d, Conics, Opac, Values, Depths, VN, NF, C, SHARED_FEATS, NCH, HAS_DEPTH,
    )
    dots_n = tl.zeros(px.shape, dtype=tl.float32)
    # the scratch row stride as a product with a runtime 1: rows are then not known to be 16-byte
    # aligned, so the loads and stores are not vectorised into another layout (which would cost a
    # shared-memory shuffle and two barriers per access in the loop), while the pixels' offsets
    # within a row stay known to be contiguous along the lanes (so the layout keeps lanes there)
    stride = 256 * UNIT
    if WIDE:  # entry e's scratch row: base + e
        base = tl.load(RowStart + tile) - ROW0 - start
        dots_n = tl.load(Scratch + (base + start) * stride + offs, mask=valid, other=0.0)
    b = start
    live = _live(done, inside)
    while (b < end) & (live > 0):
        for _ in tl.static_range(BLOCK_G):
            pair_nn, fid_nn, valid_nn = _gaussian_id(b + 2, end, FlatIds, VN, NF, SHARED_FEATS)
            nxt = _gaussian_params(pair_n, fid_n, valid_n, Means2d, Conics, Opac, Values, Depths, C, NCH, HAS_DEPTH)
            dots = dots_n
            if WIDE:  # the next entry's G . f, in flight during this one
                dots_n = tl.load(Scratch + (base + b + 1) * stride + offs, mask=valid_n, other=0.0)
            alpha, ok, raw, g, dx, dy = _alpha(px, py, mx, my, ca, cb, cc, op)
            t_after = t_run * (1.0 - alpha)
            keep = (t_after >= T_MIN_C) & (done == 0)
            done = tl.where(keep, done, 1)
            keep = keep & inside
            w = tl.where(keep, alpha * t_run, 0.0)
            if WIDE:
                tl.store(Scratch + (base + b) * stride + offs, w, mask=valid)
            dots += _channel_dot(g0, f0, 0, NCH)
            dots += _channel_dot(g1, f1, 1, NCH)
            dots += _channel_dot(g2, f2, 2, NCH)
            dots += _channel_dot(g3, f3, 3, NCH)
            if HAS_DEPTH:
                dots += g_depth * z
            prefix += w * dots
            if NW == 1:
                hit = tl.max(tl.where(w != 0.0, 1, 0))
            else:
                hit = 1
            if hit > 0:
                _channel_scatter(DValues, fid, valid, w, g0, 0, C, NCH)
                _channel_scatter(DValues, fid, valid, w, g1, 1, C, NCH)
                _channel_scatter(DValues, fid, valid, w, g2, 2, C, NCH)
                _channel_scatter(DValues, fid, valid, w, g3, 3, C, NCH)
                if HAS_DEPTH:
                    _warp_scatter(DDepths + pair, w * g_depth, valid)
                d_alpha = t_run * dots - (g_rest - prefix) / (1.0 - alpha)
                terms = _alpha_grads(d_alpha, keep, ok, raw, g, dx, dy, ca, cb, cc)
                _scatter_geometry(DOpac, DConics, DMeans2d, AbsGrad, pair, valid, terms, ABSGRAD)
            t_run = tl.where(keep, t_after, t_run)
            b += 1
            pair, fid, valid = pair_n, fid_n, valid_n
            pair_n, fid_n, valid_n = pair_nn, fid_nn, valid_nn
            mx, my, ca, cb, cc, op, z, f0, f1, f2, f3 = nxt
        live = _live(done, inside)
    if WIDE:  # entries from here on kept their G . f: the feature pass stops here
        tl.store(Stops + tile, tl.minimum(b, end).to(Stops.dtype.element_ty))


# (BLOCK_G, warps, programs per tile, register cap): eight warps, one pixel per thread (R = 1), as 3DGS's and gsplat's CUDA kernels
# lay out a tile. Fewer warps (R > 1 pixels per thread) compile to fewer instructions per Gaussian
# with Triton 3.8, but Triton 3.6 (the GPU machine's) lays the [R, NW, 32] tensors out with the
# warps along R wherever a load's addresses run along the lanes (a tie in its contiguity order):
# the per-warp sums then cross warps, 350-560 block barriers in the backward's code against 5 with
# eight warps (``bench/kernel_resources.py`` under each Triton, 2026-11-27). The autotuner weighs
# the run length between liveness tests (registers against tests) and, third, a register cap
# (None: ptxas decides): runs of 4 capped at 64 registers fit 4 programs (32 warps) per SM instead
# of 2-3, without spilling under Triton 3.6 (the forward at C = 3 uses 94 registers uncapped). The
# first of each list is the H100's pick for the wide passes (C = 160, 2026-11-27): forward runs of 8
# (0.33 ms; the others 0.33-0.41), backward runs of 4 capped (1.25 ms; the others 1.25-1.33).
# Then, for C <= 4 only (``prune``), one warp per program on a part of the tile (SUB programs per
# tile: two rows of 32 pixels, or four): each part stops on its own, and the backward skips the
# sums of a Gaussian that reaches none of its pixels (see ``_seq_bwd_kernel``). Not yet timed.
FWD_SETTINGS = ((8, 8, 1, None), (4, 8, 1, None), (16, 8, 1, None), (4, 8, 1, 64), (8, 1, 8, None), (4, 1, 4, None))
BWD_SETTINGS = ((4, 8, 1, 64), (8, 8, 1, None), (4, 8, 1, None), (16, 8, 1, None), (4, 1, 8, None), (8, 1, 8, None), (4, 1, 4, None))


def configs(backward: bool):
    """Autotuner candidates: Gaussians between liveness tests (BLOCK_G, the unrolled inner loop),
    warps (NW follows num_warps: it shapes the pixel grid so that each warp owns whole rows),
    programs per tile (SUB) and a register cap. The first of each list is the launch setting when
    the autotuner is off."""
    return [triton.Config({"BLOCK_G": g, "NW": w, "SUB": sub}, num_warps=w, maxnreg=cap) for g, w, sub, cap in (BWD_SETTINGS if backward else FWD_SETTINGS)]


def prune(configs, named_args, **kwargs):
    """The autotuner's candidates for a launch: the wide passes (WIDE) keep one program per tile
    (their scratch rows and stopping points are per tile)."""
    wide = kwargs.get("WIDE", named_args.get("WIDE", False))
    return [c for c in configs if not wide or c.kwargs["SUB"] == 1]

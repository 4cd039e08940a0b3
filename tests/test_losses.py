"""Losses: CLIP InfoNCE (against open_clip, and exact under 2-process DDP), logit scale,
modality dropout, reconstruction, engagement."""

import math
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from mmembed.models.losses import (
    ContrastiveLoss,
    clamp_logit_scale_,
    engagement_loss,
    learnable_logit_scale,
    modality_dropout,
    reconstruction_loss,
)

ATOL = 1e-10  # float64 throughout unless a test says otherwise


def _pairs(batch, dim, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(batch, dim, generator=g, dtype=dtype), dim=1)
    y = F.normalize(torch.randn(batch, dim, generator=g, dtype=dtype), dim=1)
    return x, y


def _close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)


# --------------------------------------------------------------------------- contrastive


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 16), dim=st.integers(1, 24), seed=st.integers(0, 2**31 - 1),
       tau=st.floats(0.0, math.log(100)))
def test_contrastive_matches_open_clip_loss_and_gradients(batch, dim, seed, tau):
    from open_clip.loss import ClipLoss  # open_clip's ClipLoss takes exp(logit_scale)

    x, y = _pairs(batch, dim, seed)
    grads = []
    for loss_fn in (lambda a, b, t: ContrastiveLoss()(a, b, t),
                    lambda a, b, t: ClipLoss()(a, b, t.exp())):
        a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
        t = torch.tensor(tau, dtype=torch.float64, requires_grad=True)
        loss = loss_fn(a, b, t)
        loss.backward()
        grads.append((loss.detach(), a.grad, b.grad, t.grad))
    for ours, theirs in zip(*grads):
        _close(ours, theirs)


def test_contrastive_matches_open_clip_in_float32():
    from open_clip.loss import ClipLoss

    for seed in range(5):
        x, y = _pairs(64, 32, seed, dtype=torch.float32)
        tau = torch.tensor(math.log(1 / 0.07))
        expected = ClipLoss()(x, y, tau.exp())
        torch.testing.assert_close(ContrastiveLoss()(x, y, tau), expected, rtol=1e-6, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 12), seed=st.integers(0, 2**31 - 1))
def test_contrastive_is_symmetric_and_permutation_invariant(batch, seed):
    x, y = _pairs(batch, 8, seed)
    tau = torch.tensor(2.0, dtype=torch.float64)
    loss = ContrastiveLoss()
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    _close(loss(x, y, tau), loss(y, x, tau))
    _close(loss(x, y, tau), loss(x[perm], y[perm], tau))


def test_contrastive_rewards_matching_pairs():
    x, _ = _pairs(8, 16, 0)
    tau = torch.tensor(math.log(100.0), dtype=torch.float64)
    assert ContrastiveLoss()(x, x, tau) < 0.01 < ContrastiveLoss()(x, x.roll(1, 0), tau)


def test_contrastive_rejects_bad_inputs():
    x, y = _pairs(4, 8, 0)
    tau = torch.tensor(1.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="same shape"):
        ContrastiveLoss()(x, y[:3], tau)
    with pytest.raises(ValueError, match="scalar"):
        ContrastiveLoss()(x, y, torch.ones(2))
    with pytest.raises(ValueError, match="rank"):
        ContrastiveLoss(rank=2, world_size=2)
    with pytest.raises(RuntimeError, match="process group"):
        ContrastiveLoss(rank=0, world_size=2)(x, y, tau)


# --- two CPU processes (gloo) against one process on the concatenated batch

WORLD, SHARD, DIM = 2, 3, 5
MODES = [(local, grad) for local in (True, False) for grad in (True, False)]


class _Towers(nn.Module):
    """Two linear 'towers' and a logit scale: enough to check DDP's parameter gradients."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.image = nn.Linear(6, DIM)
            self.text = nn.Linear(4, DIM)
        self.logit_scale = learnable_logit_scale()
        self.double()

    def forward(self, images, texts):
        return (F.normalize(self.image(images), dim=1), F.normalize(self.text(texts), dim=1),
                self.logit_scale)


def _ddp_data():
    g = torch.Generator().manual_seed(1)
    n = WORLD * SHARD
    x, y = _pairs(n, DIM, 2)
    return {"image": x, "text": y, "logit_scale": torch.tensor(1.7, dtype=torch.float64),
            "images_in": torch.randn(n, 6, generator=g, dtype=torch.float64),
            "texts_in": torch.randn(n, 4, generator=g, dtype=torch.float64)}


def _ddp_worker(rank, init_file, data, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        rows = slice(rank * SHARD, (rank + 1) * SHARD)
        out = {}
        for local, with_grad in MODES:
            x = data["image"][rows].clone().requires_grad_()
            y = data["text"][rows].clone().requires_grad_()
            tau = data["logit_scale"].clone().requires_grad_()
            loss = ContrastiveLoss(rank, WORLD, local_loss=local, gather_with_grad=with_grad)
            value = loss(x, y, tau)
            value.backward()
            out[f"{local}-{with_grad}"] = (value.detach(), x.grad, y.grad, tau.grad)

        model = _Towers()
        ddp = nn.parallel.DistributedDataParallel(model)
        value = ContrastiveLoss.from_process_group()(
            *ddp(data["images_in"][rows], data["texts_in"][rows]))
        value.backward()  # DDP averages the parameter gradients over the ranks
        out["ddp"] = {name: p.grad for name, p in model.named_parameters()}

        with pytest.warns(RuntimeWarning, match="only its own shard"):
            ContrastiveLoss()(data["image"][rows], data["text"][rows], data["logit_scale"])
        with pytest.raises(RuntimeError, match="from_process_group"):
            ContrastiveLoss(1 - rank, WORLD)(data["image"][rows], data["text"][rows],
                                             data["logit_scale"])
        torch.save(out, out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _global_reference(x, y, tau, detach_except=None):
    """Single-process loss and gradients; with ``detach_except=r``, rank r's local loss L_r with
    the other shards held constant (what gather_with_grad=False computes on rank r)."""
    x, y, tau = (t.clone().requires_grad_() for t in (x, y, tau))
    if detach_except is None:
        value = ContrastiveLoss()(x, y, tau)
    else:
        rows = slice(detach_except * SHARD, (detach_except + 1) * SHARD)
        keep = torch.zeros(len(x), 1, dtype=torch.bool)
        keep[rows] = True
        xs, ys = torch.where(keep, x, x.detach()), torch.where(keep, y, y.detach())
        labels = torch.arange(SHARD) + detach_except * SHARD
        s = tau.exp()
        value = (F.cross_entropy(s * xs[rows] @ ys.T, labels)
                 + F.cross_entropy(s * ys[rows] @ xs.T, labels)) / 2
    value.backward()
    return value.detach(), x.grad, y.grad, tau.grad


def test_contrastive_under_two_process_ddp_equals_single_process_global_batch(tmp_path):
    data = _ddp_data()
    mp.spawn(_ddp_worker, args=(str(tmp_path / "store"), data, tmp_path), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    loss, gx, gy, gtau = _global_reference(data["image"], data["text"], data["logit_scale"])

    for local, with_grad in MODES:
        got = [out[f"{local}-{with_grad}"] for out in ranks]
        values = torch.stack([g[0] for g in got])
        # local loss: L_r over the rank's rows, mean over ranks = L; otherwise L on every rank.
        _close(values.mean() if local else values, loss if local else loss.expand(WORLD))
        # τ is replicated, not gathered: DDP's mean of the ranks' ∂L_r/∂τ is ∂L/∂τ in every mode.
        _close(torch.stack([g[3] for g in got]).mean(), gtau)
        for r, (_, rx, ry, rtau) in enumerate(got):
            rows = slice(r * SHARD, (r + 1) * SHARD)
            if with_grad:
                # The gather's backward sums all ranks' terms: W·∂L/∂x_r; DDP's mean cancels W.
                _close(rx, WORLD * gx[rows])
                _close(ry, WORLD * gy[rows])
            elif local:
                _, lx, ly, ltau = _global_reference(data["image"], data["text"],
                                                    data["logit_scale"], detach_except=r)
                _close(rx, lx[rows])
                _close(ry, ly[rows])
                _close(rtau, ltau)
            else:
                _close(rx, gx[rows])  # 1/W of the global gradient after DDP's mean
                _close(ry, gy[rows])

    # End to end: DDP-averaged parameter gradients = one process on the global batch.
    model = _Towers()
    ContrastiveLoss()(*model(data["images_in"], data["texts_in"])).backward()
    for name, p in model.named_parameters():
        for out in ranks:
            _close(out["ddp"][name], p.grad)


# --------------------------------------------------------------------------- logit scale


def test_logit_scale_starts_at_clip_temperature_and_clamps():
    tau = learnable_logit_scale()
    assert isinstance(tau, nn.Parameter) and tau.requires_grad and tau.shape == ()
    assert tau.item() == pytest.approx(math.log(1 / 0.07))
    assert tau.exp().item() == pytest.approx(1 / 0.07, rel=1e-6)
    with torch.no_grad():
        tau.fill_(10.0)
    assert clamp_logit_scale_(tau) is tau
    assert tau.item() == pytest.approx(math.log(100))
    assert tau.requires_grad
    with torch.no_grad():
        tau.fill_(-3.0)
    assert clamp_logit_scale_(tau).item() == 0.0
    with torch.no_grad():
        tau.fill_(3.0)
    assert clamp_logit_scale_(tau, max_value=math.log(20)).item() == pytest.approx(math.log(20))
    assert learnable_logit_scale(0.5).item() == 0.5


# --------------------------------------------------------------------------- modality dropout


def test_modality_dropout_keeps_or_zeros_text():
    x, y = _pairs(50, 4, 0)
    fused, mask = modality_dropout(x, y, 0.0)
    assert mask.dtype == torch.bool and mask.all()
    _close(fused, torch.cat([x, y], dim=1))
    fused, mask = modality_dropout(x, y[:, :3], 1.0)
    assert fused.shape == (50, 7) and not mask.any()
    _close(fused, torch.cat([x, torch.zeros(50, 3, dtype=x.dtype)], dim=1))


@settings(max_examples=20, deadline=None)
@given(p=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_modality_dropout_rate_and_layout(p, seed):
    n = 20_000
    x, y = torch.randn(n, 2), torch.randn(n, 3) + 5.0  # text never exactly zero
    g = torch.Generator().manual_seed(seed)
    fused, mask = modality_dropout(x, y, p, generator=g)
    assert torch.equal(fused[:, :2], x)  # the image half is never touched
    assert torch.equal(fused[mask, 2:], y[mask])
    assert torch.equal(fused[~mask, 2:], torch.zeros_like(y[~mask]))
    dropped = 1.0 - mask.float().mean().item()
    assert abs(dropped - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-9
    g2 = torch.Generator().manual_seed(seed)
    assert torch.equal(modality_dropout(x, y, p, generator=g2)[1], mask)


def test_modality_dropout_gradients_reach_kept_text_only():
    x, y = torch.randn(8, 2, requires_grad=True), torch.randn(8, 3, requires_grad=True)
    fused, mask = modality_dropout(x, y, 0.5, generator=torch.Generator().manual_seed(3))
    fused.sum().backward()
    assert torch.equal(y.grad, mask[:, None].float().expand(8, 3))
    assert torch.equal(x.grad, torch.ones(8, 2))


def test_modality_dropout_rejects_bad_inputs():
    with pytest.raises(ValueError, match="probability"):
        modality_dropout(torch.ones(2, 2), torch.ones(2, 2), 1.5)
    with pytest.raises(ValueError, match="same B"):
        modality_dropout(torch.ones(2, 2), torch.ones(3, 2), 0.5)


# --------------------------------------------------------------------------- reconstruction


def test_reconstruction_loss_is_summed_squared_error_per_post():
    x, y = _pairs(6, 8, 0)
    _close(reconstruction_loss(x, x), torch.tensor(0.0, dtype=x.dtype))
    _close(reconstruction_loss(x, y), ((x - y) ** 2).sum(1).mean())
    _close(reconstruction_loss(x, y), (2 - 2 * (x * y).sum(1)).mean())  # unit vectors: 2 − 2cos
    assert reconstruction_loss(x.half(), y.half()).dtype == torch.float32
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_loss(x, y[:, :4])


# --------------------------------------------------------------------------- engagement


def test_engagement_regression_is_huber_on_log_rate():
    target = torch.tensor([0.0, 1.0, -2.0, 0.5])
    pred = torch.tensor([0.5, 1.0, 1.0, 0.5], requires_grad=True)
    # errors 0.5, 0, 3, 0 -> 0.5·0.25, 0, 1·(3 − 0.5), 0
    expected = (0.125 + 2.5) / 4
    loss = engagement_loss(pred, target, account=torch.tensor([0, 0, 1, 1]))
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert pred.grad is not None
    big = engagement_loss(pred, target, kind="regression", delta=100.0)
    assert big.item() == pytest.approx(0.5 * ((pred - target) ** 2).mean().item())
    assert engagement_loss(torch.zeros(0), torch.zeros(0)).item() == 0.0


def test_engagement_pairwise_value_and_order():
    target = torch.tensor([1.0, 0.0, 2.0, 2.0])
    account = torch.tensor([7, 7, 9, 9])
    pred = torch.tensor([0.3, -0.2, 5.0, 1.0])
    # Only (0, 1) is a valid pair: (2, 3) is a tie, cross-account pairs do not count.
    expected = math.log1p(math.exp(-(0.3 + 0.2)))
    assert engagement_loss(pred, target, account, kind="pairwise").item() == pytest.approx(expected)
    right = engagement_loss(target * 2, target, account, kind="pairwise")
    wrong = engagement_loss(-target * 2, target, account, kind="pairwise")
    assert right < math.log(2) < wrong
    # Without accounts every differing pair counts.
    assert engagement_loss(pred, target, kind="pairwise") != pytest.approx(expected)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 30), accounts=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       shifts=st.lists(st.floats(-50, 50), min_size=4, max_size=4))
def test_engagement_pairwise_ignores_per_account_offsets(n, accounts, seed, shifts):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (n,), generator=g).double()  # ties included
    account = torch.randint(0, accounts, (n,), generator=g)
    offset = torch.tensor(shifts, dtype=torch.float64)[account]
    base = engagement_loss(pred, target, account, kind="pairwise")
    _close(engagement_loss(pred + offset, target, account, kind="pairwise"), base, atol=1e-9)
    _close(engagement_loss(pred, target + offset, account, kind="pairwise"), base, atol=1e-9)


def test_engagement_pairwise_without_pairs_is_zero_with_grad():
    pred = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    cases = [(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0, 1, 2])),  # one post per account
             (torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0, 0, 0]))]  # all tied
    for target, account in cases:
        loss = engagement_loss(pred, target, account, kind="pairwise")
        assert loss.item() == 0.0 and torch.isfinite(loss) and loss.requires_grad
        pred.grad = None
        loss.backward()
        assert torch.equal(pred.grad, torch.zeros(3))


def test_engagement_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        engagement_loss(torch.zeros(3, 1), torch.zeros(3))
    with pytest.raises(ValueError, match="kind"):
        engagement_loss(torch.zeros(3), torch.zeros(3), kind="listwise")
    with pytest.raises(ValueError, match="account"):
        engagement_loss(torch.zeros(3), torch.zeros(3), torch.zeros(2), kind="pairwise")

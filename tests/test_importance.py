"""dhclib.method.importance: the per-sample gradient statistics behind Online EWC's Fisher and MAS's importance (docs/method.md (consolidation)):
the closed form of fully connected layers and the materialised per-sample gradients of Conv2d layers, checked
against torch.func (vmap over grad of a per-sample loss) on MLPs and small CNNs and against formulas written out by
hand on one-input models; the mini-batch Fisher shortcut; clear errors for unsupported layers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from dhclib.method.importance import batch_fisher, sample_grad_stats, supported_modules
from dhclib.method.layers import DHPSoftmax, MatchedSoftmax
from dhclib.method.models import MLP

OUTPUTS = ("dhp", "matched")
FULL = slice(0, 3)


# ---------------------------------------------------------------------------------------------------------------
# helpers: a tiny model and the torch.func reference
# ---------------------------------------------------------------------------------------------------------------
def tiny_mlp(output: str, out_features: int = 3, seed: int = 0, dtype=torch.float64) -> MLP:
    """A 6-5-4-out MLP; for DHP a non-zero Hebbian trace and alpha, so that the plastic term shapes the logits."""
    torch.manual_seed(seed)
    model = MLP(6, (5, 4), out_features, output=output)
    sharpen(model)
    return model.to(dtype)


@torch.no_grad()
def sharpen(model: nn.Module) -> None:
    """Larger weights than the init (logits far from uniform) and, for DHP, a non-zero trace and alpha."""
    for p in model.parameters():
        p.mul_(2.0)
    if isinstance(model.out, DHPSoftmax):
        model.out.hebb.copy_(torch.rand_like(model.out.hebb))
        model.out.alpha.copy_(torch.randn_like(model.out.alpha))


def tiny_data(n: int = 10, n_classes: int = 3, seed: int = 1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=dtype), torch.randint(0, n_classes, (n,), generator=g)


def ref_per_sample_grads(model, x, head, fn, extra):
    """torch.func: for every sample n, d fn(head logits of x_n, extra_n) / d w for every slow weight w,
    with the model in evaluation mode; returns {name: (N, *w.shape)}."""
    was_training = model.training
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    slow = {k: params[k] for k in model.slow_parameters()}

    def per_sample(slow_p, xi, ei):
        z = functional_call(model, ({**params, **slow_p}, buffers), (xi.unsqueeze(0),))[0, head]
        return fn(z, ei)

    out = vmap(grad(per_sample), in_dims=(None, 0, 0))(slow, x, extra)
    model.train(was_training)
    return out


def head_probs(model, x, head):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        p = torch.softmax(model(x)[:, head], dim=1)
    model.train(was_training)
    return p


def log_p_of(z, onehot):
    return (torch.log_softmax(z, 0) * onehot).sum()


def ref_fisher_labels(model, x, head, labels):
    """mean_n (d log p(labels_n | x_n) / d w)^2."""
    c = head.stop - head.start
    g = ref_per_sample_grads(model, x, head, log_p_of, F.one_hot(labels, c).to(x.dtype))
    return {k: v.square().mean(0) for k, v in g.items()}


def ref_fisher_exact(model, x, head):
    """mean_n sum_y p(y|x_n) (d log p(y|x_n) / d w)^2, one torch.func pass per class y."""
    c = head.stop - head.start
    p = head_probs(model, x, head)
    total = None
    for y in range(c):
        g = ref_per_sample_grads(model, x, head, log_p_of, F.one_hot(torch.full((len(x),), y), c).to(x.dtype))
        term = {k: (p[:, y].reshape(-1, *[1] * (v.dim() - 1)) * v.square()).mean(0) for k, v in g.items()}
        total = term if total is None else {k: total[k] + term[k] for k in total}
    return total


def ref_mas(model, x, head):
    """mean_n |d ||f(x_n)||_2^2 / d w| (abs per sample, before the mean)."""
    g = ref_per_sample_grads(model, x, head, lambda z, _: z.square().sum(), torch.zeros(len(x)))
    return {k: v.abs().mean(0) for k, v in g.items()}


def assert_dicts_close(got, want, rtol=1e-10, atol=1e-12):
    assert list(got) == list(want)
    for k in want:
        assert got[k].shape == want[k].shape, k
        assert got[k].dtype == want[k].dtype, k
        torch.testing.assert_close(got[k], want[k], rtol=rtol, atol=atol, msg=lambda m: f"{k}: {m}")


def assert_nontrivial(stats):
    """The comparison means something: every statistic has non-zero entries."""
    for k, v in stats.items():
        assert v.abs().sum() > 0, k


# ---------------------------------------------------------------------------------------------------------------
# against torch.func
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("head", [FULL, slice(2, 5)], ids=["single-head", "head-2:5"])
def test_exact_fisher_matches_torch_func(output, head):
    """fisher_mode="exact" is E_x sum_y p(y|x) (d log p(y|x)/dw)^2 over the active head, as torch.func computes it
    per sample and per class (float64), for every slow weight of a 6-5-4 MLP with either output layer; with a
    head that is a slice of the output units (multi-head) too."""
    model = tiny_mlp(output, out_features=head.stop)
    x, _ = tiny_data()
    got = sample_grad_stats(model, x, head, "fisher", fisher_mode="exact")
    want = ref_fisher_exact(model, x, head)
    assert_nontrivial(want)
    assert_dicts_close(got, want)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("head", [FULL, slice(2, 5)], ids=["single-head", "head-2:5"])
def test_true_label_fisher_matches_torch_func(output, head):
    """fisher_mode="true" (the empirical Fisher) is E_x (d log p(y|x)/dw)^2 with y the given local head labels."""
    model = tiny_mlp(output, out_features=head.stop)
    x, y = tiny_data()
    got = sample_grad_stats(model, x, head, "fisher", y=y, fisher_mode="true")
    want = ref_fisher_labels(model, x, head, y)
    assert_nontrivial(want)
    assert_dicts_close(got, want)
    # and it is not the exact Fisher: the label choice matters
    exact = sample_grad_stats(model, x, head, "fisher", fisher_mode="exact")
    assert not torch.allclose(got["out.theta"], exact["out.theta"])


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("chunk", [512, 4])
def test_sampled_fisher_reproduces_the_draw_from_the_generator(output, chunk):
    """fisher_mode="sample" draws one y ~ p(y|x) per sample (torch.multinomial with the given generator, chunk by
    chunk); reproducing the draw with an identically seeded generator gives the torch.func Fisher of those y."""
    head = slice(1, 4)
    model = tiny_mlp(output, out_features=4)
    x, _ = tiny_data(n=10)
    got = sample_grad_stats(model, x, head, "fisher", fisher_mode="sample",
                            generator=torch.Generator().manual_seed(7), chunk=chunk)
    g = torch.Generator().manual_seed(7)
    p = head_probs(model, x, head)
    labels = torch.cat([torch.multinomial(p[s : s + chunk], 1, generator=g).squeeze(1)
                        for s in range(0, len(x), chunk)])
    want = ref_fisher_labels(model, x, head, labels)
    assert_nontrivial(want)
    assert_dicts_close(got, want)


@pytest.mark.parametrize("output", OUTPUTS)
def test_sampled_fisher_is_unbiased_for_the_exact_fisher(output):
    """Statistically: averaged over many draws of y ~ p(y|x) the sampled Fisher approaches the exact one, while a
    single draw per sample does not equal it. Three samples repeated 3,000 times each."""
    head = FULL
    model = tiny_mlp(output)
    x, _ = tiny_data(n=3)
    many = x.repeat(3000, 1)
    exact = sample_grad_stats(model, x, head, "fisher", fisher_mode="exact")
    sampled = sample_grad_stats(model, many, head, "fisher", fisher_mode="sample",
                                generator=torch.Generator().manual_seed(3))
    for k in exact:
        torch.testing.assert_close(sampled[k], exact[k], rtol=0.1, atol=0.02 * exact[k].max().item(),
                                   msg=lambda m: f"{k}: {m}")
    few = sample_grad_stats(model, x, head, "fisher", fisher_mode="sample", generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(few["out.theta"], exact["out.theta"], rtol=1e-3)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("head", [FULL, slice(2, 5)], ids=["single-head", "head-2:5"])
def test_mas_matches_torch_func(output, head):
    """kind="mas" is E_x |d ||f(x)||_2^2 / dw| with f the active-head logits: abs of each per-sample gradient,
    then the mean (not the abs of the mean gradient)."""
    model = tiny_mlp(output, out_features=head.stop)
    x, _ = tiny_data()
    got = sample_grad_stats(model, x, head, "mas")
    want = ref_mas(model, x, head)
    assert_nontrivial(want)
    assert_dicts_close(got, want)
    # abs before the mean differs from abs after the mean here (the test can tell them apart)
    g = ref_per_sample_grads(model, x, head, lambda z, _: z.square().sum(), torch.zeros(len(x)))
    assert not torch.allclose(g["body.0.weight"].mean(0).abs(), want["body.0.weight"])


@pytest.mark.parametrize("output", OUTPUTS)
def test_head_slicing_zeroes_output_columns_outside_the_head(output):
    """Multi-head: only the active head's units enter the statistic, so output-layer columns of other heads get
    exactly 0 importance, and the result differs from the statistic over all units."""
    head = slice(2, 5)
    model = tiny_mlp(output, out_features=5)
    x, y = tiny_data()
    for kind, kwargs in [("fisher", dict(fisher_mode="exact")), ("fisher", dict(y=y, fisher_mode="true")),
                         ("mas", {})]:
        stats = sample_grad_stats(model, x, head, kind, **kwargs)
        for name in model.out.slow_parameters():
            w = stats[f"out.{name}"]
            assert torch.equal(w[:, :2], torch.zeros_like(w[:, :2])), (kind, name)
            assert (w[:, 2:] > 0).any(), (kind, name)
    full = sample_grad_stats(model, x, slice(0, 5), "mas")
    assert not torch.allclose(full["body.0.weight"], sample_grad_stats(model, x, head, "mas")["body.0.weight"])


def test_float32_matches_float64_reference():
    """In float32 the statistics agree with the float64 torch.func reference to float32 precision and keep the
    parameters' dtype."""
    model64 = tiny_mlp("dhp")
    model32 = tiny_mlp("dhp", dtype=torch.float32)
    x, _ = tiny_data()
    got = sample_grad_stats(model32, x.float(), FULL, "fisher")
    want = ref_fisher_exact(model64, x, FULL)
    for k in want:
        assert got[k].dtype == torch.float32
        torch.testing.assert_close(got[k].double(), want[k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind, mode", [("fisher", "exact"), ("fisher", "true"), ("mas", "exact")])
def test_chunking_does_not_change_the_result(kind, mode):
    """The chunk size is an implementation detail: chunks of 3 and one chunk give the same mean."""
    model = tiny_mlp("matched")
    x, y = tiny_data(n=11)
    a = sample_grad_stats(model, x, FULL, kind, y=y, fisher_mode=mode, chunk=3)
    b = sample_grad_stats(model, x, FULL, kind, y=y, fisher_mode=mode)
    assert_dicts_close(a, b)


def test_keys_are_the_slow_weights_and_model_state_is_left_alone():
    """The result is keyed like model.slow_parameters() (never DHP's alpha or eta); the model is evaluated in
    eval mode, so the Hebbian trace is not updated, and its training mode is restored afterwards."""
    model = tiny_mlp("dhp")
    model.train()
    hebb = model.out.hebb.clone()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    x, y = tiny_data()
    for kind in ("fisher", "mas"):
        stats = sample_grad_stats(model, x, FULL, kind, y=y)
        assert list(stats) == list(model.slow_parameters())
        assert "out.alpha" not in stats and "out.eta" not in stats
        assert all(stats[k].shape == p.shape for k, p in model.slow_parameters().items())
        assert all(not v.requires_grad for v in stats.values())
    assert model.training
    assert torch.equal(model.out.hebb, hebb)
    assert all(torch.equal(p, params[k]) for k, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())  # no .grad written into the model
    model.eval()
    sample_grad_stats(model, x, FULL, "mas")
    assert not model.training


# ---------------------------------------------------------------------------------------------------------------
# convolutions: per-sample gradients materialised (no closed form), checked against torch.func
# ---------------------------------------------------------------------------------------------------------------
class TinyCNN(nn.Module):
    """conv 4 (5x5, pad 1) -> LeakyReLU 0.2 -> max-pool 2 -> conv2 (default: 5, 3x3, pad 1) -> ReLU -> max-pool 2
    -> dropout -> FC 6 -> LeakyReLU -> DHP or matched output layer, on 3x16x16 inputs; DHP with a non-zero trace."""

    def __init__(self, output: str, out_features: int = 3, conv2: nn.Module | None = None, seed: int = 0,
                 dtype=torch.float64) -> None:
        super().__init__()
        torch.manual_seed(seed)
        conv2 = conv2 if conv2 is not None else nn.Conv2d(4, 5, 3, padding=1)
        features = nn.Sequential(nn.Conv2d(3, 4, 5, padding=1), nn.LeakyReLU(0.2), nn.MaxPool2d(2), conv2,
                                 nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.5), nn.Flatten())
        with torch.no_grad():
            width = features.eval()(torch.zeros(1, 3, 16, 16)).shape[1]
        self.body = nn.Sequential(*features, nn.Linear(width, 6), nn.LeakyReLU(0.2))
        self.out = (DHPSoftmax if output == "dhp" else MatchedSoftmax)(6, out_features)
        sharpen(self)
        self.to(dtype)

    def forward(self, x, y=None):
        return self.out(self.body(x), y)

    def slow_parameters(self):
        params = {f"body.{k}": p for k, p in self.body.named_parameters()}
        params.update({f"out.{k}": p for k, p in self.out.slow_parameters().items()})
        return params


def image_data(n: int = 7, n_classes: int = 3, seed: int = 1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g, dtype=dtype), torch.randint(0, n_classes, (n,), generator=g)


CNN_MODES = ["fisher-exact", "fisher-sample", "fisher-true", "mas"]


def cnn_stats_and_reference(model, x, y, head, mode, chunk=512):
    """sample_grad_stats and its torch.func reference for one of CNN_MODES (the sampled labels reproduced from an
    identically seeded generator, chunk by chunk)."""
    if mode == "mas":
        return sample_grad_stats(model, x, head, "mas", chunk=chunk), ref_mas(model, x, head)
    fisher_mode = mode.split("-")[1]
    got = sample_grad_stats(model, x, head, "fisher", y=y, fisher_mode=fisher_mode,
                            generator=torch.Generator().manual_seed(5), chunk=chunk)
    if fisher_mode == "exact":
        return got, ref_fisher_exact(model, x, head)
    if fisher_mode == "true":
        return got, ref_fisher_labels(model, x, head, y)
    g = torch.Generator().manual_seed(5)
    p = head_probs(model, x, head)
    labels = torch.cat([torch.multinomial(p[s : s + chunk], 1, generator=g).squeeze(1)
                        for s in range(0, len(x), chunk)])
    return got, ref_fisher_labels(model, x, head, labels)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("head", [FULL, slice(2, 5)], ids=["single-head", "head-2:5"])
@pytest.mark.parametrize("mode", CNN_MODES)
def test_cnn_matches_torch_func(output, head, mode):
    """A CNN with two Conv2d layers (weights shared over positions: per-sample gradients are materialised, not a
    closed form), max-pooling, dropout, an FC layer and either output layer: every fisher_mode and MAS equal the
    torch.func per-sample reference (float64) for every slow weight, single-head and multi-head. The model is in
    training mode when called: dropout is off all the same (the reference runs in eval mode) and the mode is
    restored."""
    model = TinyCNN(output, out_features=head.stop)
    model.train()
    x, y = image_data()
    got, want = cnn_stats_and_reference(model, x, y, head, mode, chunk=3 if mode == "fisher-sample" else 512)
    assert model.training
    assert_nontrivial(want)
    assert_dicts_close(got, want, rtol=1e-9)
    assert {"body.0.weight", "body.0.bias", "body.3.weight", "body.3.bias"} <= set(got)


CONV_VARIANTS = {
    "stride2": lambda: nn.Conv2d(4, 5, 3, stride=2, padding=1),
    "same-even-kernel": lambda: nn.Conv2d(4, 5, 4, padding="same"),  # asymmetric padding
    "same-dilated": lambda: nn.Conv2d(4, 5, 3, padding="same", dilation=2),
    "dilation2-pad2": lambda: nn.Conv2d(4, 5, 3, padding=2, dilation=2),
    "valid-no-bias": lambda: nn.Conv2d(4, 5, 3, padding="valid", bias=False),
    "rectangular": lambda: nn.Conv2d(4, 5, (3, 2), stride=(1, 2), padding=(1, 0)),
    "reflect": lambda: nn.Conv2d(4, 5, 3, padding=1, padding_mode="reflect"),
    "circular": lambda: nn.Conv2d(4, 5, 3, padding=1, padding_mode="circular"),
    "replicate-same": lambda: nn.Conv2d(4, 5, 4, padding="same", padding_mode="replicate"),
}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("variant", list(CONV_VARIANTS))
@pytest.mark.parametrize("mode", ["fisher-exact", "mas"])
def test_conv_attributes_match_torch_func(variant, mode):
    """General Conv2d attributes (stride, 'same' incl. asymmetric, 'valid', dilation, rectangular kernels, no bias,
    non-zero padding modes) give the torch.func statistics."""
    model = TinyCNN("matched", conv2=CONV_VARIANTS[variant]())
    x, y = image_data()
    got, want = cnn_stats_and_reference(model, x, y, FULL, mode)
    assert_nontrivial(want)
    assert_dicts_close(got, want, rtol=1e-9)
    assert ("body.3.bias" in got) == (model.body[3].bias is not None)


@pytest.mark.parametrize("unfold_elements, grad_elements", [(1, 1), (40_000, 700), (10**9, 1), (10**9, 10**9)],
                         ids=["one-sample-blocks", "two-sample-blocks", "one-sample-grads", "one-block"])
@pytest.mark.parametrize("mode", CNN_MODES)
def test_conv_blocks_and_chunks_do_not_change_the_result(monkeypatch, unfold_elements, grad_elements, mode):
    """The memory bounds of the conv path (forward blocks of 1 or 2 samples or the whole chunk; per-sample
    gradients of 1-3 samples at a time or all) and the chunk size are implementation details: the statistics are
    torch.func's, and with fisher_mode="sample" the labels are still drawn in one call per chunk."""
    import dhclib.method.importance as importance

    model = TinyCNN("dhp")
    x, y = image_data(n=9)
    monkeypatch.setattr(importance, "_UNFOLD_ELEMENTS", unfold_elements)
    monkeypatch.setattr(importance, "_GRAD_ELEMENTS", grad_elements)
    for chunk in (512, 4):
        got, want = cnn_stats_and_reference(model, x, y, FULL, mode, chunk=chunk)
        assert_nontrivial(want)
        assert_dicts_close(got, want, rtol=1e-9)


def test_cnn_float32_matches_float64_reference():
    """In float32 the CNN's statistics agree with the float64 torch.func reference to float32 precision and keep
    the parameters' dtype."""
    model32 = TinyCNN("dhp", dtype=torch.float32)
    model64 = TinyCNN("dhp")
    x, _ = image_data()
    got = sample_grad_stats(model32, x.float(), FULL, "fisher")
    want = ref_fisher_exact(model64, x, FULL)
    for k in want:
        assert got[k].dtype == torch.float32
        torch.testing.assert_close(got[k].double(), want[k], rtol=1e-4, atol=1e-6 * want[k].abs().max().item())


# ---------------------------------------------------------------------------------------------------------------
# by hand
# ---------------------------------------------------------------------------------------------------------------
def test_hand_computed_one_input_dhp_layer():
    """One input, a 1x2 DHP output layer: z_c = x (theta_c + alpha_c hebb_c). With p = softmax(z),
    d log p(y|x) / d theta_c = x (1[y=c] - p_c), so the exact Fisher is x^2 p_c (1 - p_c) (sum over y weighted by p),
    the empirical Fisher x^2 (1[y=c] - p_c)^2, and MAS |2 z_c x|; each a mean over the samples."""
    model = MLP(1, (), 2, output="dhp").double()
    with torch.no_grad():
        model.out.theta.copy_(torch.tensor([[0.5, -1.0]]))
        model.out.alpha.copy_(torch.tensor([[2.0, 0.5]]))
        model.out.hebb.copy_(torch.tensor([[0.25, 1.0]]))  # W = theta + alpha hebb = [1.0, -0.5]
    xs = [2.0, -1.0]
    ys = [1, 0]
    x = torch.tensor(xs, dtype=torch.float64).unsqueeze(1)
    fisher, emp, mas = [[0.0, 0.0] for _ in range(3)]
    for xv, yv in zip(xs, ys):
        z = [xv * 1.0, xv * -0.5]
        e = [math.exp(v) for v in z]
        p = [v / sum(e) for v in e]
        for c in range(2):
            fisher[c] += xv**2 * p[c] * (1 - p[c]) / 2
            emp[c] += xv**2 * ((1.0 if yv == c else 0.0) - p[c]) ** 2 / 2
            mas[c] += abs(2 * z[c] * xv) / 2
    got = sample_grad_stats(model, x, slice(0, 2), "fisher")
    assert list(got) == ["out.theta"]
    torch.testing.assert_close(got["out.theta"], torch.tensor([fisher], dtype=torch.float64), rtol=1e-12, atol=0)
    got = sample_grad_stats(model, x, slice(0, 2), "fisher", y=torch.tensor(ys), fisher_mode="true")
    torch.testing.assert_close(got["out.theta"], torch.tensor([emp], dtype=torch.float64), rtol=1e-12, atol=0)
    got = sample_grad_stats(model, x, slice(0, 2), "mas")
    torch.testing.assert_close(got["out.theta"], torch.tensor([mas], dtype=torch.float64), rtol=1e-12, atol=0)


def test_hand_computed_one_hidden_unit_matched_model():
    """1-1-2 network with the matched output layer: h = relu(w x + b), z_c = h W_c with W = theta + theta2.
    d log p(y|x)/dw = x 1[h>0] (W_y - sum_c p_c W_c), so the exact Fisher of w is x^2 1[h>0] Var_p(W) and that of b
    is 1[h>0] Var_p(W); theta and theta2 get h^2 p_c (1 - p_c) each. A sample with h = 0 contributes nothing to
    w and b. MAS of w: |2 x sum_c z_c W_c|."""
    model = MLP(1, (1,), 2, output="matched").double()
    with torch.no_grad():
        model.body[0].weight.fill_(1.5)
        model.body[0].bias.fill_(-0.5)
        model.out.theta.copy_(torch.tensor([[1.0, -2.0]]))
        model.out.theta2.copy_(torch.tensor([[0.5, 0.25]]))  # W = [1.5, -1.75]
    W = [1.5, -1.75]
    xs = [1.0, 2.0, -1.0]  # h = 1.0, 2.5, 0 (inactive)
    n = len(xs)
    fw = fb = ft0 = ft1 = mw = 0.0
    for xv in xs:
        h = max(0.0, 1.5 * xv - 0.5)
        z = [h * W[0], h * W[1]]
        e = [math.exp(v) for v in z]
        p = [v / sum(e) for v in e]
        mean_w = p[0] * W[0] + p[1] * W[1]
        var_w = p[0] * (W[0] - mean_w) ** 2 + p[1] * (W[1] - mean_w) ** 2
        on = 1.0 if h > 0 else 0.0
        fw += xv**2 * on * var_w / n
        fb += on * var_w / n
        ft0 += h**2 * p[0] * (1 - p[0]) / n
        ft1 += h**2 * p[1] * (1 - p[1]) / n
        mw += abs(2 * xv * on * (z[0] * W[0] + z[1] * W[1])) / n
    x = torch.tensor(xs, dtype=torch.float64).unsqueeze(1)
    got = sample_grad_stats(model, x, slice(0, 2), "fisher")
    assert set(got) == {"body.0.weight", "body.0.bias", "out.theta", "out.theta2"}
    assert got["body.0.weight"].item() == pytest.approx(fw, rel=1e-12)
    assert got["body.0.bias"].item() == pytest.approx(fb, rel=1e-12)
    for name in ("out.theta", "out.theta2"):
        torch.testing.assert_close(got[name], torch.tensor([[ft0, ft1]], dtype=torch.float64), rtol=1e-12, atol=0)
    got = sample_grad_stats(model, x, slice(0, 2), "mas")
    assert got["body.0.weight"].item() == pytest.approx(mw, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# the mini-batch shortcut
# ---------------------------------------------------------------------------------------------------------------
def test_batch_fisher_squares_mini_batch_mean_gradients():
    """batch_fisher = mean over consecutive mini-batches of (d mean_batch CE / dw)^2 with the true local labels,
    the model in eval mode (trace untouched); a last, smaller batch counts as one batch."""
    head = slice(1, 4)
    model = tiny_mlp("dhp", out_features=4)
    model.train()
    hebb = model.out.hebb.clone()
    x, y = tiny_data(n=10)
    got = batch_fisher(model, x, y, head, batch_size=4)
    assert model.training and torch.equal(model.out.hebb, hebb)
    slow = model.slow_parameters()
    want = {k: torch.zeros_like(p) for k, p in slow.items()}
    model.eval()
    for s in (0, 4, 8):
        loss = F.cross_entropy(model(x[s : s + 4])[:, head], y[s : s + 4])
        for k, g in zip(slow, torch.autograd.grad(loss, list(slow.values()))):
            want[k] += g.square() / 3
    assert_dicts_close(got, want)
    assert_nontrivial(want)


# ---------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------
class _ConvNet(nn.Module):
    """A model with a 1-D convolution: only Conv2d's per-sample statistic is implemented."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 2, kernel_size=3)
        self.fc = nn.Linear(8, 3)

    def forward(self, x, y=None):
        return self.fc(self.conv(x.unsqueeze(1)).flatten(1))

    def slow_parameters(self):
        return dict(self.named_parameters())


class _NormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.norm = nn.LayerNorm(3)

    def forward(self, x, y=None):
        return self.norm(self.fc(x))

    def slow_parameters(self):
        return dict(self.named_parameters())


@pytest.mark.parametrize("net, bad", [(_ConvNet, "conv (Conv1d)"), (_NormNet, "norm (LayerNorm)")])
@pytest.mark.parametrize("kind", ["fisher", "mas"])
def test_unsupported_module_raises_not_implemented_with_its_name(net, bad, kind):
    """A parametrised module other than nn.Linear / DHPSoftmax / MatchedSoftmax raises NotImplementedError naming
    the module and its type, rather than returning a wrong statistic."""
    model = net()
    with pytest.raises(NotImplementedError, match="per-sample importance is implemented for") as info:
        sample_grad_stats(model, torch.randn(4, 6), FULL, kind)
    assert bad in str(info.value)
    assert "fc" not in str(info.value).split("has", 1)[1]  # the supported layer is not blamed
    with pytest.raises(NotImplementedError):
        supported_modules(model)


@pytest.mark.parametrize("kind", ["fisher", "mas"])
def test_grouped_convolution_raises_not_implemented(kind):
    """A Conv2d with groups != 1 is not supported: NotImplementedError naming the module and its groups (and not
    the supported layers), before any computation."""
    model = TinyCNN("matched", conv2=nn.Conv2d(4, 4, 3, padding=1, groups=2))
    x, _ = image_data()
    with pytest.raises(NotImplementedError, match="per-sample importance is implemented for") as info:
        sample_grad_stats(model, x, FULL, kind)
    message = str(info.value)
    assert "body.3 (Conv2d with groups=2)" in message and "groups=1 only" in message
    assert "body.0" not in message.split("has", 1)[1]
    with pytest.raises(NotImplementedError, match="groups=2"):
        supported_modules(model)


class _PartialStat(nn.Module):
    """Claims a closed-form statistic but covers only one of its two slow parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(6, 3))
        self.b = nn.Parameter(torch.randn(3))

    def forward(self, x, y=None):
        return x @ self.a + self.b

    def sample_grad_stat(self, a, d):
        return {"a": a.t() @ d}

    def slow_parameters(self):
        return dict(self.named_parameters())


def test_slow_parameter_without_a_statistic_raises_not_implemented():
    """A slow parameter that no layer provides a statistic for is an error naming it, not a silent zero."""
    with pytest.raises(NotImplementedError, match=r"\['b'\]"):
        sample_grad_stats(_PartialStat(), torch.randn(4, 6), FULL, "mas")


def test_bad_arguments_raise_value_error():
    """Unknown kind or fisher_mode, and the empirical Fisher without labels, are ValueErrors naming the problem."""
    model = tiny_mlp("matched")
    x, _ = tiny_data()
    with pytest.raises(ValueError, match="unknown importance kind 'ewc'"):
        sample_grad_stats(model, x, FULL, "ewc")
    with pytest.raises(ValueError, match="unknown fisher_mode 'batch'"):
        sample_grad_stats(model, x, FULL, "fisher", fisher_mode="batch")
    with pytest.raises(ValueError, match="needs the labels"):
        sample_grad_stats(model, x, FULL, "fisher", fisher_mode="true")
    assert model.training  # restored even when it raised


class _AuxNet(nn.Module):
    """A layer that runs in the forward pass but does not feed the logits (e.g. an auxiliary read-out)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.aux = nn.Linear(6, 2)

    def forward(self, x, y=None):
        self.last_aux = self.aux(x)
        return self.fc(x)

    def slow_parameters(self):
        return dict(self.named_parameters())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["fisher", "mas"])
def test_layer_not_feeding_the_logits_gets_zero_importance(kind, dtype):
    """A parametrised layer whose output does not reach the active head's logits (importance.py: "a head-irrelevant
    module; its statistic is 0") gets exactly 0 importance, in the model's dtype, and the other layers are as
    torch.func computes them; for float32 and float64 models alike."""
    torch.manual_seed(0)
    model = _AuxNet().to(dtype)
    x, _ = tiny_data(dtype=dtype)
    got = sample_grad_stats(model, x, FULL, kind)
    for name in ("aux.weight", "aux.bias"):
        assert got[name].dtype == dtype
        assert torch.equal(got[name], torch.zeros_like(got[name]))
    ref = ref_fisher_exact(model, x, FULL) if kind == "fisher" else ref_mas(model, x, FULL)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-6)
    for name in ("fc.weight", "fc.bias"):
        torch.testing.assert_close(got[name], ref[name], **tol)


class _AuxConvNet(nn.Module):
    """A convolution that runs in the forward pass but does not feed the logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.aux = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 14 * 14, 3)

    def forward(self, x, y=None):
        self.last_aux = self.aux(x)
        return self.fc(torch.relu(self.conv(x)).flatten(1))

    def slow_parameters(self):
        return dict(self.named_parameters())


@pytest.mark.parametrize("kind", ["fisher", "mas"])
def test_convolution_not_feeding_the_logits_gets_zero_importance(kind):
    """The same for a convolution: exactly 0 for the one off the logits' path, torch.func's values for the rest."""
    torch.manual_seed(0)
    model = _AuxConvNet().double()
    x, _ = image_data()
    got = sample_grad_stats(model, x, FULL, kind)
    for name in ("aux.weight", "aux.bias"):
        assert got[name].dtype == torch.float64
        assert torch.equal(got[name], torch.zeros_like(got[name]))
    ref = ref_fisher_exact(model, x, FULL) if kind == "fisher" else ref_mas(model, x, FULL)
    for name in ("conv.weight", "conv.bias", "fc.weight", "fc.bias"):
        torch.testing.assert_close(got[name], ref[name], rtol=1e-9, atol=1e-12)

"""tinyconvmixer.nn: registration order, state dicts, parameter counts and PyTorch parity."""

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor, nn


def tiny_model(dim=8, depth=2, kernel_size=3, patch_size=2, seed=0):
    nn.init.manual_seed(seed)
    return nn.ConvMixer(dim, depth, kernel_size=kernel_size, patch_size=patch_size, n_classes=10)


@pytest.mark.parametrize("k,p,expected", [(9, 1, 706_570), (5, 2, 594_186)])
def test_parameter_counts(k, p, expected):
    model = nn.ConvMixer(256, 8, kernel_size=k, patch_size=p, n_classes=10)
    assert nn.count_parameters(model) == expected


def test_keys_follow_pytorch_sequential_indices():
    keys = list(tiny_model(depth=2).state_dict())
    assert keys[:7] == ["0.weight", "0.bias", "2.weight", "2.bias", "2.running_mean",
                        "2.running_var", "2.num_batches_tracked"]
    assert "3.0.fn.0.weight" in keys and "4.3.num_batches_tracked" in keys
    assert keys[-2:] == ["7.weight", "7.bias"]       # Linear at index depth + 5 (after pool, flatten)


def test_convmixer_docstring_gives_the_true_indices():
    for depth in (1, 2, 8):
        m = tiny_model(depth=depth)
        assert len(m) == depth + 6 and isinstance(m[depth + 5], nn.Linear)
        assert isinstance(m[depth + 3], nn.GlobalAvgPool2d) and isinstance(m[depth + 4], nn.Flatten)
    doc = " ".join(nn.convmixer.__doc__.split())
    assert "the Linear is index depth + 5" in doc and "depth + 4)" not in doc


def test_registration_order_and_reassignment():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Linear(2, 3)
            self.a = nn.Parameter(np.zeros(4, np.float32))
            self.register_buffer("stat", np.zeros(2, np.float32))
            self.scale = 2.0
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["a", "b.weight", "b.bias"]
    assert [n for n, _ in net.named_buffers()] == ["stat"]
    net.stat = np.ones(2, np.float32)                 # re-assigning a buffer keeps it a buffer
    assert net.state_dict()["stat"].tolist() == [1.0, 1.0]
    net.a = None                                      # None removes the parameter (as in PyTorch)
    assert [n for n, _ in net.named_parameters()] == ["b.weight", "b.bias"]
    net.a = 5.0                                       # now a plain attribute
    assert net.a == 5.0
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        net.missing


@pytest.mark.parametrize("value,kind", [(np.zeros((3, 2), np.float32), "ndarray"),
                                        (Tensor(np.zeros((3, 2), np.float32)), "Tensor"),
                                        (2.0, "float"), (nn.Linear(2, 3), "Linear")])
def test_assigning_a_non_parameter_to_a_parameter_is_a_type_error(value, kind):
    lin = nn.Linear(2, 3)
    weight = lin.weight
    with pytest.raises(TypeError, match=rf"cannot assign {kind} to parameter 'weight' "
                                        r"\(Parameter or None expected\)"):
        lin.weight = value
    assert lin.weight is weight and [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    lin.weight = nn.Parameter(np.ones((3, 2), np.float32))     # a Parameter replaces it
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"] and lin.weight.data.sum() == 6


def test_shared_module_is_listed_once_and_updated_once_per_step():
    from tinyconvmixer.optim import AdamW

    def run(model, params):
        opt = AdamW(params, lr=0.1, weight_decay=0.01)
        x = Tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
        for _ in range(2):
            model.zero_grad()
            F.cross_entropy(model(x), np.array([0, 1, 2, 0])).backward()
            opt.step()
        return opt

    nn.init.manual_seed(0)
    lin = nn.Linear(3, 3)
    net = nn.Sequential(lin, nn.GELU(), lin)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]
    assert list(net.parameters()) == [lin.weight, lin.bias]
    twice = nn.Sequential(nn.Sequential(lin), lin)
    assert [n for n, _ in twice.named_parameters()] == ["0.0.weight", "0.0.bias"]

    nn.init.manual_seed(0)
    ref = nn.Linear(3, 3)                              # the same weights, passed explicitly
    ref_net = nn.Sequential(ref, nn.GELU(), ref)
    opt = run(net, net.parameters())
    ref_opt = run(ref_net, [ref.weight, ref.bias])
    assert len(opt.state) == 2 and all(s["step"] == 2 for s in opt.state.values())
    np.testing.assert_array_equal(lin.weight.data, ref.weight.data)
    np.testing.assert_array_equal(lin.bias.data, ref.bias.data)
    assert ref_opt.state[0]["step"] == 2


def test_shared_buffers_are_listed_once():
    bn = nn.BatchNorm2d(2)
    net = nn.Sequential(bn, bn)
    assert [n for n, _ in net.named_buffers()] == ["0.running_mean", "0.running_var", "0.num_batches_tracked"]
    assert len(list(net.buffers())) == 3


def test_train_eval_recursive_and_seeded_init():
    m = tiny_model()
    assert all(x.training for x in m.modules())
    m.eval()
    assert not any(x.training for x in m.modules())
    a, b = tiny_model(seed=3), tiny_model(seed=3)
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert not np.array_equal(tiny_model(seed=4)[0].weight.data, a[0].weight.data)


def test_default_init_bounds():
    nn.init.manual_seed(0)
    conv = nn.Conv2d(16, 16, 5, groups=16)            # fan_in = 1 * 5 * 5
    assert conv.weight.dtype == np.float32
    bound = 1 / np.sqrt(25)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.weight.data).max() > 0.9 * bound
    assert np.abs(conv.bias.data).max() <= bound
    lin = nn.Linear(64, 10)
    assert np.abs(lin.weight.data).max() <= 1 / 8


def test_state_dict_round_trip_and_copy_semantics():
    a, b = tiny_model(seed=1), tiny_model(seed=2)
    a.train()
    a(Tensor(np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)))
    sd = {k: v.copy() for k, v in a.state_dict().items()}
    b.load_state_dict(sd)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])
        assert v is not sd[k]                        # copied into b's own arrays
    assert int(b.state_dict()["2.num_batches_tracked"]) == 1
    b.double()
    b.load_state_dict(sd)                            # cast onto the module's dtype
    assert b[0].weight.dtype == np.float64 and b.state_dict()["2.num_batches_tracked"].dtype == np.int64


def test_load_state_dict_accepts_tensors():
    a, b = tiny_model(seed=1), tiny_model(seed=2)
    sd = {k: Tensor(v.copy()) for k, v in a.state_dict().items()}       # Tensors, not arrays
    sd["0.weight"] = a[0].weight                                          # even a Parameter
    b.load_state_dict(sd)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, a.state_dict()[k], err_msg=k)
    assert b[0].weight is not a[0].weight and b[0].weight.data is not a[0].weight.data


def test_load_state_dict_strict_errors_list_every_problem():
    model = tiny_model()
    sd = dict(model.state_dict())
    del sd["0.bias"]
    sd["extra.weight"] = np.zeros(3)
    sd["7.weight"] = np.zeros((5, 8))
    with pytest.raises(nn.StateDictError) as info:
        model.load_state_dict(sd)
    msg = str(info.value)
    assert "missing key(s): 0.bias" in msg and "unexpected key(s): extra.weight" in msg
    assert "7.weight: checkpoint (5, 8) vs model (10, 8)" in msg
    # strict=False ignores missing/unexpected keys but never a wrong shape
    sd["7.weight"] = np.zeros((10, 8))
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["extra.weight"]
    assert np.all(model[7].weight.data == 0)


def test_sequential_indexing_and_repr():
    m = tiny_model(depth=2)
    assert len(m) == 8 and isinstance(m[-1], nn.Linear) and isinstance(m[3][0], nn.Residual)
    with pytest.raises(IndexError, match="out of range"):
        m[8]
    text = repr(m)
    assert text.startswith("ConvMixer(") and "(fn): Sequential(" in text and "groups=8" in text


def test_zero_grad_and_backward_reaches_every_parameter():
    m = tiny_model()
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32))
    F.cross_entropy(m(x), np.array([0, 1, 2, 3])).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_device_cpu_and_gpu(device):
    m = tiny_model().to(device)
    assert all(p.device == device for p in m.parameters())
    x = Tensor(np.zeros((2, 3, 8, 8), np.float32)).to(device)
    assert m(x).shape == (2, 10)


# ----- PyTorch parity ------------------------------------------------------------------
def torch_convmixer(torch, dim, depth, kernel_size, patch_size, n_classes=10):
    """The paper's reference implementation, verbatim."""
    tnn = torch.nn

    class Residual(tnn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x) + x

    return tnn.Sequential(
        tnn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size), tnn.GELU(), tnn.BatchNorm2d(dim),
        *[tnn.Sequential(
            Residual(tnn.Sequential(tnn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"),
                                    tnn.GELU(), tnn.BatchNorm2d(dim))),
            tnn.Conv2d(dim, dim, kernel_size=1), tnn.GELU(), tnn.BatchNorm2d(dim)) for _ in range(depth)],
        tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten(), tnn.Linear(dim, n_classes))


@pytest.mark.parametrize("training", [True, False])
def test_convmixer_matches_pytorch(training, device):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch_convmixer(torch, 8, 2, 3, 2).double()
    ours = tiny_model(8, 2, 3, 2).double().to(device)
    with torch.no_grad():                     # non-trivial BN state and affine parameters
        for mod in ref.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    tsd = ref.state_dict()
    assert list(tsd) == list(ours.state_dict())
    assert [n for n, _ in ref.named_parameters()] == [n for n, _ in ours.named_parameters()]
    ours.load_state_dict(tsd)
    ref.train(training)
    ours.train(training)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 12, 12))
    y = np.array([1, 0, 3, 9])
    logits_ref = ref(torch.tensor(x))
    loss_ref = torch.nn.functional.cross_entropy(logits_ref, torch.tensor(y))
    loss_ref.backward()
    logits = ours(Tensor(x).to(device))
    loss = F.cross_entropy(logits, y)
    loss.backward()

    np.testing.assert_allclose(logits.numpy(), logits_ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    for (name, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(Tensor(p.grad).numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    for key, value in ref.state_dict().items():      # running stats after the forward
        np.testing.assert_allclose(Tensor(ours.state_dict()[key]).numpy(), value.numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=key)

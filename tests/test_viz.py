"""viz: the drawn tape shows each tensor once, says which inputs need gradients, and never reads values."""

import numpy as np

from tinyconvmixer import Tensor, nn, viz


def _shared_graph(xp=np):
    a = Tensor(xp.asarray(3.0), requires_grad=True)
    b = Tensor(xp.asarray(-2.0), requires_grad=True)
    c = a * b
    d = c + a                        # a is used twice
    return a, b, c, d, d * d         # and d twice, by the same op


def test_shared_nodes_appear_once_with_one_edge_per_use():
    a, b, c, d, L = _shared_graph()
    nodes = viz.trace(L, names={"a": a, "d": d})
    assert [(n.kind, n.op, n.name) for n in nodes] == [
        ("param", "", "a"), ("param", "", ""), ("op", "Mul", ""), ("op", "Add", "d"), ("op", "Mul", "")]
    assert [k for k, _ in nodes[3].inputs] == [2, 0]          # d = c + a
    assert [k for k, _ in nodes[4].inputs] == [3, 3]          # L = d * d: two edges from one node
    dot = viz.to_dot(L, names={"a": a})
    assert dot.count("n0 [") == 1 and dot.count("n0 -> ") == 2
    assert dot.count("n3 -> n4;") == 2
    assert dot.startswith("digraph tape {") and dot.rstrip().endswith("}")


def test_constants_and_gradient_free_edges_are_marked():
    x = Tensor(np.ones((2, 3)))                       # a constant
    w = Tensor(np.ones((3, 4)), requires_grad=True)
    y = (x @ w).sum()
    nodes = viz.trace(y)
    assert [n.kind for n in nodes] == ["const", "param", "op", "op"]
    assert nodes[2].inputs == [(0, False), (1, True)]
    dot = viz.to_dot(y, notes={w: "the weight"})
    assert "n0 -> n2 [style=dashed];" in dot and "n1 -> n2;" in dot
    assert "constant\\n(2, 3) float64" in dot and "leaf\\n(3, 4) float64\\nthe weight" in dot
    assert 'label="Sum\\n() float64"' in dot


def test_labels_escape_quotes_and_freed_graph_is_drawn_as_freed():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * 2.0).sum()
    assert 'say \\"hi\\"' in viz.to_dot(y, names={'say "hi"': x})
    y.backward()
    nodes = viz.trace(y)
    assert len(nodes) == 1 and nodes[0].freed and "Sum (freed)" in viz.to_dot(y)


class ShapeOnly:
    """An array stand-in with a shape and a dtype whose values cannot be read (as a device array
    must not be: any read would be a copy to the host)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    def __getattr__(self, name):
        raise AssertionError(f"viz read .{name} of an array")

    def __array__(self, *args, **kwargs):
        raise AssertionError("viz converted an array to NumPy")


def test_reads_only_shapes_and_dtypes(tmp_path):
    nn.init.manual_seed(0)
    block = nn.ConvMixer(4, 1, kernel_size=3, patch_size=2, n_classes=3)[3]
    x = Tensor(np.random.default_rng(0).standard_normal((2, 4, 4, 4)).astype(np.float32))
    y = block(x)
    expected = viz.to_dot(y, names=dict(block.named_parameters()))
    seen, stack = set(), [y]
    while stack:                                # swap every array of the graph for a shape-only stand-in
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if hasattr(t, "_meta"):                 # a Stub: what a node keeps (its data only if kept)
            t._data = t._data if t._data is None else ShapeOnly(t.shape, t.dtype)
        else:
            t.data = ShapeOnly(t.data.shape, t.data.dtype)
        if t._fn is not None:
            stack.extend(t._fn.inputs)
    assert viz.to_dot(y, names=dict(block.named_parameters())) == expected
    assert "DepthwiseConv2d" in expected and expected.count("Add") == 1
    fig = viz.draw(y, tmp_path / "block.png", names=dict(block.named_parameters()))
    assert (tmp_path / "block.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes[0].patches) == len(viz.trace(y))


def test_layout_puts_inputs_above_their_first_user():
    a, b, c, d, L = _shared_graph()
    where, routes = viz.layout(viz.trace(L))
    layer = {k: v[1] for k, v in where.items()}
    assert layer == {4: 0, 3: 1, 2: 2, 1: 3, 0: 3}         # a sits above c, its highest user


def test_device_graph(device, tmp_path):
    from tinyconvmixer.engine import backend
    xp = backend.xp_for(device)
    *_, L = _shared_graph(xp)
    assert viz.to_dot(L) == viz.to_dot(_shared_graph()[-1])
    viz.draw(L, tmp_path / "g.svg")
    assert (tmp_path / "g.svg").stat().st_size > 0


def test_deep_graph_needs_no_recursion():
    x = Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    assert len(viz.trace(y)) == 1 + 2 * 3000        # x, and per op a constant 1.0 and the product

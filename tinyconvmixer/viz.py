"""Draw the tape: the graph of Functions behind a tensor, as Graphviz DOT text or a picture.

    from tinyconvmixer import viz
    print(viz.to_dot(loss, names={"w": w}))        # DOT text: paste into any Graphviz viewer
    viz.draw(loss, "tape.png", names=dict(model.named_parameters()))   # matplotlib, no Graphviz needed

Each tensor of the graph is one box, however many ops use it: a tensor used twice
has two arrows leaving it (that is where backward adds two gradients up). An op's
box is labelled with the Function that made the tensor (`Mul`, `DepthwiseConv2d`)
and the tensor's shape and dtype. Leaves are coloured by whether they need a
gradient (blue: `requires_grad=True`; white: a constant), and an arrow is dashed
when no gradient flows along it. `names` maps a name to a tensor (any tensor of
the graph: a parameter, an input, an intermediate result) to label its box.

Only shapes, dtypes and the links between nodes are read, never the values, so
drawing the graph of a tensor on the GPU copies nothing from the device.
Draw the graph *before* calling backward(): backward frees the tape as it goes
(a freed node is drawn as "freed", with no inputs).
"""

from dataclasses import dataclass, field

# Box colours (DOT and matplotlib alike).
COLOURS = {"param": "#cfe2f3", "const": "#ffffff", "op": "#eeeeee", "root": "#fce5cd"}


@dataclass
class Node:
    """One tensor of the graph: a leaf, or the output of one op."""
    key: int                 # position in forward order (inputs come before their users)
    kind: str                # "param" (a leaf that requires grad), "const" (a leaf that does not), "op"
    op: str                  # the Function's class name for "op" nodes, else ""
    name: str                # from `names`, else ""
    shape: tuple
    dtype: str
    inputs: list = field(default_factory=list)     # (input node key, gradient flows along it?)
    freed: bool = False      # backward() already ran through this node


def forward_order(tensor):
    """The tensors of the graph behind `tensor`, each once, every input before its users.

    An iterative depth-first search (no recursion limit for deep graphs) that
    emits a tensor after all of its inputs; the tensor itself comes last.
    """
    order, done, stack = [], set(), [(tensor, False)]
    while stack:
        t, inputs_done = stack.pop()
        if id(t) in done:
            continue
        if inputs_done:
            done.add(id(t))
            order.append(t)
            continue
        stack.append((t, True))
        parents = t._fn.inputs if t._fn is not None and t._fn.inputs is not None else []
        stack.extend((p, False) for p in reversed(parents) if id(p) not in done)   # first input first
    return order


def trace(tensor, names=None):
    """The graph behind `tensor` as a list of Nodes in forward order (the tensor last).

    Every tensor appears once, keyed by identity, so a shared input is one node
    with several users. Only shapes and dtypes are read, no array values.
    """
    label = {id(t): n for n, t in (names or {}).items()}
    tensors = forward_order(tensor)
    key_of = {id(t): k for k, t in enumerate(tensors)}
    nodes = []
    for k, t in enumerate(tensors):
        fn = t._fn
        freed = fn is not None and fn.inputs is None
        parents = [] if fn is None or freed else list(zip(fn.inputs, fn.needs_grad))
        nodes.append(Node(key=k, kind="op" if fn is not None else ("param" if t.requires_grad else "const"),
                          op=type(fn).__name__ if fn is not None else "", name=label.get(id(t), ""),
                          shape=tuple(t.shape), dtype=str(t.dtype),
                          inputs=[(key_of[id(p)], bool(need)) for p, need in parents], freed=freed))
    return nodes


def node_label(node, notes=None):
    """The text of a node's box: what it is, then its shape and dtype (and a note)."""
    if node.kind == "op":
        title = f"{node.name} = {node.op}" if node.name else node.op
        if node.freed:
            title += " (freed)"
    else:
        title = node.name or ("leaf" if node.kind == "param" else "constant")
    lines = [title, f"{node.shape} {node.dtype}"]
    if notes and node.key in notes:
        lines.append(notes[node.key])
    return "\n".join(lines)


def _notes_by_key(tensor, notes):
    """notes maps tensors to text; turn it into node key -> text (tensors not in the graph are ignored)."""
    if not notes:
        return {}
    key_of = {id(t): k for k, t in enumerate(forward_order(tensor))}
    by_id = {id(t): text for t, text in _items(notes)}
    return {key_of[i]: text for i, text in by_id.items() if i in key_of}


def _items(notes):
    """(tensor, text) pairs from a dict keyed by tensors or a list of pairs."""
    return notes.items() if isinstance(notes, dict) else notes


def _dot_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(tensor, names=None, notes=None):
    """Graphviz DOT text of the graph behind `tensor` (inputs on top, the tensor at the bottom).

    names: {name: tensor} labels boxes; notes: {tensor: text} adds a line to a box.
    Render it with `dot -Tpng` or any online Graphviz viewer; `draw` needs no Graphviz.
    """
    nodes = trace(tensor, names)
    notes = _notes_by_key(tensor, notes)
    lines = ["digraph tape {",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    for n in nodes:
        colour = COLOURS["root"] if n is nodes[-1] else COLOURS[n.kind]
        extra = ', style="rounded,filled,dashed"' if n.kind == "const" else ""
        lines.append(f"  n{n.key} [label={_dot_string(node_label(n, notes))}, fillcolor=\"{colour}\"{extra}];")
    for n in nodes:
        for k, grad_flows in n.inputs:
            lines.append(f"  n{k} -> n{n.key}" + ("" if grad_flows else " [style=dashed]") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def layout(nodes, sweeps=4):
    """Layer and position of every node: {key: (x, layer)}, the output in layer 0 at the bottom.

    A node's layer is one more than that of its highest user (the longest path
    to the output), so every input sits just above the first op that needs it.
    Within a layer, nodes are ordered by the mean position of their neighbours
    (a few sweeps of the barycentre heuristic), which removes most crossings.
    """
    users = {n.key: [] for n in nodes}
    for n in nodes:
        for k, _ in n.inputs:
            users[k].append(n.key)
    layer = {}
    for n in reversed(nodes):                 # users come later in forward order
        layer[n.key] = 1 + max((layer[u] for u in users[n.key]), default=-1)
    rows = {}
    for n in nodes:
        rows.setdefault(layer[n.key], []).append(n.key)
    inputs = {n.key: [k for k, _ in n.inputs] for n in nodes}
    pos = {k: float(i) for row in rows.values() for i, k in enumerate(row)}

    def reorder(row_ids, neighbours):
        def centre(k):
            ks = neighbours[k]
            return sum(pos[j] for j in ks) / len(ks) if ks else pos[k]
        row = sorted(rows[row_ids], key=lambda k: (centre(k), pos[k]))
        rows[row_ids] = row
        for i, k in enumerate(row):
            pos[k] = i - (len(row) - 1) / 2

    for row_ids in rows:
        reorder(row_ids, {k: [] for k in rows[row_ids]})
    top = max(rows)
    for _ in range(sweeps):
        for r in range(1, top + 1):               # from the output upwards: follow the users
            reorder(r, users)
        for r in range(top - 1, -1, -1):          # and back down: follow the inputs
            reorder(r, inputs)
    return {k: (pos[k], layer[k]) for k in pos}


def draw(tensor, path=None, names=None, notes=None, ax=None, title=None, dpi=110):
    """Draw the graph behind `tensor` with matplotlib (no Graphviz program needed).

    Returns the matplotlib Figure (shown inline by Jupyter); writes it to `path`
    (PNG, SVG, ... by extension) if given. Pass `ax` to draw into existing axes.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    nodes = trace(tensor, names)
    notes = _notes_by_key(tensor, notes)
    where = layout(nodes)
    labels = {n.key: node_label(n, notes) for n in nodes}
    char_w, line_h = 0.075, 0.16                       # box size per character / per line (x units)
    width = max(max(len(s) for s in text.split("\n")) for text in labels.values()) * char_w + 0.3
    height = max(text.count("\n") + 1 for text in labels.values()) * line_h + 0.15
    gap_x, gap_y = width + 0.35, height + 0.55
    n_layers = 1 + max(layer for _, layer in where.values())
    n_wide = max(sum(1 for _, layer in where.values() if layer == r) for r in range(n_layers))
    if ax is None:
        fig = Figure(figsize=(max(3.0, n_wide * gap_x * 1.05 + 0.4), max(2.0, n_layers * gap_y * 1.05 + 0.3)),
                     layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    xy = {k: (x * gap_x, layer * gap_y) for k, (x, layer) in where.items()}
    for n in nodes:
        x, y = xy[n.key]
        colour = COLOURS["root"] if n is nodes[-1] else COLOURS[n.kind]
        ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                    boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=colour,
                                    edgecolor="0.35", lw=0.9, ls="--" if n.kind == "const" else "-"))
        ax.text(x, y, labels[n.key], ha="center", va="center", fontsize=8, family="DejaVu Sans")
    for n in nodes:
        x1, y1 = xy[n.key]
        repeats = [k for k, _ in n.inputs]
        for i, (k, grad_flows) in enumerate(n.inputs):
            x0, y0 = xy[k]
            span = round((y0 - y1) / gap_y)
            rad = 0.25 if span > 1 else 0.0
            if repeats.count(k) > 1:            # x * x: one arrow per use, bent apart
                rad = 0.3 * (1 if repeats[:i].count(k) % 2 else -1)
            ax.annotate("", xy=(x1, y1 + height / 2), xytext=(x0, y0 - height / 2),
                        arrowprops=dict(arrowstyle="-|>", color="0.3", lw=0.9, ls="-" if grad_flows else "--",
                                        shrinkA=1, shrinkB=1, connectionstyle=f"arc3,rad={rad}"))
    xs = [p[0] for p in xy.values()]
    ys = [p[1] for p in xy.values()]
    ax.set_xlim(min(xs) - width / 2 - 0.2, max(xs) + width / 2 + 0.2)
    ax.set_ylim(min(ys) - height / 2 - 0.2, max(ys) + height / 2 + 0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    if path is not None:
        fig.savefig(path, dpi=dpi, metadata={"Software": None} if str(path).endswith(".png") else None)
    return fig

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

from .engine import dispatch

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
    label.update({id(t._stub): n for n, t in (names or {}).items() if getattr(t, "_stub", None) is not None})  # as nodes keep it
    tensors = forward_order(tensor)
    key_of = {id(t): k for k, t in enumerate(tensors)}
    nodes = []
    for k, t in enumerate(tensors):
        fn = t._fn
        freed = fn is not None and fn.inputs is None
        parents = [] if fn is None or freed else list(zip(fn.inputs, fn.needs_grad))
        nodes.append(Node(key=k, kind="op" if fn is not None else ("param" if t.requires_grad else "const"),
                          op=dispatch.reference_of(type(fn)).__name__ if fn is not None else "", name=label.get(id(t), ""),
                          shape=tuple(t.shape), dtype=str(t.dtype),
                          inputs=[(key_of[id(p)], bool(need)) for p, need in parents], freed=freed))
    return nodes


def node_label(node, notes=None, shapes=True):
    """The text of a node's box: what it is, then its shape and dtype (unless shapes=False), and a note."""
    if node.kind == "op":
        title = f"{node.name} = {node.op}" if node.name else node.op
        if node.freed:
            title += " (freed)"
    else:
        title = node.name or ("leaf" if node.kind == "param" else "constant")
    lines = [title] + ([f"{node.shape} {node.dtype}"] if shapes else [])
    if notes and node.key in notes:
        lines.append(notes[node.key])
    return "\n".join(lines)


def _notes_by_key(tensor, notes):
    """notes maps tensors to text; turn it into node key -> text (tensors not in the graph are ignored)."""
    if not notes:
        return {}
    key_of = {id(t): k for k, t in enumerate(forward_order(tensor))}
    return {key_of[id(t)]: text for t, text in notes.items() if id(t) in key_of}


def _dot_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(tensor, names=None, notes=None, shapes=True):
    """Graphviz DOT text of the graph behind `tensor` (inputs on top, the tensor at the bottom).

    names: {name: tensor} labels boxes; notes: {tensor: text} adds a line to a box;
    shapes=False leaves out the shapes and dtypes.
    Render it with `dot -Tpng` or any online Graphviz viewer; `draw` needs no Graphviz.
    """
    nodes = trace(tensor, names)
    notes = _notes_by_key(tensor, notes)
    lines = ["digraph tape {",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    for n in nodes:
        colour = COLOURS["root"] if n is nodes[-1] else COLOURS[n.kind]
        extra = ', style="rounded,filled,dashed"' if n.kind == "const" else ""
        lines.append(f"  n{n.key} [label={_dot_string(node_label(n, notes, shapes))}, fillcolor=\"{colour}\"{extra}];")
    for n in nodes:
        for k, grad_flows in n.inputs:
            lines.append(f"  n{k} -> n{n.key}" + ("" if grad_flows else " [style=dashed]") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def layout(nodes, sweeps=6):
    """Where to put every node: ({key: (x, layer)}, routes), the output in layer 0 at the bottom.

    A node's layer is one more than that of its highest user (the longest path
    to the output), so every input sits just above the first op that needs it.
    An arrow that skips layers (a residual connection, an input used again much
    later) passes through a waypoint in each layer it crosses, which takes a slot
    in that layer like a node, so it never runs through a box; `routes[(src, dst,
    i)]` lists those waypoints (x, layer), top to bottom, for the i-th input of dst.
    Within a layer, nodes and waypoints are ordered by the mean position of their
    neighbours (a few sweeps of the barycentre heuristic), which removes most crossings.
    """
    users = {n.key: [] for n in nodes}
    for n in nodes:
        for k, _ in n.inputs:
            users[k].append(n.key)
    layer = {}
    for n in reversed(nodes):                 # users come later in forward order
        layer[n.key] = 1 + max((layer[u] for u in users[n.key]), default=-1)
    up = {n.key: [] for n in nodes}           # neighbours one layer up (inputs or waypoints)
    down = {n.key: [] for n in nodes}         # and one layer down
    route_ids = {}
    for n in nodes:
        for i, (k, _) in enumerate(n.inputs):
            chain = [k] + [("via", k, n.key, i, r) for r in range(layer[k] - 1, layer[n.key], -1)] + [n.key]
            for a, b in zip(chain, chain[1:]):
                up.setdefault(b, []).append(a)
                down.setdefault(a, []).append(b)
                layer.setdefault(b, layer[a] - 1)
            route_ids[(k, n.key, i)] = chain[1:-1]
    rows = {}
    for key in up:                            # forward order of the nodes, then their waypoints
        rows.setdefault(layer[key], []).append(key)
    pos = {}

    def reorder(r, neighbours):
        def centre(key):
            ks = neighbours[key]
            return sum(pos[j] for j in ks) / len(ks) if ks else pos[key]
        rows[r] = sorted(rows[r], key=lambda key: (centre(key), pos[key]))
        for i, key in enumerate(rows[r]):
            pos[key] = i - (len(rows[r]) - 1) / 2

    for r, row in rows.items():
        for i, key in enumerate(row):
            pos[key] = i - (len(row) - 1) / 2
    top = max(rows)
    for _ in range(sweeps):
        for r in range(1, top + 1):               # from the output upwards: follow the users
            reorder(r, down)
        for r in range(top - 1, -1, -1):          # and back down: follow the inputs
            reorder(r, up)
    where = {n.key: (pos[n.key], layer[n.key]) for n in nodes}
    routes = {edge: [(pos[v], layer[v]) for v in via] for edge, via in route_ids.items()}
    return where, routes


def draw(tensor, path=None, names=None, notes=None, shapes=True, ax=None, title=None, dpi=110):
    """Draw the graph behind `tensor` with matplotlib (no Graphviz program needed).

    Returns the matplotlib Figure (shown inline by Jupyter); writes it to `path`
    (PNG, SVG, ... by extension) if given. names, notes and shapes as for `to_dot`;
    pass `ax` to draw into existing axes.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    nodes = trace(tensor, names)
    notes = _notes_by_key(tensor, notes)
    where, routes = layout(nodes)
    labels = {n.key: node_label(n, notes, shapes) for n in nodes}
    char_w, line_h = 0.075, 0.16                       # box size per character / per line (x units)
    width = max(max(len(s) for s in text.split("\n")) for text in labels.values()) * char_w + 0.3
    height = max(text.count("\n") + 1 for text in labels.values()) * line_h + 0.15
    gap_x, gap_y = width + 0.35, height + 0.55
    slots = [x for x, _ in where.values()] + [x for via in routes.values() for x, _ in via]
    layers = [layer for _, layer in where.values()]
    n_wide, n_layers = max(slots) - min(slots) + 1, max(layers) + 1
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
        repeats = [k for k, _ in n.inputs]
        for i, (k, grad_flows) in enumerate(n.inputs):
            style = "-" if grad_flows else "--"
            points = [(xy[k][0], xy[k][1] - height / 2)]
            for x, layer in routes[(k, n.key, i)]:    # waypoints: through the layers' gaps
                points += [(x * gap_x, layer * gap_y + height / 2), (x * gap_x, layer * gap_y - height / 2)]
            points.append((xy[n.key][0], xy[n.key][1] + height / 2))
            if len(points) > 2:
                ax.plot([p[0] for p in points[:-1]], [p[1] for p in points[:-1]], color="0.3", lw=0.9, ls=style)
            rad = 0.3 * (1 if repeats[:i].count(k) % 2 else -1) if repeats.count(k) > 1 else 0.0   # x * x
            ax.annotate("", xy=points[-1], xytext=points[-2],
                        arrowprops=dict(arrowstyle="-|>", color="0.3", lw=0.9, ls=style,
                                        shrinkA=0 if len(points) > 2 else 1, shrinkB=1,
                                        connectionstyle=f"arc3,rad={rad}"))
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

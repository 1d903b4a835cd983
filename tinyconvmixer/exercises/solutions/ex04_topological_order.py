"""Exercise 4, a reference solution: a topological order by depth-first search, with a stack."""


def topological_order(root):
    """Every tensor root depends on (through inputs that need gradients), root first, each once,
    each before the tensors it was computed from."""
    post_order, visited = [], set()
    stack = [(root, False)]                # (tensor, are its inputs done?)
    while stack:
        t, inputs_done = stack.pop()
        if inputs_done:
            post_order.append(t)           # after everything it was computed from
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))            # back on top once its inputs are done
        if t._fn is not None:
            for parent, need in zip(t._fn.inputs, t._fn.needs_grad):
                if need and id(parent) not in visited:
                    stack.append((parent, False))
    return post_order[::-1]                # reversed: before everything it was computed from

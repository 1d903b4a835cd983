"""Exercise 4, a reference solution: a topological order by depth-first search."""


def topological_order(root):
    """Every tensor root depends on (through inputs that need gradients), root first, each once,
    each before the tensors it was computed from."""
    post_order, visited = [], set()

    def visit(t):
        if id(t) in visited:
            return
        visited.add(id(t))
        if t._fn is not None:
            for parent, need in zip(t._fn.inputs, t._fn.needs_grad):
                if need:
                    visit(parent)
        post_order.append(t)               # after everything it was computed from

    visit(root)
    return post_order[::-1]                # reversed: before everything it was computed from

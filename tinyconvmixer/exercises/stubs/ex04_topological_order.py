"""Exercise 4: the order in which backward visits the graph (walkthrough Step 3a).

loss.backward() walks the graph from the loss back to the leaves, and each
node hands its gradient on to its inputs. A tensor used by several ops may
pass its gradient on only once ALL of them have added their part: if x feeds
both y = f(x) and z = g(y, x), then z must be processed before y, and y
before x. Write the order: every tensor that `root` depends on, root first,
each tensor exactly once, and each one before every tensor it was computed
from. (Graph people call this a topological order of the reversed graph.)

What you can read on a tensor t:
  t._fn is None                 t is a leaf (an input or a weight): nothing comes before it
  t._fn.inputs                  the tensors its op was applied to, in order
  t._fn.needs_grad              one bool per input: follow only inputs where it is True

Derive (or recall) why a depth-first search works. Visit a tensor's inputs
before you list the tensor itself: each tensor then comes AFTER everything
it was computed from ("post-order"). Reversed, that list puts every tensor
before its inputs. Why does breadth-first order (a queue from the root) not
work? Try it on z = x + g(g(g(x))): x is one step from z and four steps too.

The check tests your order directly on graphs built to catch each mistake (a
residual block, random graphs with shared tensors and constants, a chain of
5,000 ops, a "ladder" where every tensor is used twice), then runs gradchecks
of graphs where a tensor is reused: the tiny ConvMixer with its residual
connection.

Check: python -m tinyconvmixer.exercises check topological_order

Hints:
  1. Keep a set of visited tensors by id(t): tensors are not hashable by value.
  2. A recursive helper visit(t) is the shortest to write, but a chain of
     5,000 ops needs 5,000 nested calls and Python stops at about 1,000. Use a
     loop and a stack (a list) of (tensor, inputs_done) pairs: pop one; if its
     inputs are done, append it to the post-order; else push it back as done,
     then push its unvisited inputs.
  3. Build the post-order list, then return it reversed: order[::-1].
"""


def topological_order(root):
    """Every tensor root depends on (through inputs that need gradients), root first, each once,
    each before the tensors it was computed from."""
    raise NotImplementedError("topological_order: not written yet (exercise 4; its docstring says how)")

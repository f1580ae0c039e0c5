"""The backward pass: reverse-mode automatic differentiation over the recorded graph.

    dJ/dx = Σ over the ops y = f(..., x, ...) that used x of  dJ/dy · ∂y/∂x

:func:`backward` visits the tensors in reverse topological order (each after everything that
used it), so dJ/dy is complete when y's op runs its ``backward``; the gradients meeting at a
tensor are summed, a broadcast input gets its gradient summed back to its shape
(:func:`unbroadcast`), and leaves accumulate theirs in ``.grad``.
"""
from __future__ import annotations

from . import state


def backward(root, grad, retain_graph: bool = False) -> None:
    """Fill ``.grad`` of every leaf under ``root`` that requires it, given ``grad`` = dJ/droot (an array).

    Each node's saved arrays are freed once it has run unless ``retain_graph``.
    """
    order = topological_order(root)
    grads = {id(root): grad}
    handed_out = set()  # ids of arrays already stored as some leaf's .grad in this pass
    while order:  # reverse topological order; popping lets each finished tensor be freed at once
        tensor = order.pop()
        g = grads.pop(id(tensor), None)
        if g is None:
            continue
        fn = tensor._ctx
        if fn is None:  # a leaf: accumulate, like PyTorch
            _accumulate_leaf(tensor, g, g is grad, handed_out)
            continue
        fn.graph_retained = retain_graph  # backward may free what it saved early only when False
        input_grads = fn.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if state.hook is not None:
            state.hook("backward", fn, tensor, g, input_grads)
        _pass_to_inputs(fn, input_grads, grads)
        if not retain_graph:  # free the graph: this node has done its work
            fn.release()
            tensor._ctx, tensor._freed = None, True


def _accumulate_leaf(tensor, g, is_callers, handed_out: set) -> None:
    """leaf.grad += g (the first gradient becomes the leaf's own array)."""
    if state.hook is not None:
        state.hook("leaf", None, tensor, g, None)
    if tensor.grad is None:
        # a leaf owns its .grad: copy the caller's array, views (a read-only broadcast,
        # say) and arrays another leaf already got (Add hands the same g to both inputs)
        if is_callers or g.base is not None or id(g) in handed_out:
            g = g.copy(order="K")  # keep g's memory layout (NHWC conv gradients): no transposing copy
        handed_out.add(id(g))
        tensor.grad = type(tensor)(g)  # a leaf's gradient is a tensor of the leaf's own class
    else:
        tensor.grad = type(tensor)(tensor.grad.data + g)


def _pass_to_inputs(fn, input_grads, grads: dict) -> None:
    """Add each input's share dJ/dy · ∂y/∂x (summed back to the input's shape) to its gradient so far."""
    for parent, parent_grad in zip(fn.inputs, input_grads):
        if parent is None or parent_grad is None or not parent.requires_grad:
            continue
        parent_grad = unbroadcast(parent_grad, parent.data.shape)
        previous = grads.get(id(parent))
        grads[id(parent)] = parent_grad if previous is None else previous + parent_grad


def topological_order(root) -> list:
    """Tensors of the graph, each after everything it depends on (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._freed:
            raise RuntimeError(
                f"backward through a graph that was already back-propagated: the tensor of shape {tensor.shape} "
                "was computed by an op whose saved arrays the first backward() freed; call "
                "backward(retain_graph=True) the first time to back-propagate twice")
        if tensor._ctx is not None:
            for parent in tensor._ctx.inputs:
                if parent is not None and parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def unbroadcast(grad, shape):
    """Sum a gradient back to the shape of the input that was broadcast to make it."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)

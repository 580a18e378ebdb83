"""The backward pass: topological sort, then the chain rule node by node.

For a graph ``x -> f -> y -> g -> loss`` reverse mode computes the gradient of one
output with respect to every input in a single sweep: starting from
``dloss/dloss = 1`` it visits the nodes in reverse topological order, and each node
turns the gradient of its outputs into gradients of its inputs with its
``backward`` (one vector-Jacobian product). Gradients reaching a tensor along
several paths are summed: that is the multivariable chain rule.

The sort is iterative (an explicit stack), so graphs millions of nodes deep, such as
a long unrolled loop, never hit Python's recursion limit. Broadcasting is undone in
one place, here: a gradient is summed back to its input's shape and cast to its
input's dtype, so no op's backward has to.
"""

from __future__ import annotations

import gc

from .mode import state


def _topological_order(roots) -> list:
    """Nodes reachable from ``roots``, every node after all nodes that consume it.

    An iterative depth-first search: a node is appended once everything it depends on
    has been appended (post-order), and the reversed list is then a valid order in
    which to run backward. A node is marked visited when it is *expanded*, not when it
    is pushed, so a node reachable along two paths is still placed after both.
    """
    order, visited = [], set()
    stack = [(root, False) for root in reversed(roots) if root is not None]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for tensor in node.inputs or ():
            parent = getattr(tensor, "_node", None)
            if parent is not None and id(parent) not in visited:
                stack.append((parent, False))
    order.reverse()  # post-order reversed: consumers come before producers
    return order


def _accumulate(store: dict, key, tensor, grad) -> None:
    entry = store.get(key)
    if entry is None:
        store[key] = [tensor, grad]
    else:
        entry[1] = entry[1] + grad


def _fit_to_input(grad, tensor, node):
    """Sum a broadcast gradient back to ``tensor``'s shape and cast it to its dtype."""
    # Compare the arrays' own shape/dtype attributes: the Tensor properties cost a
    # call each, and this runs for every edge of the graph.
    if grad.data.shape != tensor.data.shape:
        try:
            grad = grad.sum_to(tensor.shape)
        except ValueError:
            raise RuntimeError(
                f"{type(node).__name__}.backward returned a gradient of shape {grad.shape} "
                f"for an input of shape {tensor.shape}") from None
    if grad.data.dtype != tensor.data.dtype:
        grad = grad.astype(tensor.dtype)
    return grad


def _run_hooks(tensor, grad):
    for hook in tensor._hooks:
        replaced = hook(grad)
        if replaced is not None:
            grad = replaced
    return grad


def _seed_gradient(tensor, gradient):
    """The gradient backward starts from: ones for a one-element output, else ``gradient``."""
    if gradient is None:
        if tensor.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a one-element output, got shape "
                f"{tensor.shape}; reduce it first (e.g. loss.sum()) or pass "
                "gradient=<tensor of the same shape>")
        return tensor._unit_gradient()
    gradient = tensor._as_gradient(gradient)
    if gradient.shape != tensor.shape:
        raise ValueError(f"backward: gradient shape {gradient.shape} does not match the "
                         f"output shape {tensor.shape}")
    return gradient


def run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None):
    """Propagate ``grad_outputs`` from ``outputs`` back through the graph.

    With ``inputs=None`` gradients accumulate into ``.grad`` of every leaf reached
    (``Tensor.backward``); otherwise the gradients of exactly ``inputs`` are returned
    and ``.grad`` is left alone (``tl.grad``).
    """
    if retain_graph is None:
        retain_graph = create_graph
    node_grads: dict = {}   # id(node) -> {output index: [tensor, grad]}
    leaf_grads: dict = {}   # id(leaf) -> [leaf, grad]
    wanted = None if inputs is None else {id(t): None for t in inputs}

    previous_mode = state.grad_enabled
    state.grad_enabled = create_graph
    # The sweep allocates many short-lived objects while the graph holds many
    # long-lived ones; CPython's cyclic collector would rescan the whole graph again
    # and again for garbage that reference counting frees anyway. Pause it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        roots = []
        for tensor, gradient in zip(outputs, grad_outputs):
            if not tensor._requires_grad:
                raise RuntimeError(
                    "element 0 of the outputs does not require grad and has no grad_fn: "
                    "nothing to differentiate (did you create it under no_grad, or forget "
                    "requires_grad=True on the inputs?)")
            seed = _seed_gradient(tensor, gradient)
            if tensor._node is None:
                _accumulate(leaf_grads, id(tensor), tensor, seed)
            else:
                slot = node_grads.setdefault(id(tensor._node), {})
                _accumulate(slot, tensor._out_index, tensor, seed)
                roots.append(tensor._node)

        for node in _topological_order(roots):
            if node._freed or node.inputs is None:
                raise RuntimeError(
                    f"Trying to backward through the graph of {type(node).__name__} a second "
                    "time, after its saved tensors were freed. Pass retain_graph=True to the "
                    "first backward() if you need to backward through it again.")
            slot = node_grads.pop(id(node), None)
            if not slot:  # no gradient flows into this node (a backward returned None)
                if not retain_graph:
                    node._free()
                continue
            grads = _output_gradients(node, slot, wanted)
            if state.anomaly_enabled:
                input_grads = _backward_checking_anomalies(node, grads)
            else:
                input_grads = node.backward(node, *grads)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if len(input_grads) != len(node.inputs):
                raise RuntimeError(
                    f"{type(node).__name__}.backward returned {len(input_grads)} gradients "
                    f"for {len(node.inputs)} inputs")
            for tensor, needs, grad in zip(node.inputs, node.needs_input_grad, input_grads):
                if not needs or grad is None:
                    continue
                grad = _fit_to_input(grad, tensor, node)
                if tensor._node is not None:
                    slot = node_grads.setdefault(id(tensor._node), {})
                    _accumulate(slot, tensor._out_index, tensor, grad)
                else:
                    _accumulate(leaf_grads, id(tensor), tensor, grad)
            if not retain_graph:
                node._free()

        for leaf, grad in leaf_grads.values():
            if leaf._hooks:
                grad = _run_hooks(leaf, grad)
            if wanted is not None:
                if id(leaf) in wanted:
                    wanted[id(leaf)] = grad
            elif leaf.grad is None:
                # A fresh array: backward results can be views shared between inputs
                # (add passes one gradient to both sides), and .grad may be changed in
                # place later (clip_grad_norm_), which must not touch a neighbour's.
                leaf.grad = grad if create_graph else grad._private_copy()
            else:
                leaf.grad = leaf.grad + grad if create_graph else (leaf.grad + grad).detach()
    finally:
        state.grad_enabled = previous_mode
        if collecting:
            gc.enable()
    return wanted


def _output_gradients(node, slot: dict, wanted) -> list:
    """The gradient of each output of ``node``; hooks and retain_grad applied."""
    grads = []
    for index, out_ref in enumerate(node.outputs):
        entry = slot.get(index)
        out = out_ref()
        if entry is None:  # an unused output of a multi-output op gets zeros
            grads.append(node._zero_output_gradient(index))
            continue
        grad = entry[1]
        if out is not None:
            if out._hooks:
                grad = _run_hooks(out, grad)
            if wanted is not None and id(out) in wanted:
                wanted[id(out)] = grad
            if out._retains_grad and wanted is None:
                out.grad = grad if out.grad is None else out.grad + grad
        grads.append(grad)
    return grads


def _backward_checking_anomalies(node, grads):
    """``node.backward`` under ``detect_anomaly``: ops inside it report as part of it."""
    previous, state.backward_node = state.backward_node, node
    try:
        input_grads = node.backward(node, *grads)
    finally:
        state.backward_node = previous
    _check_backward_anomaly(node, input_grads if isinstance(input_grads, tuple)
                            else (input_grads,))
    return input_grads


def _check_backward_anomaly(node, grads) -> None:
    for position, grad in enumerate(grads):
        if grad is not None and not grad.backend.all_finite(grad.data):
            where = f" (created at {node.source})" if node.source else ""
            raise RuntimeError(
                f"detect_anomaly: the backward of {type(node).__name__}{where} returned NaN or "
                f"inf in the gradient of input {position}")


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False) -> None:
    """``tl.autograd.backward``: accumulate gradients of ``tensors`` into leaves' ``.grad``."""
    tensors = tuple(tensors)
    if grad_tensors is None:
        grad_tensors = (None,) * len(tensors)
    run_backward(tensors, tuple(grad_tensors), retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False) -> tuple:
    """Gradients of ``outputs`` with respect to ``inputs``, returned, not accumulated."""
    single_output = not isinstance(outputs, (tuple, list))
    outputs = (outputs,) if single_output else tuple(outputs)
    inputs = (inputs,) if not isinstance(inputs, (tuple, list)) else tuple(inputs)
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    elif not isinstance(grad_outputs, (tuple, list)):
        grad_outputs = (grad_outputs,)
    for tensor in inputs:
        if not getattr(tensor, "_requires_grad", False):
            raise RuntimeError("tl.grad: every input must be a tensor that requires grad")
    found = run_backward(outputs, tuple(grad_outputs), retain_graph, create_graph,
                         inputs=inputs)
    result = []
    for position, tensor in enumerate(inputs):
        value = found[id(tensor)]
        if value is None and not allow_unused:
            raise RuntimeError(
                f"tl.grad: input {position} (shape {tensor.shape}) was not used to compute "
                "the outputs; pass allow_unused=True to get None for it")
        if value is not None and not create_graph:
            value = value.detach()
        result.append(value)
    return tuple(result)

"""The backward pass: the chain rule node by node, in reverse creation order.

For a graph ``x -> f -> y -> g -> loss`` reverse mode computes the gradient of one
output with respect to every input in a single sweep: starting from
``dloss/dloss = 1`` it visits the nodes in reverse topological order, and each node
turns the gradient of its outputs into gradients of its inputs with its
``backward`` (one vector-Jacobian product). Gradients reaching a tensor along
several paths are summed: that is the multivariable chain rule.

The order needs no graph search: every node carries a sequence number from its
creation (``Function._seq``), and a node is always created after the nodes of its
inputs. Running the nodes from the largest number down therefore runs every node
after all of its consumers, once all of its output gradients are complete. The
engine keeps the nodes it has reached in a heap (a priority queue) keyed on that
number; the sweep is iterative, so graphs millions of nodes deep, such as a long
unrolled loop, never hit Python's recursion limit. Broadcasting is undone in one
place, here: a gradient is summed back to its input's shape and cast to its input's
dtype, so no op's backward has to.
"""

from __future__ import annotations

import gc
from heapq import heappop, heappush

from .mode import state


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


class _Sweep:
    """The book-keeping of one backward pass.

    ``pending`` maps the sequence number of every node reached so far to the gradients
    of its outputs received so far (``{output index: [output, gradient]}``); ``heap``
    holds the same nodes as ``(-number, node)``, so ``heappop`` returns the newest one. Leaves
    collect their gradients in ``leaves``: ``id(leaf) -> [leaf, gradient, owned]``,
    where ``owned`` says that nothing else references the gradient's array.
    """

    __slots__ = ("pending", "heap", "leaves")

    def __init__(self):
        self.pending: dict = {}
        self.heap: list = []
        self.leaves: dict = {}

    def reach(self, node) -> dict:
        """The gradient slot of ``node``, queueing the node the first time it is reached."""
        slot = self.pending.get(node._seq)
        if slot is None:
            slot = self.pending[node._seq] = {}
            heappush(self.heap, (-node._seq, node))
        return slot

    def add(self, tensor, grad) -> None:
        """Accumulate ``grad`` for ``tensor``, an output of a node (the chain rule's sum).

        The slot keeps ``tensor`` itself too: a node that saved its own output holds it
        only weakly, and this reference keeps it alive until the node's backward has run.
        """
        node = tensor._node
        slot = self.pending.get(node._seq)
        if slot is None:  # reach(node), inlined: this runs for every edge between nodes
            slot = self.pending[node._seq] = {}
            heappush(self.heap, (-node._seq, node))
        entry = slot.get(tensor._out_index)
        if entry is None:
            slot[tensor._out_index] = [tensor, grad]
        else:
            entry[1] = entry[1] + grad

    def add_leaf(self, leaf, grad, owned: bool) -> None:
        entry = self.leaves.get(id(leaf))
        if entry is None:
            self.leaves[id(leaf)] = [leaf, grad, owned]
        else:  # a sum is a new array, owned by nobody else
            entry[1] = entry[1] + grad
            entry[2] = True


def run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None):
    """Propagate ``grad_outputs`` from ``outputs`` back through the graph.

    With ``inputs=None`` gradients accumulate into ``.grad`` of every leaf reached
    (``Tensor.backward``); otherwise the gradients of exactly ``inputs`` are returned
    and ``.grad`` is left alone (``tl.grad``).
    """
    if retain_graph is None:
        retain_graph = create_graph
    sweep = _Sweep()
    wanted = None if inputs is None else {id(t): None for t in inputs}

    previous_mode = state.grad_enabled
    state.grad_enabled = create_graph
    # The sweep allocates many short-lived objects while the graph holds many
    # long-lived ones; CPython's cyclic collector would rescan the whole graph again
    # and again for garbage that reference counting frees anyway. Pause it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for tensor, gradient in zip(outputs, grad_outputs):
            if not tensor._requires_grad:
                raise RuntimeError(
                    "element 0 of the outputs does not require grad and has no grad_fn: "
                    "nothing to differentiate (did you create it under no_grad, or forget "
                    "requires_grad=True on the inputs?)")
            seed = _seed_gradient(tensor, gradient)
            if tensor._node is None:
                sweep.add_leaf(tensor, seed, False)
            else:
                sweep.add(tensor, seed)
        _sweep_nodes(sweep, wanted, create_graph, retain_graph)
        _deliver_leaf_gradients(sweep.leaves, wanted, create_graph)
    finally:
        state.grad_enabled = previous_mode
        if collecting:
            gc.enable()
    return wanted


def _sweep_nodes(sweep: _Sweep, wanted, create_graph: bool, retain_graph: bool) -> None:
    """Run every node reached, newest first, each once all its output gradients are in.

    This loop runs once per node of every training step, so the usual case (one
    output, no hooks, no ``tl.grad``, no anomaly detection) is handled inline, and the
    rest is delegated to helpers.
    """
    heap, pending = sweep.heap, sweep.pending
    simple = wanted is None and not state.anomaly_enabled
    while heap:
        node = heappop(heap)[1]
        slot = pending.pop(node._seq)
        if node.inputs is None:  # freed by an earlier backward
            raise RuntimeError(
                f"Trying to backward through the graph of {type(node).__name__} a second "
                "time, after its saved tensors were freed. Pass retain_graph=True to the "
                "first backward() if you need to backward through it again.")
        if not slot:  # no gradient flows into this node (a backward returned None): only
            _reach_inputs(node, sweep)  # keep visiting, so the whole graph is freed
        else:
            entry = slot.get(0) if simple and len(slot) == 1 else None
            if (entry is not None and len(node.outputs) == 1
                    and entry[0]._hooks is None and not entry[0]._retains_grad):
                input_grads = node.backward(node, entry[1])  # the usual case
            else:
                input_grads = _backward_in_full(node, slot, wanted)
            _pass_to_inputs(node, input_grads, sweep, create_graph)
        if not retain_graph:
            node._free()


def _backward_in_full(node, slot: dict, wanted):
    """``node.backward`` with everything the usual case skips: several outputs (an
    unused one gets zeros), hooks and ``retain_grad`` on the outputs, the gradients
    ``tl.grad`` asked for, and anomaly detection."""
    grads = _output_gradients(node, slot, wanted)
    if state.anomaly_enabled:
        return _backward_checking_anomalies(node, grads)
    return node.backward(node, *grads)


def _pass_to_inputs(node, input_grads, sweep: _Sweep, create_graph: bool) -> None:
    """Hand each input of ``node`` its gradient: a node's input joins that node's slot,
    a leaf's is collected in ``sweep.leaves`` (both summing what arrives twice)."""
    inputs = node.inputs
    if type(input_grads) is not tuple:
        input_grads = (input_grads,)
    if len(input_grads) != len(inputs):
        raise RuntimeError(
            f"{type(node).__name__}.backward returned {len(input_grads)} gradients "
            f"for {len(inputs)} inputs")
    owned = node.fresh_gradients and not create_graph
    leaves = sweep.leaves
    for tensor, needs, grad in zip(inputs, node.needs_input_grad, input_grads):
        if not needs:  # (an input without requires_grad has no node either)
            continue
        parent = tensor._node
        if grad is None:  # no gradient along this edge, but the parent is still visited
            if parent is not None:
                sweep.reach(parent)
            continue
        # the common case, a gradient of the input's own shape and dtype, is checked
        # here, without a call
        data, target = grad.data, tensor.data
        if data.shape != target.shape or data.dtype != target.dtype:
            grad = _fit_to_input(grad, tensor, node)
        if parent is not None:
            sweep.add(tensor, grad)
        elif id(tensor) not in leaves:  # a leaf's first gradient (add_leaf, inlined)
            leaves[id(tensor)] = [tensor, grad, owned]
        else:
            sweep.add_leaf(tensor, grad, owned)


def _deliver_leaf_gradients(leaves: dict, wanted, create_graph: bool) -> None:
    """Run the leaves' hooks, then store each gradient: in ``wanted`` for ``tl.grad``,
    else accumulated into the leaf's ``.grad``."""
    for leaf, grad, owned in leaves.values():
        if leaf._hooks:
            grad = _run_hooks(leaf, grad)
            owned = False  # a hook may keep a reference to what it returned
        if wanted is not None:
            if id(leaf) in wanted:
                wanted[id(leaf)] = grad
        elif leaf.grad is None:
            # A gradient that may be shared (backward results can be views shared
            # between inputs: add passes one gradient to both sides) is copied, since
            # .grad may be changed in place later (clip_grad_norm_), which must not
            # touch a neighbour's.
            leaf.grad = grad if create_graph or owned else grad._private_copy()
        else:
            leaf.grad = leaf.grad + grad if create_graph else (leaf.grad + grad).detach()


def _reach_inputs(node, sweep: _Sweep) -> None:
    """Queue the nodes of ``node``'s inputs without giving them a gradient."""
    for tensor, needs in zip(node.inputs, node.needs_input_grad):
        if needs and tensor._node is not None:
            sweep.reach(tensor._node)


def _output_gradients(node, slot: dict, wanted) -> list:
    """The gradient of each output of ``node``; hooks and retain_grad applied."""
    grads = []
    for index in range(len(node.outputs)):
        entry = slot.get(index)
        if entry is None:  # an unused output of a multi-output op gets zeros
            grads.append(node._zero_output_gradient(index))
            continue
        out, grad = entry
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

"""``tl.viz``: pictures for teaching, drawn with matplotlib alone.

* :func:`draw_graph` draws the computation graph behind a tensor (no Graphviz binary).
* :func:`plot_history` draws the loss and metric curves of a training run.
* :func:`heatmap` draws an annotated table, such as the lecture notes' grid-search
  accuracies over learning rate and regularisation strength.
* :func:`plot_activations` reproduces the notes' sigmoid, step, sine and ReLU figures.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (so
nothing pops up and it works on a headless machine with any backend) and saves it as a
PNG when given ``path=``. In a notebook, display the returned figure by leaving it as
the last expression of a cell.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

__all__ = ["draw_graph", "plot_history", "heatmap", "plot_activations"]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(fig, path, dpi: int = 100):
    if path is not None:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig


# ------------------------------------------------------------------ the graph
def _is_value(obj) -> bool:
    """A Tensor or a ``tl.teach.Scalar``: anything with the engine's ``_node`` slot."""
    return hasattr(obj, "_node") and hasattr(obj, "_requires_grad")


def _format_shape(shape) -> str:
    return "scalar" if tuple(shape) == () else "x".join(str(n) for n in shape)


def _short_dtype(dtype) -> str:
    return str(np.dtype(dtype)) if dtype is not None else ""


def _collect_graph(root):
    """Op nodes and leaf tensors reachable from ``root``, and the edges between them.

    Returns ``(items, edges)``: ``items`` maps a key to ``("op", node)`` or
    ``("leaf", tensor)``; ``edges`` is a list of ``(source key, target key)`` in the
    direction data flows (input -> op). Keys are ``id``s, so tensors whose ``==``
    builds a tensor are never compared.
    """
    items, edges = {}, []
    if root._node is None:
        items[id(root)] = ("leaf", root)
        return items, edges
    stack = [root._node]
    items[id(root._node)] = ("op", root._node)
    while stack:
        node = stack.pop()
        for value in node.inputs or ():
            if not _is_value(value):
                continue  # numbers, axes, index tuples: attributes of the op, not nodes
            parent = value._node
            key = id(parent) if parent is not None else id(value)
            if key not in items:
                items[key] = ("op", parent) if parent is not None else ("leaf", value)
                if parent is not None:
                    stack.append(parent)
            edges.append((key, id(node)))
    return items, edges


def _layers(items, edges) -> dict:
    """Row of each item: the depth is the longest path from a leaf to the output.

    Rows are first assigned by the longest path from the leaves (every edge then
    points down), then each node is pulled down to the row just above its first
    consumer, so a leaf or an early op used late (an input of an unrolled RNN step,
    a bias) does not send a long edge across the picture.
    """
    parents, children = defaultdict(list), defaultdict(list)
    for source, target in edges:
        parents[target].append(source)
        children[source].append(target)
    layer, order = {}, []
    # Longest path from the leaves, iteratively (graphs can be deep): Kahn's order.
    indegree = {key: len(parents[key]) for key in items}
    ready = [key for key, count in indegree.items() if count == 0]
    while ready:
        key = ready.pop()
        order.append(key)
        layer[key] = max((layer[p] + 1 for p in parents[key]), default=0)
        for child in children[key]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    for key in reversed(order):  # consumers first, so their rows are final
        if children[key]:
            layer[key] = min(layer[c] for c in children[key]) - 1
    top = min(layer.values())
    return {key: row - top for key, row in layer.items()}


def _order_rows(rows, edges, sweeps: int = 4):
    """Reduce edge crossings: sort each row by the mean position of its neighbours."""
    neighbours = defaultdict(list)
    for source, target in edges:
        neighbours[source].append(target)
        neighbours[target].append(source)
    depth = len(rows)
    for sweep in range(sweeps):
        order = range(1, depth) if sweep % 2 == 0 else range(depth - 2, -1, -1)
        position = {key: i for row in rows for i, key in enumerate(row)}
        for r in order:
            reference = rows[r - 1] if sweep % 2 == 0 else rows[r + 1]
            ref_keys = set(reference)

            def barycentre(key, _ref=ref_keys, _position=position):
                linked = [_position[n] for n in neighbours[key] if n in _ref]
                return sum(linked) / len(linked) if linked else _position[key]

            rows[r].sort(key=barycentre)
            position.update({key: i for i, key in enumerate(rows[r])})
    return rows


def _grad_summary(tensor) -> str:
    grad = getattr(tensor, "grad", None)
    if grad is None:
        return ""
    values = np.asarray(grad.numpy() if hasattr(grad, "numpy") else grad.data,
                        dtype=np.float64)
    if values.size == 1:
        return f"\ngrad {values.reshape(-1)[0]:.3g}"
    return f"\n|grad| {np.linalg.norm(values):.3g}"


def _output_shape_dtype(node):
    """Shape and dtype of a node's (first) output, or None if no longer known.

    The node holds its outputs weakly, but an output stays alive while a later node
    uses it (or, for the drawn tensor, while the caller holds it).
    """
    refs = getattr(node, "outputs", None) or ()
    out = refs[0]() if refs else None
    if out is not None:
        return out.shape, out.dtype
    meta = getattr(node, "_output_meta", None)
    return (meta[0][0], meta[0][1]) if meta else None


def _one_value(tensor) -> float:
    data = tensor.numpy() if hasattr(tensor, "numpy") else tensor.data
    return float(np.asarray(data, dtype=np.float64).reshape(-1)[0])


def _names_from(params) -> dict:
    """``id(tensor) -> name`` from a Module (named_parameters) or a dict of tensors."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        params = dict(params.named_parameters())
    return {id(tensor): name for name, tensor in params.items()}


def _route_long_edges(items, edges, layer):
    """Sugiyama-style routing: an edge spanning several rows passes through waypoints.

    Waypoints are shared per source (a weight used at every step of an unrolled RNN
    runs down one "bus" line and branches off to each use), so a row gains at most
    one waypoint per long-lived value. Returns ``(waypoints, routes)``: ``waypoints``
    maps ``(source, row)`` to its row; ``routes`` lists, per unique edge, the chain of
    keys it is drawn through.
    """
    targets = defaultdict(list)
    for source, target in dict.fromkeys(edges):
        targets[source].append(target)
    waypoints, routes = {}, []
    for source, children in targets.items():
        start = layer[source]
        far = max(layer[c] for c in children)
        bus = [("wp", source, row) for row in range(start + 1, far)]
        for key in bus:
            waypoints[key] = key[2]
        for child in children:
            routes.append([source] + bus[: layer[child] - start - 1] + [child])
    return waypoints, routes


def draw_graph(tensor, show_grads: bool = False, params=None, title: str | None = None,
               path=None, max_label: int = 18):
    """Draw the computation graph that produced ``tensor``.

    One box per operation (the Function's class name, with the output's shape and
    dtype) and one per leaf tensor: green boxes are parameters (leaves that require
    grad), grey ones inputs and constants; the output's op is orange. The graph is laid
    out top-down in rows: an op's row is its longest path from the leaves, each leaf
    sits just above its first use, the output is at the bottom, and an edge that skips
    rows is routed around the boxes in between.

    Args:
        tensor: the output (a Tensor, or a ``tl.teach.Scalar``).
        show_grads: add each leaf's ``.grad`` (its norm, or its value for one element)
            to its box; call ``backward`` first.
        params: a Module or a ``{name: tensor}`` dict used to name parameter leaves
            (``"0.weight"``); otherwise a leaf shows ``tensor.name`` if set, else
            ``"param"`` or ``"input"``.
        title: the figure's title.
        path: save the figure there as a PNG.
        max_label: truncate names to this many characters.

    Returns:
        The :class:`matplotlib.figure.Figure`. Each node's text artist has a ``gid``
        of the form ``"node:<kind>:..."`` (kind: op, output, param, input), so
        ``len([t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("node:")])``
        is the number of graph nodes.

    The graph is read through ``tensor.grad_fn`` and each node's ``.inputs``. Draw it
    before ``backward()``, or after ``backward(retain_graph=True)``: a backward pass
    that frees the graph drops the nodes' links to their inputs, and drawing a freed
    graph raises a RuntimeError saying so. Graphs of a few hundred nodes stay
    readable: the figure grows with the widest row and the depth.
    """
    if not _is_value(tensor):
        raise TypeError(f"draw_graph expects a Tensor, got {type(tensor).__name__}")
    if tensor._node is not None and tensor._node.inputs is None:
        raise RuntimeError(
            "draw_graph: this graph was freed by backward(); draw it before calling "
            "backward(), or call backward(retain_graph=True) first")
    names = _names_from(params)
    items, edges = _collect_graph(tensor)
    layer = _layers(items, edges)
    waypoints, routes = _route_long_edges(items, edges, layer)
    depth = max(layer.values()) + 1
    rows = [[] for _ in range(depth)]
    for key in items:  # dict order = discovery order from the output: a sane start
        rows[layer[key]].append(key)
    for key, row in waypoints.items():
        rows[row].append(key)
    route_edges = [(a, b) for route in routes for a, b in zip(route, route[1:])]
    rows = _order_rows(rows, route_edges)

    slot = {"node": 1.0, "wp": 0.3}  # horizontal room of a box and of a waypoint
    widths = [sum(slot["wp" if isinstance(k, tuple) else "node"] for k in row)
              for row in rows]
    total = max(widths)
    position = {}
    for r, row in enumerate(rows):
        x = (total - widths[r]) / 2  # centre each row
        for key in row:
            w = slot["wp" if isinstance(key, tuple) else "node"]
            position[key] = (x + w / 2, -r)
            x += w

    n_nodes = len(items)
    fontsize = 8 if n_nodes <= 40 else (7 if n_nodes <= 100 else 6)
    row_height = 0.95 if n_nodes <= 100 else 0.75
    header = 0.45 + (0.35 if title else 0.0)  # inches kept free for title and legend
    width, height = max(6.0, 1.55 * total + 0.4), max(2.5, row_height * depth + 0.4) + header
    fig = _figure(width, height)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - header / height))
    ax.set_axis_off()
    ax.set_xlim(-0.2, total + 0.2)
    ax.set_ylim(-depth + 0.45, 0.55)

    styles = {
        "op": dict(boxstyle="round,pad=0.3", facecolor="#dbe9f6", edgecolor="#3a6ea5"),
        "output": dict(boxstyle="round,pad=0.3", facecolor="#fde2c4", edgecolor="#c66a00"),
        "param": dict(boxstyle="square,pad=0.3", facecolor="#d7f0d2", edgecolor="#2e7d32"),
        "input": dict(boxstyle="square,pad=0.3", facecolor="#eeeeee", edgecolor="#777777"),
    }
    texts = {}
    for count, (key, (kind, obj)) in enumerate(items.items()):
        if kind == "op":
            label = type(obj).__name__
            meta = _output_shape_dtype(obj)
            if meta is not None:
                label += f"\n{_format_shape(meta[0])} {_short_dtype(meta[1])}"
            if obj.inputs is None:
                label += "\n(freed)"
            style = "output" if obj is tensor._node else "op"
        else:
            if obj._requires_grad:
                name, style = names.get(key) or obj.name or "param", "param"
            else:
                default = "const" if obj.size == 1 else "input"
                name, style = obj.name or default, "input"
            if len(name) > max_label:
                name = name[: max_label - 1] + "…"
            if obj.size == 1:  # a number: show it (x = 2, the constant 1)
                name += f" = {_one_value(obj):.4g}"
            label = f"{name}\n{_format_shape(obj.shape)} {_short_dtype(obj.dtype)}"
            if show_grads:
                label += _grad_summary(obj)
        text = ax.text(*position[key], label, ha="center", va="center", fontsize=fontsize,
                       bbox=styles[style], zorder=3)
        text.set_gid(f"node:{style}:{count}")
        texts[key] = text

    line = dict(color="#555555", lw=0.8)
    drawn = set()
    for route in routes:
        for a, b in zip(route, route[1:]):
            if (a, b) in drawn:  # a shared bus segment is drawn once
                continue
            drawn.add((a, b))
            last = b is route[-1]
            props = dict(arrowstyle="-|>" if last else "-", shrinkA=0, shrinkB=0,
                         mutation_scale=8, **line)
            if a in texts:
                props["patchA"] = texts[a].get_bbox_patch()
            if last:
                props["patchB"] = texts[b].get_bbox_patch()
            # drawn after the boxes (zorder 4), so the clipping patches are up to date
            ax.annotate("", xy=position[b], xytext=position[a], arrowprops=props, zorder=4)

    from matplotlib.patches import Patch

    legend = [Patch(facecolor=styles[k]["facecolor"], edgecolor=styles[k]["edgecolor"],
                    label=text) for k, text in
              (("param", "parameter"), ("input", "input / constant"), ("op", "operation"),
               ("output", "output"))]
    top = 1.0 - (0.3 if title else 0.0) / height
    fig.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, top), ncol=4,
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11, y=1.0 - 0.05 / height, va="top")
    # matplotlib refuses images over 2**16 pixels a side: lower the resolution instead
    return _save(fig, path, dpi=int(min(100, 60000 / max(width, height))))


# ----------------------------------------------------------------- training
def plot_history(history, title: str = "Training history", path=None):
    """Plot the curves of a training run: one panel per quantity.

    Args:
        history: a ``tl.train.History`` (anything with a ``.history`` dict) or a plain
            ``{"loss": [...], "val_loss": [...], "accuracy": [...], ...}`` dict.
            ``val_x`` is drawn dashed in the same panel as ``x``.
        title: the figure's title.
        path: save the figure there as a PNG.
    """
    from matplotlib.ticker import MaxNLocator

    curves = getattr(history, "history", history)
    if not isinstance(curves, dict) or not curves:
        raise ValueError("plot_history expects a History or a non-empty dict of lists")
    panels = []
    for key in curves:
        base = key[4:] if key.startswith("val_") else key
        if base not in panels:
            panels.append(base)
    fig = _figure(4.2 * len(panels), 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, base in zip(axes, panels):
        for key, style, label in ((base, "-", "training"), ("val_" + base, "--", "validation")):
            if key in curves and len(curves[key]):
                values = np.asarray(curves[key], dtype=float)
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, style, marker="o" if len(values) < 30 else None,
                        markersize=3, label=label)
        ax.set_title(base.replace("_", " "))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(base.replace("_", " "))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------ heat map
def _format_label(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:g}"
    return str(value)


def heatmap(values, row_labels=None, col_labels=None, title: str = "", xlabel: str = "",
            ylabel: str = "", fmt: str = ".3f", cmap: str = "viridis",
            colorbar_label: str = "", path=None):
    """An annotated heat map: the lecture notes' grid-search figures without seaborn.

    ``heatmap(test_accuracy, eta_vals, lmbd_vals, "Test Accuracy", xlabel="$\\lambda$",
    ylabel="$\\eta$")`` draws cell ``[i, j]`` at row i (``row_labels[i]``), column j,
    with its value written in the cell in a colour that stays readable on the cell.

    Args:
        values: a 2-D array (rows x columns).
        row_labels, col_labels: tick labels (numbers are printed with ``%g``).
        title, xlabel, ylabel: the axes' texts.
        fmt: format of the numbers in the cells.
        cmap: a matplotlib colour map name.
        colorbar_label: label of the colour bar.
        path: save the figure there as a PNG.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"heatmap expects a 2-D array, got shape {values.shape}")
    n_rows, n_cols = values.shape
    row_labels = list(range(n_rows)) if row_labels is None else list(row_labels)
    col_labels = list(range(n_cols)) if col_labels is None else list(col_labels)
    if len(row_labels) != n_rows or len(col_labels) != n_cols:
        raise ValueError(f"heatmap: {n_rows}x{n_cols} values need {n_rows} row labels and "
                         f"{n_cols} column labels, got {len(row_labels)} and "
                         f"{len(col_labels)}")
    fig = _figure(max(4.5, 0.85 * n_cols + 2.5), max(3.5, 0.6 * n_rows + 1.8))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(values, cmap=cmap, aspect="auto")
    colorbar = fig.colorbar(image, ax=ax)
    if colorbar_label:
        colorbar.set_label(colorbar_label)
    ax.set_xticks(range(n_cols), [_format_label(v) for v in col_labels])
    ax.set_yticks(range(n_rows), [_format_label(v) for v in row_labels])
    ax.tick_params(axis="x", labelrotation=45 if n_cols > 6 else 0)
    fontsize = 9 if n_cols <= 8 else 7
    colormap = image.get_cmap()
    for i in range(n_rows):
        for j in range(n_cols):
            value = values[i, j]
            # dark text on light cells, white on dark ones (perceived luminance)
            if not np.isfinite(value):
                text, colour = "nan", "black"
            else:
                r, g, b, _ = colormap(image.norm(value))
                light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
                text, colour = format(value, fmt), ("black" if light else "white")
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------- activations
def plot_activations(path=None):
    """The lecture notes' four activation figures in one: sigmoid, step, sine and ReLU.

    Each curve is computed with tinygrad_lite's own ops, on the notes' ranges and axis
    limits.
    """
    from . import Tensor

    z = np.arange(-5, 5, 0.02)
    zt = Tensor(z, dtype="float64")
    sine_z = np.arange(-2 * math.pi, 2 * math.pi, 0.02)
    relu_z = np.arange(-2, 2, 0.02)
    panels = [
        ("sigmoid function", z, zt.sigmoid().numpy(), (-5, 5), (-0.1, 1.1)),
        ("step function", z, (zt >= 0).numpy().astype(float), (-5, 5), (-0.5, 1.5)),
        ("sine function", sine_z, Tensor(sine_z, dtype="float64").sin().numpy(),
         (-2 * math.pi, 2 * math.pi), (-1.05, 1.05)),
        ("Rectified linear unit", relu_z, Tensor(relu_z, dtype="float64").relu().numpy(),
         (-2, 2), (-2, 2)),
    ]
    fig = _figure(9, 7)
    axes = fig.subplots(2, 2)
    for ax, (name, x, y, xlim, ylim) in zip(axes.flat, panels):
        ax.plot(x, y)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.grid(True)
        ax.set_xlabel("z")
        ax.set_ylabel("f(z)")
        ax.set_title(name)
    fig.suptitle("Activation functions")
    fig.tight_layout()
    return _save(fig, path)

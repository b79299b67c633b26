"""Results of a search: the rows (one per trial), the text table and the plot of the metric
against each searched hyperparameter.  Records are the journal's (best first)."""
from .spaces import Choice, OneMinusLogUniform, Space


def result_rows(results):
    """One flat dict per trial: the config, then the metrics (a metric named like a
    hyperparameter gets a ``metric_`` prefix), then ``time`` and ``reason`` (why a trial
    failed or was pruned; None otherwise)."""
    rows = []
    for rank, rec in enumerate(results, 1):
        row = {"rank": rank, "trial_id": rec["trial_id"], "round": rec["round"],
               "status": rec["status"]}
        row.update(rec["config"])
        for key, value in rec["metrics"].items():
            row[key if key not in row else f"metric_{key}"] = value
        row["time"] = rec["time"]
        row["reason"] = rec["error"]
        rows.append(row)
    return rows


def results_table(results, metric, searched, pruner, max_rows=None):
    """The results as a text table, best first: rank, trial, round, ``metric`` and the
    ``searched`` hyperparameters (``max_rows`` limits the rows shown)."""
    cols = ["rank", "trial_id", "round", metric] + searched
    rows = []
    for row in result_rows(results)[:max_rows]:
        cells = []
        for c in cols:
            v = row.get(c)
            if c == metric and row["status"] == "failed":
                v = "failed"
            elif c == metric and row["status"] == "pruned":
                v = f"pruned {_fmt(v)}"
            cells.append(_fmt(v))
        rows.append(cells)
    widths = [max(len(c), *(len(r[j]) for r in rows)) if rows else len(c)
              for j, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    pruned = sum(r["status"] == "pruned" for r in results)
    if pruned:
        lines.append(f"{pruned} trial(s) pruned (stopped early by {pruner!r})")
    failed = [r for r in results if r["status"] == "failed"]
    if failed:
        lines.append(f"{len(failed)} failed trial(s); first: {failed[0]['trial_id']}: "
                     f"{failed[0]['error']}")
    return "\n".join(lines)


def plot_results(results, space, metric, rounds, path=None):
    """The figure of :meth:`RandomSearch.plot`."""
    try:
        import matplotlib
        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as exc:  # optional extra
        raise ImportError("RandomSearch.plot needs matplotlib: pip install "
                          "'fastnn[plot]'") from exc
    names = [name for name, sp in space.items() if isinstance(sp, Space)]
    ok = [r for r in results if r["status"] == "ok"]
    pruned = [r for r in results if r["status"] == "pruned"
              and r["metrics"].get(metric) is not None]
    ncols = min(3, max(1, len(names)))
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        sp = space[name]
        groups = [(f"round {r}", [rec for rec in ok if rec["round"] == r], {})
                  for r in range(rounds)]
        groups.append(("pruned", pruned, {"marker": "x", "color": "0.6"}))
        for label, recs, style in groups:
            if not recs:
                continue
            xs = [rec["config"][name] for rec in recs]
            ys = [rec["metrics"][metric] for rec in recs]
            if isinstance(sp, Choice):
                xs = [sp.index(x) for x in xs]
            elif isinstance(sp, OneMinusLogUniform):
                xs = [1.0 - x for x in xs]
            ax.scatter(xs, ys, s=18, alpha=0.8, label=label, **style)
        if isinstance(sp, Choice):
            ax.set_xticks(range(len(sp.options)))
            ax.set_xticklabels([str(o) for o in sp.options], rotation=30)
        elif sp.log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"1 - {name}" if isinstance(sp, OneMinusLogUniform) else name)
        ax.set_ylabel(metric)
        if rounds > 1 or pruned:
            ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)

"""The report of a streamed analysis: a :class:`~clipgeo.report.Report` plus what was sampled and bounded."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..report import Report


@dataclass
class StreamReport(Report):
    """A :class:`~clipgeo.report.Report` computed from streamed statistics (see :mod:`clipgeo.stream._report`).

    Attributes
    ----------
    streaming : dict
        report.json's ``streaming`` key: engine, workers, the sample (kind, size, seed), the histogram grid
        and the largest error bounds of the histogram-based numbers, which numbers are exact.
    stream_extremes : dict
        Per modality, the exact highest / lowest conformity rows over the whole store
        (:class:`clipgeo.stream._tasks.Extremes`).
    histogram_bounds : HistogramSeparability or None
        The per-feature bounds (written to features.csv).
    """

    streaming: dict[str, Any] = field(default_factory=dict)
    stream_extremes: dict[str, Any] = field(default_factory=dict)
    histogram_bounds: Any = None

    def extremes(self, k: int | None = None) -> dict[str, Any]:
        """Highest- and lowest-conformity rows per modality over every row of the store."""
        k = int(self.config.get("n_extremes", 5) if k is None else k)
        label = {"image": "path", "text": "caption"}
        out: dict[str, Any] = {}
        for m, ext in self.stream_extremes.items():
            if m not in self.conformity:
                continue

            def entry(i: int, ext=ext, m=m) -> dict[str, Any]:
                item = {"row": int(ext.rows[i]), "conformity": float(ext.values[i]), "id": str(ext.ids[i])}
                if ext.labels[i]:
                    item[label[m]] = str(ext.labels[i])
                return item

            out[m] = {"top": [entry(i) for i in ext.top()[:k]], "bottom": [entry(i) for i in ext.bottom()[:k]]}
        return out

    @property
    def extra_json(self) -> dict[str, Any]:
        """Keys report.json gets beyond the in-memory report's."""
        return {"streaming": self.streaming}

    @property
    def extra_feature_columns(self) -> dict[str, Any]:
        """Columns features.csv gets beyond the in-memory report's: each feature's histogram error bounds."""
        h = self.histogram_bounds
        if h is None:
            return {}
        return {"threshold_accuracy_bound": h.accuracy_bound, "auc_bound": h.auc_bound}

    def write(self, out_dir: str | Path, *, provenance: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write the report directory as the in-memory report does, plus ``streaming`` and the bound columns.

        The per-row tables (rows_*.csv) hold the sampled rows: ``row`` is the position in the sample and
        ``id`` the row's global index in its modality (store order).
        """
        from .._io import atomic_path, write_json, write_text
        from ..report import _names as n
        from ..report._markdown import render_markdown
        from ..report._write import features_table, summary, write_report

        sampled = {m: len(self.rows.get(m, {}).get("row", ())) for m in ("image", "text")}
        view = dataclasses.replace(self, n_image=sampled["image"], n_text=sampled["text"])  # per-row tables
        files = write_report(view, out_dir, provenance=provenance)
        out = Path(out_dir)
        frame = features_table(self)
        for name, values in self.extra_feature_columns.items():
            frame[name] = values
        with atomic_path(out / n.FEATURES_CSV) as tmp:
            frame.to_csv(tmp, index=False, float_format=n.CSV_FLOAT_FORMAT)
        data = json.loads((out / n.REPORT_JSON).read_text())
        data.update(summary(self))  # the store's counts, not the sample's
        data.update(self.extra_json)
        write_text(out / n.REPORT_MD, render_markdown(self, data).rstrip() + "\n\n" + self.markdown_section() + "\n")
        write_json(out / n.REPORT_JSON, data, indent=2)
        return files

    def markdown_section(self) -> str:
        """report.md's account of the streamed analysis: what is exact, bounded, sampled."""
        st = self.streaming
        sample, hist = st.get("sample", {}), st.get("histogram")
        lines = ["## Streamed analysis", "",
                 f"Two passes over every shard on {st.get('engine')} ({st.get('workers')} worker(s)).",
                 "- **Exact** over every row: " + ", ".join(st.get("methods", {}).get("exact", [])) + "."]
        if hist:
            lines.append(f"- **Histograms** ({hist['bins']} bins per feature): threshold accuracy within "
                         f"{hist['threshold_accuracy_max_error']:.2g} below the exact value, AUC within "
                         f"± {hist['auc_max_error']:.2g} (per feature in features.csv).")
        kind = "pairs" if sample.get("kind") == "pairs" else "rows per modality"
        size = sample.get("pairs") if sample.get("kind") == "pairs" else sample.get("rows")
        lines.append(f"- **Sample** of {size} {kind} (seed {sample.get('seed')}, uniform without replacement): "
                     + ", ".join(st.get("methods", {}).get("sample", [])) + "; rows_*.csv hold the sampled rows.")
        return "\n".join(lines)

"""A results page built from run folders: ``calolab report RUN_DIR... -o docs/results``.

Every study, ``calolab validate``, ``regress``, ``evaluate`` and ``generate benchmark`` write one
run folder (``config.yaml``, ``provenance.json``, ``metrics.json`` or ``checks.json``, ``table.md``,
figures ``*.png`` / ``*.pdf``). :func:`write_report` renders a list of them into

- ``index.md``: one section per run, its command and commit, its table (or its scalar metrics,
  or the validation checks), its figures (copied to ``figures/<run>/``) and its config;
- ``index.html``: the same page self-contained, every figure embedded as base64, no external
  assets.

What a page says is what the run folders hold: nothing is measured here. Every output is
written atomically.

>>> import tempfile
>>> from calolab.io.rundir import write_config, write_json
>>> run = Path(tempfile.mkdtemp()) / "demo"
>>> _ = write_config(run, {"seed": 1}, argv=["calolab", "study", "demo"])
>>> _ = write_json(run / "metrics.json", {"mae": 0.0123})
>>> page = markdown([read_run(run)])
>>> "calolab study demo" in page, "| mae | 0.0123 |" in page
(True, True)
"""

from __future__ import annotations

import base64
import html as _html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calolab.errors import CalolabError

RUN_FILES = ("config.yaml", "metrics.json", "checks.json")
FIGURES = {".png": "image/png", ".pdf": "application/pdf", ".svg": "image/svg+xml"}
MAX_METRICS = 40  # scalar metrics listed for a run without table.md


@dataclass(frozen=True)
class Run:
    """What one run folder holds, as read by :func:`read_run`.

    ``config``, ``metrics``, ``checks`` and ``provenance`` are the parsed files or ``None``;
    ``table`` the text of ``table.md`` or ``None``; ``figures`` the ``*.png``, ``*.pdf`` and
    ``*.svg`` files, sorted by name.
    """

    path: Path
    config: dict | None
    metrics: dict | None
    checks: dict | None
    table: str | None
    figures: tuple[Path, ...]
    provenance: dict | None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def command(self) -> str:
        """The command line that made the run, or ``"not recorded"``."""
        return str(self._recorded("command"))

    @property
    def commit(self) -> str:
        """The git commit of the code that made the run (``"unknown"`` outside a checkout), or ``"not recorded"``."""
        return str(self._recorded("commit"))

    def _recorded(self, key: str) -> Any:
        for source in (self.provenance, self.config):
            if source and source.get(key) is not None:
                return source[key]
        return "not recorded"


def _load(path: Path, kind: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        text = path.read_text()
        data = json.loads(text) if kind == "json" else _yaml(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CalolabError(f"{path}: not readable as {kind} ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise CalolabError(f"{path}: expected a mapping, got {type(data).__name__}")
    return data


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def read_run(path: str | Path) -> Run:
    """Read a run folder; a folder without ``config.yaml``, ``metrics.json`` or ``checks.json`` is an error."""
    path = Path(path)
    if not path.is_dir():
        raise CalolabError(f"{path}: no such run folder")
    if not any((path / name).is_file() for name in RUN_FILES):
        raise CalolabError(f"{path}: not a run folder (expected {', '.join(RUN_FILES)})")
    table = path / "table.md"
    return Run(path=path, config=_load(path / "config.yaml", "yaml"), metrics=_load(path / "metrics.json", "json"),
               checks=_load(path / "checks.json", "json"), table=table.read_text() if table.is_file() else None,
               figures=tuple(sorted(p for p in path.iterdir() if p.suffix.lower() in FIGURES and p.is_file())),
               provenance=_load(path / "provenance.json", "json"))


def _slugs(runs: Sequence[Run]) -> list[str]:
    """One anchor and figure folder per run: its folder name, made unique."""
    seen: dict[str, int] = {}
    slugs = []
    for run in runs:
        base = re.sub(r"[^a-z0-9_-]+", "-", run.name.lower()).strip("-") or "run"
        seen[base] = seen.get(base, 0) + 1
        slugs.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return slugs


def _scalars(data: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """The scalar leaves of nested mappings, as dotted keys; lists and the run's config are left out."""
    if isinstance(data, dict):
        for key, value in data.items():
            if not prefix and key == "config":
                continue
            yield from _scalars(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, bool | int | float | str) or data is None:
        yield prefix, data


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _metrics_table(metrics: dict) -> list[str]:
    rows = list(_scalars(metrics))
    lines = ["| metric | value |", "|---|---|", *(f"| {k} | {_number(v)} |" for k, v in rows[:MAX_METRICS])]
    if len(rows) > MAX_METRICS:
        lines += ["", f"{len(rows) - MAX_METRICS} more values in `metrics.json`."]
    return lines


def _checks_table(checks: dict) -> list[str]:
    by_kind = checks.get("by_kind")
    if by_kind:  # predictions and calibrations apart
        pred, calib = (by_kind.get(k, {}) for k in ("prediction", "calibration"))
        head = (f"predictions: {pred.get('passed', '?')} of {pred.get('total', '?')} agree; calibrations: "
                f"{calib.get('passed', '?')} of {calib.get('total', '?')} agree (agreement by construction).")
    else:
        head = f"{checks.get('passed', '?')} checks agree with their references, {checks.get('failed', '?')} do not."
    lines = [head, "", "| check | kind | measured | reference | tolerance | unit | agrees | source |",
             "|---|---|---|---|---|---|---|---|"]
    for c in checks.get("checks", []):
        unc = c.get("uncertainty")
        measured = _number(c.get("measured"))
        if isinstance(unc, float) and unc == unc:  # not NaN
            measured += f" ± {unc:.3g}"
        lines.append(f"| {_number(c.get('name'))} | {_number(c.get('kind', ''))} | {measured} | "
                     f"{_number(c.get('reference'))} | "
                     f"{_number(c.get('tolerance'))} | {_number(c.get('unit'))} | "
                     f"{'yes' if c.get('passed') else 'no'} | {_number(c.get('source'))} |")
    return lines


def _demoted(table: str, levels: int = 2) -> list[str]:
    """``table.md`` inside a run's section: its headings moved ``levels`` down."""
    lines, fenced = [], False
    for line in table.rstrip().splitlines():
        fenced ^= line.startswith("```")
        lines.append("#" * levels + line if line.startswith("#") and not fenced else line)
    return lines


def _section(run: Run, slug: str, figure_dir: str) -> list[str]:
    import yaml

    lines = [f'<a id="{slug}"></a>', "", f"## {run.name}", "", f"- folder: `{run.path}`", f"- command: `{run.command}`",
             f"- commit: `{run.commit}`", ""]
    if run.table is not None:
        lines += [*_demoted(run.table), ""]
    elif run.metrics is not None:
        lines += ["### Metrics", "", *_metrics_table(run.metrics), ""]
    if run.checks is not None:
        lines += ["### Validation checks", "", *_checks_table(run.checks), ""]
    if run.figures:
        lines += ["### Figures", ""]
        for fig in run.figures:
            target = f"{figure_dir}/{slug}/{fig.name}"
            lines += [f"![{fig.stem}]({target})" if fig.suffix.lower() != ".pdf" else f"[{fig.name}]({target})", ""]
    if run.config is not None:
        lines += ["### Config", "", "```yaml", yaml.safe_dump(run.config, sort_keys=False).rstrip(), "```", ""]
    return lines


def markdown(runs: Sequence[Run], figure_dir: str = "figures", title: str = "calolab results") -> str:
    """The Markdown page of ``runs``: a contents list, then one section per run.

    Figures are referenced as ``{figure_dir}/<run>/<file>`` (where :func:`write_report` copies them).
    """
    slugs = _slugs(runs)
    lines = [f"# {title}", "", "Rendered by `calolab report` from the run folders below; every figure and number "
             "is what the run wrote.", ""]
    lines += [f"- [{run.name}](#{slug}): `{run.command}`" for run, slug in zip(runs, slugs, strict=True)] + [""]
    for run, slug in zip(runs, slugs, strict=True):
        lines += _section(run, slug, figure_dir)
    return "\n".join(lines).rstrip() + "\n"


# ---- a small Markdown-to-HTML converter for the pages written above (headings, tables, lists, code)

def _inline(text: str, embed: dict[str, tuple[str, str]]) -> str:
    def image(m: re.Match) -> str:
        alt, src = m.group(1), _html.unescape(m.group(2))
        if src in embed:
            return f'<img alt="{alt}" src="{embed[src][1]}">'
        return f'<img alt="{alt}" src="{m.group(2)}">'

    def link(m: re.Match) -> str:
        label, href = m.group(1), _html.unescape(m.group(2))
        if href in embed:
            return f'<a download="{embed[href][0]}" href="{embed[href][1]}">{label}</a>'
        return f'<a href="{m.group(2)}">{label}</a>'

    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{_html.escape(part[1:-1])}</code>")
            continue
        part = _html.escape(part, quote=False).replace("\\|", "|")
        part = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", image, part)
        part = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", link, part)
        part = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", part)
        out.append(part)
    return "".join(out)


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def to_html(text: str, embed: dict[str, tuple[str, str]] | None = None, title: str = "calolab results") -> str:
    """A self-contained HTML page of the Markdown ``text``; ``embed`` maps a figure path to (file name, data URI).

    >>> page = to_html("# Title\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n")
    >>> "<th>a</th>" in page and "<td>2</td>" in page
    True
    """
    embed = embed or {}
    lines, body, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            code = _html.escape("\n".join(lines[i + 1:j]))
            body.append(f"<details><summary>{_html.escape(line[3:] or 'code')}</summary><pre><code>{code}"
                        "</code></pre></details>")
            i = j + 1
        elif re.fullmatch(r'<a id="[\w-]+"></a>', line):  # an anchor, as written by markdown()
            body.append(line)
            i += 1
        elif m := re.match(r"(#{1,6}) (.*)$", line):
            level = len(m.group(1))
            body.append(f"<h{level}>{_inline(m.group(2), embed)}</h{level}>")
            i += 1
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$", lines[i + 1].strip()):
            rows = [f"<tr>{''.join(f'<th>{_inline(c, embed)}</th>' for c in _cells(line))}</tr>"]
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(f"<tr>{''.join(f'<td>{_inline(c, embed)}</td>' for c in _cells(lines[i]))}</tr>")
                i += 1
            body.append("<table>" + "".join(rows) + "</table>")
        elif re.match(r"[-*] ", line):
            items = []
            while i < len(lines) and re.match(r"[-*] ", lines[i]):
                items.append(f"<li>{_inline(lines[i][2:], embed)}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
        elif line.strip():
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"(#{1,6} |[-*] |\||```)", lines[i]):
                para.append(_inline(lines[i], embed))
                i += 1
            body.append("<p>" + "\n".join(para) + "</p>")
        else:
            i += 1
    style = ("body{font-family:sans-serif;max-width:72em;margin:auto;padding:1em;line-height:1.4}"
             "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:2px 6px;"
             "text-align:left}img{max-width:100%;display:block;margin:0.5em 0}code{background:#f3f3f3}"
             "pre{background:#f3f3f3;padding:0.5em;overflow-x:auto}")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_html.escape(title)}'
            f"</title>\n<style>{style}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def _data_uri(path: Path) -> str:
    return f"data:{FIGURES[path.suffix.lower()]};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def write_report(run_dirs: Sequence[str | Path], out: str | Path, title: str = "calolab results") -> list[Path]:
    """Render the run folders ``run_dirs`` into ``out``: ``index.md``, ``figures/`` and ``index.html``.

    Returns the written paths (the two pages first). Every folder is read before anything is
    written, so a folder that is not a run folder leaves ``out`` as it was.
    """
    from calolab.io.atomic import atomic_path

    if not run_dirs:
        raise CalolabError("no run folders given")
    runs = [read_run(p) for p in run_dirs]
    out = Path(out)
    text = markdown(runs, "figures", title)
    embed: dict[str, tuple[str, str]] = {}
    written = []
    for run, slug in zip(runs, _slugs(runs), strict=True):
        for fig in run.figures:
            target = out / "figures" / slug / fig.name
            with atomic_path(target) as tmp:
                tmp.write_bytes(fig.read_bytes())
            written.append(target)
            embed[f"figures/{slug}/{fig.name}"] = (fig.name, _data_uri(fig))
    pages = []
    for name, content in (("index.md", text), ("index.html", to_html(text, embed, title))):
        with atomic_path(out / name) as tmp:
            tmp.write_text(content, encoding="utf-8")
        pages.append(out / name)
    return pages + written

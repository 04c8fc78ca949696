"""A run's reports, ``report.md`` and ``report.html``, built from its saved ``results.json`` alone.

Both are rendered from one list of :class:`Section`s, so they always say the
same thing. Because they read only the saved record (and the PNGs beside it),
``tape-runner-report`` can rebuild them later without recomputing anything.
The HTML is self-contained: styles inline, plots as data URIs, nothing fetched.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from runner.outputs.files import write_atomic
from runner.outputs.records import PLOT_NAME

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
SNIPPET = "snippet.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PLOT_BYTES = 32 * 2**20
#: Characters through which Markdown text could become HTML, a link, an image, code or a table
#: cell. Emphasis (``*``, ``_``) is left alone, so ``x**2`` reads as written in report.md.
_MD_SPECIAL = re.compile(r"([\\`\[\]<>&|])")
#: What makes a line a heading, a list item, a rule or a fence in Markdown: escaped where a line starts.
#: (``1.`` and ``1)`` by the mark after the digits; a backslash before punctuation renders as the mark.)
_MD_LINE_START = re.compile(r"\A(\d*)([#+*=~_.)-])")

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d2330; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #dde; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .92rem; }
th, td { border: 1px solid #ccd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f2f4f8; } code, pre { font-family: ui-monospace, monospace; font-size: .88rem; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; border-radius: 4px; }
img { max-width: 100%; } .ok { color: #17663a; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
"""


@dataclass(frozen=True)
class Link:
    """A table cell that links to another file of the run or sweep."""

    text: str
    href: str


@dataclass(frozen=True)
class Hover:
    """A table cell with more to say on hover (HTML ``title``); Markdown shows the text alone."""

    text: str
    title: str


@dataclass
class Section:
    """A heading and its blocks: ("p", text) | ("table", (header, rows)) | ("code", text) | ("img", file)
    | ("link", (text, href))."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)


def value_text(value: Any) -> str:
    """A gradient or input in a table cell: numbers as they are, arrays summarised."""
    if value is None:
        return "null"
    if isinstance(value, dict):  # a summary of an array too large to list
        return f"array {tuple(value['shape'])}, min {value['min']}, max {value['max']}"
    if isinstance(value, list):
        import numpy as np

        try:
            array = np.asarray(value, dtype=np.float64)
        except ValueError:
            return str(value)
        head = ", ".join(f"{v:.6g}" for v in array.ravel()[:4])
        more = ", …" if array.size > 4 else ""
        return f"array {array.shape}: [{head}{more}]"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value else repr(value)
    return str(value)


def error_text(value: Any) -> str:
    """An error or a tolerance: three significant digits are all a comparison needs."""
    if value is None:
        return "—"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


#: What the checks' names mean, under every report's table of checks.
CHECKS_LEGEND = (
    "vs SymPy: SymPy's exact derivative, evaluated in float64. vs float64 central differences: "
    "(f(x + h) - f(x - h)) / 2h of the same program in float64, element by element. vs float64 "
    "forward pass: the step's value recomputed in float64 NumPy. finite: no NaN or inf. recorded: a "
    "gradient where one was expected, None where TensorFlow gives None. Other checks name what they "
    "compare. A check passes when every element has |got - want| <= atol + rtol * |want|; the tolerance "
    "column is that bound at the worst element, from checks.tolerances.<dtype>.")


def _step(text: Any) -> str:
    """An expression as written; a Keras layer step as its call, ``Dense(x, units=2)``; a gradient step
    as the inner tape's call, ``tape.gradient(out, x)``."""
    if not isinstance(text, dict):
        return str(text)
    if "gradient" in text:
        return f"tape.gradient({text['gradient']}, {text.get('wrt')})"
    args = [str(text.get("input")), *(f"{k}={v!r}" for k, v in (text.get("args") or {}).items())]
    if text.get("training") is not None:
        args.append(f"training={text['training']}")
    return f"{text.get('layer')}({', '.join(args)})"


def _function(scenario: dict[str, Any], labels: list[str]) -> str:
    """What was differentiated, in one line, whichever routine ran."""
    if scenario.get("function") is not None:  # a program's short form names no targets
        # d<target>/..., or a Hessian's d2<target>/...: a name never starts with a digit
        target = labels[0][1:].split("/")[0].lstrip("0123456789") if labels and "/" in labels[0] else "y"
        if "hidden" in scenario:  # stop_gradient: z = f(x) + g(x, y)
            return (f"{target} = {scenario['function']} + {scenario['hidden']}"
                    f"  # {scenario['hidden']}: hidden from the tape, except in (without)")
        return f"{target} = {scenario['function']}"
    for key in ("targets", "outputs"):
        if key in scenario:
            return "; ".join(f"{name} = {_step(text)}" for name, text in scenario[key].items())
    if "layers" in scenario:
        return f"MLP {scenario['layers']}, {scenario.get('activation')}, loss mean((y - targets)**2)"
    if "in_features" in scenario:
        return f"y = xW + b, loss {scenario.get('loss')}"
    return f"case: {scenario.get('case', 'all')}"


def _headline(results: dict[str, Any]) -> Section:
    """``<scenario>: <status>``, and the reason when it is not ok."""
    head = Section(f"{results.get('scenario')}: {results.get('status')}")
    if results.get("message"):
        what = {"check_failed": "Check failed", "unverified": "Unverified"}.get(str(results.get("status")),
                                                                               "Error")
        head.blocks.append(("p", f"{what}: {results['message']}"))
    return head


def glance_sections(results: dict[str, Any], derivatives: list[tuple[str, str, str]],
                    report_href: str | None) -> list[Section]:
    """A run at a glance, as a notebook shows it: its status, each derivative with the checks of it
    (``derivatives``: rows of the console's table), its plots, and where the whole report is."""
    out = [_headline(results)]
    if derivatives:
        out.append(Section("Derivatives", [("table", (["derivative", "value", "checks"],
                                                       [list(r) for r in derivatives]))]))
    if results.get("plots"):
        out.append(Section("Plots", [("img", plot) for plot in results["plots"]]))
    where = (("link", ("report.html", report_href)) if report_href else
             ("p", "Not written to disk: run(..., output_dir=...) writes report.html, with every check's "
                   "numbers, the inputs, the environment and a standalone snippet."))
    out.append(Section("Report", [where]))
    return out


def sections(results: dict[str, Any]) -> list[Section]:
    config = results.get("config") or {}
    scenario = config.get("scenario") or {}
    notes = results.get("notes") or {}
    out = [_headline(results)]
    if scenario.get("description"):
        out[0].blocks.append(("p", scenario["description"]))

    function = Section("Function", [("code", _function(scenario, list(results.get("gradients") or {})))])
    if results.get("analytic"):
        function.blocks.append(("table", (["gradient", "analytic derivative"],
                                          list(results["analytic"].items()))))
    out.append(function)
    if results.get("gradients"):
        rows = [[label, value_text(v), notes.get(label, "")] for label, v in results["gradients"].items()]
        out.append(Section("Gradients", [("table", (["gradient", "value", "note"], rows))]))
    if results.get("checks"):
        rows = [[c["name"], "yes" if c["passed"] else "NO", error_text(c["max_abs_err"]),
                 error_text(c["tol"]), c.get("detail", "")] for c in results["checks"]]
        out.append(Section("Checks", [("table", (["check", "passed", "max abs error", "tolerance",
                                                   "detail"], rows)), ("p", CHECKS_LEGEND)]))
    if results.get("values"):
        rows = [[name, value_text(v), notes.get(name, "")] for name, v in results["values"].items()]
        out.append(Section("Values", [("table", (["name", "value", "note"], rows))]))
    if results.get("reference_error"):
        config_dtype = (results.get("config") or {}).get("dtype")
        rows = [[label, value_text(err)] for label, err in results["reference_error"].items()]
        out.append(Section(f"Error of {config_dtype} against float64", [
            ("p", "The same job run again in float64: the largest difference in each gradient."),
            ("table", (["gradient", "max abs difference"], rows))]))
    if results.get("plots"):
        out.append(Section("Plots", [("img", plot) for plot in results["plots"]]))
    if results.get("inputs"):
        rows = [[k, value_text(v)] for k, v in results["inputs"].items()]
        out.append(Section("Inputs", [("table", (["input", "value"], rows))]))
    env = results.get("environment") or {}
    if env:
        rows = [["python", env.get("python")], ["platform", env.get("platform")],
                ["cpu", f"{env.get('cpu')} ({env.get('cpu_count')} CPUs)"],
                ["devices", ", ".join(env.get("devices") or [])],
                ["git commit", (env.get("git_commit") or "not a git checkout")
                 + (" (uncommitted changes)" if env.get("git_dirty") else "")],
                ["seed", config.get("seed")], ["dtype", config.get("dtype")]]
        rows += [[name, version] for name, version in (env.get("packages") or {}).items()]
        out.append(Section("Environment", [("table", (["what", "value"], rows))]))
    if results.get("timings"):
        rows = [[k, f"{v:.4f}"] for k, v in results["timings"].items()]
        out.append(Section("Timings", [("table", (["phase", "seconds"], rows))]))
    if results.get("command"):
        out.append(Section("Reproduce", [
            ("p", "With tape-runner, from the overrides, or from this run's saved config:"),
            ("code", f"{results['command']}\n{results.get('rerun_command', '')}")]))
    if results.get("snippet"):
        out.append(Section("Standalone TensorFlow", [
            ("p", "Plain tf.GradientTape code, without tape-runner, that prints the same gradients:"),
            ("code", results["snippet"])]))
    return out


def md_text(value: Any) -> str:
    """Text shown as itself by any Markdown renderer: one line, every special character escaped.

    Without this a description holding ``<script>`` or ``![](http://...)`` would reach the
    reader's renderer as HTML or as an image fetched from elsewhere.
    """
    return _MD_SPECIAL.sub(r"\\\1", str(value).replace("\r", " ").replace("\n", " "))


def _md_line(value: Any) -> str:
    """:func:`md_text` as a line of its own: one starting with ``#``, ``-``, ``+``, ``*``, ``1.`` (or
    indented) would be a heading, a list or code, so a folder could fake a line ``# basic: ok``;
    its start is escaped too."""
    return _MD_LINE_START.sub(r"\1\\\2", md_text(str(value).lstrip()), count=1)


def _md_cell(value: Any) -> str:
    if isinstance(value, Link):
        return f"[{md_text(value.text)}]({quote(value.href)})"
    if isinstance(value, Hover):
        value = value.text
    return md_text(value)


def _fence(content: str) -> str:
    """A code fence longer than any run of backticks in ``content``, so the content cannot close it."""
    longest = max((len(run) for run in re.findall("`+", content)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(parts: list[Section]) -> str:
    lines: list[str] = []
    for index, section in enumerate(parts):
        lines += [f"{'#' if index == 0 else '##'} {md_text(section.title)}", ""]
        for kind, content in section.blocks:
            if kind == "p":
                lines += [_md_line(content), ""]
            elif kind == "code":
                fence = _fence(content)
                lines += [fence, content.rstrip("\n"), fence, ""]
            elif kind == "link":
                lines += [_md_cell(Link(*content)), ""]
            elif kind == "img":
                if PLOT_NAME.match(content):
                    lines += [f"![{md_text(content)}]({content})", ""]
                else:
                    lines += [_md_line(f"(plot {content} is not a file name in this folder)"), ""]
            else:
                header, rows = content
                lines += ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows] + [""]
    return "\n".join(lines)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _png(base: Path, name: str) -> bytes | None:
    """The PNG ``name`` directly inside ``base``, or None.

    The name comes from a results.json that may have been sent by someone else: only
    a bare file name is looked up, never through a symbolic link, and only a PNG
    under the size bound is embedded, so no other file can end up in the report.
    """
    if not PLOT_NAME.match(name):
        return None
    path = base / name
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_PLOT_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return data if data.startswith(PNG_SIGNATURE) else None


def to_html(parts: list[Section], base: Path, title: str) -> str:
    """Self-contained HTML: images read from ``base`` and inlined; a missing image is named, not linked."""
    def image(name: str) -> bytes | None:
        return _png(base, name)

    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + html_body(parts, image) + "\n</body></html>\n")


def html_body(parts: list[Section], image: Callable[[str], bytes | None]) -> str:
    """The sections as HTML elements, each plot inlined from ``image(name)`` (PNG bytes, or None)."""
    esc = html.escape
    body: list[str] = []
    for index, section in enumerate(parts):
        tag = "h1" if index == 0 else "h2"
        body.append(f"<{tag}>{esc(section.title)}</{tag}>")
        for kind, content in section.blocks:
            if kind == "p":
                body.append(f"<p>{esc(content)}</p>")
            elif kind == "code":
                body.append(f"<pre><code>{esc(content)}</code></pre>")
            elif kind == "link":
                text, href = content
                body.append(f'<p><a href="{esc(href)}">{esc(text)}</a></p>')
            elif kind == "img":
                png = image(content)
                body.append(f'<p><img alt="{esc(content)}" src="{_data_uri(png)}"></p>'
                            if png is not None else f"<p>(plot {esc(content)} is missing)</p>")
            else:
                header, rows = content
                head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
                cells = ["".join(_html_cell(c) for c in row) for row in rows]
                body.append(f"<table><tr>{head}</tr>" + "".join(f"<tr>{c}</tr>" for c in cells)
                            + "</table>")
    return "\n".join(body)


def _html_cell(value: Any) -> str:
    if isinstance(value, Link):
        return f'<td><a href="{html.escape(value.href)}">{html.escape(value.text)}</a></td>'
    if isinstance(value, Hover):
        return f'<td title="{html.escape(value.title)}">{html.escape(value.text)}</td>'
    text = str(value)
    css = {"yes": "ok", "ok": "ok", "NO": "bad", "error": "bad", "check_failed": "bad", "unverified": "bad",
           "missing": "bad"}.get(text)
    return f'<td class="{css}">{html.escape(text)}</td>' if css else f"<td>{html.escape(text)}</td>"


def write_reports(results: dict[str, Any], run_dir: Path) -> None:
    """report.md, report.html and (when there is one) snippet.py, all from ``results``."""
    parts = sections(results)
    write_atomic(run_dir / REPORT_MD, to_markdown(parts))
    write_atomic(run_dir / REPORT_HTML, to_html(parts, run_dir, f"tape-runner: {results.get('scenario')}"))
    if results.get("snippet"):
        write_atomic(run_dir / SNIPPET, results["snippet"])

"""The evidence HTML, readable offline: no script, style or font from the network.

nbconvert's ``lab`` template loads require.js, MathJax, mermaid and the widget
manager (``@jupyter-widgets/html-manager@*``, unpinned) from public CDNs; with the
network blocked the dashboard cell is blank.  Here the template's blocks that load
them are emptied, and each widget output is replaced by a static rendering of the
widget's saved state (text, tables, progress, PNG), so the page needs nothing but
itself.  The ``.ipynb`` keeps the live widget state; only the HTML is static.
"""

from __future__ import annotations

import base64
import copy
import html
import importlib
import logging
from collections.abc import Mapping
from typing import Any

from .summary import DEFAULTS_TAG

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

#: The lab template with every block that loads from a CDN left empty.
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def _states(nb: Any) -> dict[str, Any]:
    saved = (nb.metadata.get("widgets") or {}).get(WIDGET_STATE) or {}
    state = saved.get("state") or {}
    return state if isinstance(state, dict) else {}


def _image(model: Mapping[str, Any]) -> str:
    state = model.get("state") or {}
    data = state.get("value")
    for buf in model.get("buffers") or ():  # binary values are saved as buffers
        if buf.get("path") == ["value"]:
            data = buf.get("data")
    if not isinstance(data, str) or not data:
        return ""
    base64.b64decode(data, validate=True)  # only well-formed PNG data goes in
    return f'<img alt="dashboard plot" style="max-width:900px" src="data:image/png;base64,{data}">'


def render_widget(model_id: str, states: Mapping[str, Any], depth: int = 0) -> str:
    """Static HTML of a saved widget and its children (what the dashboard uses)."""
    model = states.get(model_id)
    if not isinstance(model, dict) or depth > 20:
        return ""
    name = str(model.get("model_name", ""))
    st = model.get("state") or {}
    if name in ("VBoxModel", "HBoxModel", "BoxModel"):
        kids = [render_widget(str(c).removeprefix("IPY_MODEL_"), states, depth + 1)
                for c in st.get("children") or ()]
        flow = "row" if name == "HBoxModel" else "column"
        return (f'<div style="display:flex;flex-direction:{flow};gap:6px">'
                + "".join(kids) + "</div>")
    if name == "HTMLModel":
        return f"<div>{st.get('value', '')}</div>"  # the dashboard's own escaped HTML
    if name == "LabelModel":
        return f"<span>{html.escape(str(st.get('value', '')))}</span>"
    if name in ("FloatProgressModel", "IntProgressModel"):
        lo, hi, val = (float(st.get(k) or 0) for k in ("min", "max", "value"))
        pct = 100.0 * (val - lo) / (hi - lo) if hi > lo else 100.0
        return (f"<span>{html.escape(str(st.get('description', '')))} "
                f'<progress max="100" value="{pct:.0f}">{pct:.0f}%</progress> {pct:.0f}%</span>')
    if name == "ImageModel":
        return _image(model)
    return ""


def static_copy(nb: Any) -> Any:
    """A copy of ``nb`` for the HTML: widget outputs rendered static, no widget state,
    and the runbook's defaults cell left out (they are not the run's parameters)."""
    out = copy.deepcopy(nb)
    states = _states(out)
    out.cells = [c for c in out.cells if DEFAULTS_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in out.cells:
        for o in cell.get("outputs", []):
            view = o.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                continue
            rendered = render_widget(str(view.get("model_id", "")), states)
            o["data"] = {"text/html": rendered or "<i>(widget: its state was not saved)</i>"}
    out.metadata.pop("widgets", None)
    return out


def offline_html(nb: Any, title: str) -> str:
    """The HTML of ``nb`` with nothing loaded from the network."""
    nbconvert: Any = importlib.import_module("nbconvert")
    jinja2: Any = importlib.import_module("jinja2")
    # nbconvert adds a generic alt text to every plot itself and then logs a warning
    # per export; an operator can do nothing about it, so its own logger stays quiet.
    quiet = logging.getLogger("vmigrate.nbconvert")
    quiet.setLevel(logging.ERROR)
    exporter = nbconvert.HTMLExporter(
        log=quiet, template_name="lab", template_file="vmigrate-offline.html.j2",
        extra_loaders=[jinja2.DictLoader({"vmigrate-offline.html.j2": OFFLINE_TEMPLATE})])
    static = static_copy(nb)
    static.metadata["title"] = title
    body, _ = exporter.from_notebook_node(static, resources={"metadata": {"name": title}})
    return str(body)

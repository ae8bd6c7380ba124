"""Build the tutorial page, index.html, from its sources, the figures and the trained models.

    python code/build_page.py                  # write index.html and assets/explorer/*.js
    python code/build_page.py --check          # exit 1, naming each stale file, if they are out of date
    python code/build_page.py --allow-missing  # development: build with placeholders for missing models

Sources (page/): tutorial.md (the text, in Markdown with LaTeX math and a few `:::` directives),
template.html, style.css and explorer.js. Inputs: the figures in assets/, the metrics in
models/metrics_<model>.json, the decoders models/decoder_<model>.h5 and the test-set encodings
models/test_encodings_<model>.npz, for the models 2d, 3d and correlated.

Outputs: index.html, which opens from disk (file://) with no network: the math is rendered to
MathML here, the CSS and the explorer's JavaScript are inlined; and assets/explorer/<model>.js, one
per model: the decoder's weights (little-endian float32, base64) and a subsample of the test
encodings, loaded by <script src> so that they work from file:// too.

The output depends on the inputs only: building twice gives byte-identical files.

Markup understood in tutorial.md, besides Markdown:
    $...$ and $$...$$              LaTeX math (MathML at build time)
    {{ 2d.test_loss | .2f }}       a value from models/metrics_2d.json, or one derived from the metrics
                                   (see `derived_facts`), or vae_3d.NAME, a constant of code/vae_3d.py;
                                   filters, applied in turn: a format spec (formats), `abs`, `word:neg:pos`
                                   (the first word if the value is < 0, else the second), `tex` (keep "-",
                                   not the typographic minus "−", for use inside math)
    [[fig latent2D]]               a link "Figure N" to that figure
    ::: figure NAME.png ... :::    a figure with a caption (body: `alt: ...` line, then the caption)
    ::: figure-row A.png B.png ... one figure of several images (`sub: a | b | c` line for their labels)
    ::: explorer MODEL ... :::     a live latent explorer (body: `fallback: FIGURE` line, then the caption)
    ::: results-table ... :::      the results table (body: `seed MODEL: loss recon kl` lines, the
                                   seed tutorial's reported numbers, quoted beside ours)
    ::: runs-table :::             the training runs' settings and timings
    ::: main-block code/FILE.py    the `if __name__ == "__main__":` block of a script, as a listing
"""

import argparse
import ast
import base64
import difflib
import html
import json
import math
import os
import re
import string
import struct
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGE_DIR = REPO_ROOT / "page"

# The three models, in the order of the page.
MODELS = {
    "2d": "2-D latent space",
    "3d": "3-D latent space",
    "correlated": "correlated prior",
}
SHORT_NAMES = {"2d": "2-D", "3d": "3-D", "correlated": "correlated"}  # the tables' row headers
EXPLORER_DIR = "assets/explorer"
EXPLORER_POINTS = 3000  # test encodings drawn in each explorer
DIGIT_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]  # Matplotlib's tab10
MISSING = "⟨missing⟩"


class BuildError(Exception):
    """The page cannot be built; the message says which input is missing or wrong."""


class Inputs:
    """The input files under `root`, remembering every one that is missing."""

    def __init__(self, root):
        self.root = Path(root)
        self.missing = []

    def path(self, relative):
        """root/relative, or None (and remembered as missing) if there is no such file."""
        path = self.root / relative
        if path.is_file():
            return path
        if relative not in self.missing:
            self.missing.append(relative)
        return None


# ---------------------------------------------------------------------------------------------
# Metrics and the values the text may quote


def load_metrics(inputs):
    """{model: metrics dict, or None if models/metrics_<model>.json is missing}."""
    metrics = {}
    for name in MODELS:
        path = inputs.path(f"models/metrics_{name}.json")
        metrics[name] = json.loads(path.read_text()) if path else None
    return metrics


def derived_facts(metrics):
    """The values {{ ... }} may name: every metric, plus a few computed from them."""
    facts = {"explorer": {"points": EXPLORER_POINTS}}
    for name, m in metrics.items():
        if m is None:
            continue
        m = dict(m)
        per_epoch = sorted(m["seconds_per_epoch"])
        middle = len(per_epoch) // 2
        m["seconds_per_epoch_median"] = (
            per_epoch[middle] if len(per_epoch) % 2 else (per_epoch[middle - 1] + per_epoch[middle]) / 2
        )
        m["minutes_training"] = m["seconds_training"] / 60
        m["minutes_total"] = m["seconds_total"] / 60
        if "prior_covariance" in m:
            sigma = np.asarray(m["prior_covariance"], dtype=np.float64)
            m["prior_cholesky"] = np.linalg.cholesky(sigma).tolist()
            m["prior_log_det"] = float(np.linalg.slogdet(sigma)[1])
        facts[name] = m
    if metrics.get("2d") and metrics.get("3d"):
        facts["diff"] = {
            key: metrics["3d"][f"test_{key}"] - metrics["2d"][f"test_{key}"]
            for key in ("loss", "reconstruction", "kl")
        }
    if metrics.get("2d") and metrics.get("correlated"):
        facts["diff_correlated"] = {
            key: metrics["correlated"][f"test_{key}"] - metrics["2d"][f"test_{key}"]
            for key in ("loss", "reconstruction", "kl")
        }
    return facts


def script_constants(inputs, relative):
    """The module-level `NAME = literal` constants of a script (e.g. SLICES in code/vae_3d.py), or {}."""
    path = inputs.path(relative)
    if path is None:
        return {}
    constants = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return constants


def lookup(facts, dotted):
    """facts["a"]["b"][0] for "a.b.0"; KeyError naming the path if there is none."""
    value = facts
    for part in dotted.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(dotted)
    return value


def format_value(value, filters):
    """Apply the filters of a {{ path | filter | ... }} in turn; the last one formats."""
    unicode_minus = "tex" not in filters
    for spec in filters:
        if spec == "tex":
            continue
        if spec == "abs":
            value = abs(value)
        elif spec.startswith("word:"):
            negative, positive = spec[len("word:"):].split(":")
            value = negative if value < 0 else positive
        else:
            text = format(value, spec)
            return text.replace("-", "−") if unicode_minus and isinstance(value, (int, float)) else text
    if isinstance(value, float):
        text = format(value, "g")
        return text.replace("-", "−") if unicode_minus else text
    return str(value)


PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*((?:\|\s*[^|}]+?\s*)*)\}\}")


def fill_placeholders(text, facts, metrics):
    """Replace every {{ path | filters }} with its formatted value."""

    def replace(match):
        path = match.group(1)
        filters = [f.strip() for f in match.group(2).split("|")[1:]]
        try:
            return format_value(lookup(facts, path), filters)
        except KeyError:
            model = path.split(".")[0]
            if ((model in MODELS and metrics.get(model) is None) or (model.startswith("diff") and model not in facts)
                    or (model == "vae_3d" and not facts["vae_3d"])):
                return MISSING  # its metrics file is missing: the build reports that below
            raise BuildError(f"page/tutorial.md: {{{{ {path} }}}} names no value "
                             "(see models/metrics_*.json and `derived_facts`)")

    return PLACEHOLDER.sub(replace, text)


# ---------------------------------------------------------------------------------------------
# Math: LaTeX → MathML, kept away from Markdown meanwhile


def latex_to_mathml(latex, display):
    from latex2mathml.converter import convert

    mathml = convert(latex.strip(), display="block" if display else "inline")
    # latex2mathml writes \sim as a tilde identifier; it is the relation ∼.
    mathml = mathml.replace("<mi>&#x0007E;</mi>", "<mo>&#x0223C;</mo>")
    # \ln is an operator name: a thin space after it, as TeX puts, unless a parenthesis follows.
    mathml = re.sub(r"<mi>ln</mi>(?!<mo[^>]*>(?:\(|&#x00028;))", '<mi>ln</mi><mspace width="0.167em" />', mathml)
    # Keep the TeX source as an annotation (not displayed; copied by some readers and tools).
    opening = mathml.index(">") + 1
    closing = mathml.rindex("</math>")
    annotation = f'<annotation encoding="application/x-tex">{html.escape(latex.strip(), quote=False)}</annotation>'
    return f"{mathml[:opening]}<semantics>{mathml[opening:closing]}{annotation}</semantics></math>"


MATH_TOKEN = "MATHxPHx{}xEND"
MATH_TOKEN_PATTERN = re.compile(r"MATHxPHx(\d+)xEND")
CODE_OR_MATH = re.compile(
    r"(?P<fence>^```.*?^```[ \t]*$)"  # fenced code block
    r"|(?P<code>`[^`\n]+`)"  # inline code
    r"|\$\$(?P<display>.+?)\$\$"  # display math
    r"|(?<![\\$\w])\$(?P<inline>[^\s$](?:[^$\n]*?[^\s$])?)\$(?!\w)",  # inline math
    re.DOTALL | re.MULTILINE,
)


def extract_math(text, sources=None):
    """Replace each $...$ / $$...$$ outside code by a token; return (text, [MathML, ...]).

    With a list `sources`, the TeX of each formula is appended to it (see `plain_text`).
    """
    formulas = []

    def replace(match):
        if match.group("fence") or match.group("code"):
            return match.group(0)
        display = match.group("display") is not None
        latex = match.group("display" if display else "inline")
        formulas.append(latex_to_mathml(latex, display))
        if sources is not None:
            sources.append(latex)
        token = MATH_TOKEN.format(len(formulas) - 1)
        return f"\n\n{token}\n\n" if display else token

    return CODE_OR_MATH.sub(replace, text), formulas


def plain_text(text, sources):
    """`text` with its math tokens replaced by a readable plain form of their TeX, for attributes."""

    def plain(match):
        latex = sources[int(match.group(1))]
        latex = re.sub(r"\\([A-Za-z]+)", lambda m: GREEK.get(m.group(1), m.group(1)), latex)
        return re.sub(r"[{}_^\\]", "", latex).replace("-", "−").strip()

    return MATH_TOKEN_PATTERN.sub(plain, text)


GREEK = {"mu": "μ", "sigma": "σ", "Sigma": "Σ", "varepsilon": "ε", "epsilon": "ε", "beta": "β"}


def restore_math(html_text, formulas):
    """Put the MathML back; a display formula alone in its paragraph gets a box that scrolls sideways
    on narrow screens rather than overflowing."""
    html_text = re.sub(r"<p>\s*(MATHxPHx\d+xEND)\s*</p>", r'<div class="math-display">\1</div>', html_text)
    return MATH_TOKEN_PATTERN.sub(lambda m: formulas[int(m.group(1))], html_text)


# ---------------------------------------------------------------------------------------------
# Markdown and the ::: directives


def new_markdown():
    import markdown

    return markdown.Markdown(
        extensions=["tables", "fenced_code", "toc", "attr_list", "sane_lists"],
        extension_configs={"toc": {"permalink": False}},
        output_format="html",
    )


def inline_markdown(text):
    """Markdown for a caption: one paragraph, without its <p>."""
    rendered = new_markdown().convert(text.strip())
    return re.sub(r"^<p>(.*)</p>$", r"\1", rendered, flags=re.DOTALL)


def png_size(path):
    """(width, height) from a PNG's header."""
    with open(path, "rb") as file:
        header = file.read(24)
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise BuildError(f"{path} is not a PNG file")
    return struct.unpack(">II", header[16:24])


DIRECTIVE = re.compile(r"^::: *(?P<name>[\w-]+)(?P<args>[^\n]*)\n(?P<body>.*?)^:::[ \t]*$", re.DOTALL | re.MULTILINE)


def split_body(body, keys):
    """Leading `key: value` lines of a directive's body (for the given keys), and the rest."""
    fields = {}
    lines = body.strip("\n").split("\n")
    while lines and re.match(rf"^({'|'.join(keys)}):", lines[0]):
        key, value = lines.pop(0).split(":", 1)
        fields[key] = value.strip()
    return fields, "\n".join(lines).strip()


class Page:
    """Turns tutorial.md into the page's main HTML."""

    def __init__(self, inputs, metrics, facts, explorers, tex_sources):
        self.inputs = inputs
        self.tex_sources = tex_sources
        self.metrics = metrics
        self.facts = facts
        self.explorers = explorers  # {model: explorer data dict or None}
        self.figure_numbers = {}
        self.explorer_numbers = {}

    def number_figures(self, text):
        for match in DIRECTIVE.finditer(text):
            if match.group("name") in ("figure", "figure-row"):
                key = figure_key(match.group("args").split())
                self.figure_numbers[key] = len(self.figure_numbers) + 1
            elif match.group("name") == "explorer":
                self.explorer_numbers[match.group("args").strip()] = len(self.explorer_numbers) + 1

    def figure_link(self, match):
        key = match.group(1)
        if key not in self.figure_numbers:
            raise BuildError(f"page/tutorial.md: [[fig {key}]] refers to no figure")
        return f"[Figure {self.figure_numbers[key]}](#fig-{key})"

    def render(self, text):
        self.number_figures(text)
        text = re.sub(r"\[\[fig ([\w-]+)\]\]", self.figure_link, text)
        text = DIRECTIVE.sub(self.directive, text)
        return text

    def directive(self, match):
        name, args, body = match.group("name"), match.group("args").split(), match.group("body")
        handler = {
            "figure": self.figure,
            "figure-row": self.figure,
            "explorer": self.explorer,
            "results-table": self.results_table,
            "runs-table": self.runs_table,
            "main-block": self.main_block,
        }.get(name)
        if handler is None:
            raise BuildError(f"page/tutorial.md: unknown directive '::: {name}'")
        return "\n\n" + handler(args, body).strip() + "\n\n"

    def image(self, filename, alt):
        relative = f"assets/{filename}"
        path = self.inputs.path(relative)
        if path is None:
            return f'<div class="missing-input">missing input: {html.escape(relative)}</div>'
        width, height = png_size(path)
        return (f'<a class="figure-image" href="{relative}"><img src="{relative}" alt="{html.escape(alt)}" '
                f'width="{width}" height="{height}"></a>')

    def figure(self, args, body):
        fields, caption = split_body(body, ["alt", "sub"])
        key = figure_key(args)
        number = self.figure_numbers[key]
        alt = plain_text(fields.get("alt", ""), self.tex_sources)
        label = f'<span class="figure-label">Figure {number}.</span> '
        if len(args) == 1:
            content = self.image(args[0], alt)
            classes = "figure"
        else:
            subs = [s.strip() for s in fields.get("sub", "").split("|")] if "sub" in fields else [""] * len(args)
            if len(subs) != len(args):
                raise BuildError(f"page/tutorial.md: figure-row {key} has {len(args)} images, {len(subs)} sub labels")
            items = "\n".join(
                f'<div class="figure-row-item">'
                f'{self.image(filename, f"{alt} ({plain_text(sub, self.tex_sources)})" if sub else alt)}'
                f'<div class="figure-sub">{inline_markdown(sub)}</div></div>'
                for filename, sub in zip(args, subs)
            )
            content = f'<div class="figure-row-items">\n{items}\n</div>'
            classes = "figure figure-row"
        return (f'<figure class="{classes}" id="fig-{key}">\n{content}\n'
                f"<figcaption>{label}{inline_markdown(caption)}</figcaption>\n</figure>")

    def explorer(self, args, body):
        (model,) = args
        if model not in MODELS:
            raise BuildError(f"page/tutorial.md: explorer for unknown model {model!r}")
        fields, caption = split_body(body, ["fallback"])
        data = self.explorers.get(model)
        number = self.explorer_numbers[model]
        fallback = fields.get("fallback")
        fallback_link = (f' <a href="#fig-{fallback}">Figure {self.figure_numbers[fallback]}</a> shows the same '
                         f"decoder on a fixed grid." if fallback else "")
        legend = "".join(
            f'<li><span class="swatch" style="background:{color}"></span>{digit}</li>'
            for digit, color in enumerate(DIGIT_COLORS)
        )
        if model == "correlated":
            legend += ('<li class="legend-line"><span class="line solid"></span>prior 1σ</li>'
                       '<li class="legend-line"><span class="line dashed"></span>prior 2σ</li>')
        latent_dim = data["latent_dim"] if data else (self.metrics[model] or {}).get("latent_dim", 2)
        slider = ""
        if latent_dim >= 3:
            extent = data["view"]["slice_extent"] if data else 3.0
            slider = (
                '<label class="explorer-slice-label">slice <span class="var">z<sub>2</sub></span> = '
                '<output class="explorer-slice-value">0.00</output>\n'
                f'<input class="explorer-slice" type="range" min="{-extent:g}" max="{extent:g}" step="0.05" '
                f'value="0" aria-label="latent coordinate z2 of the slice"></label>'
            )
        if data is None:
            live = (f'<p class="missing-input">missing input for this explorer: '
                    f'models/decoder_{model}.h5 and models/test_encodings_{model}.npz</p>')
        else:
            live = f"""<div class="explorer-live" hidden>
<div class="explorer-body">
<div class="explorer-plane-wrap">
<canvas class="explorer-plane" width="480" height="480" tabindex="0" role="img"
 aria-label="The latent plane (z0, z1) of the {html.escape(MODELS[model])} model, with test digits as colored points. Move the pointer, or use the arrow keys, to decode a point."></canvas>
<ul class="explorer-legend" aria-label="digit colors">{legend}</ul>
</div>
<div class="explorer-side">
<canvas class="explorer-digit" width="28" height="28" role="img" aria-label="the digit decoded at the chosen point"></canvas>
<div class="explorer-readout">
<output class="explorer-z">z = (0.00, 0.00{", 0.00" if latent_dim >= 3 else ""})</output>
{slider}
<p class="explorer-hint">Hover over the plane, or drag or tap on it; arrow keys move the point once it has focus.</p>
</div>
</div>
</div>
</div>"""
        return f"""<figure class="explorer" id="explorer-{model}" data-model="{model}">
{live}
<noscript><p class="explorer-note">This explorer runs the decoder in JavaScript, which is turned off.{fallback_link}</p></noscript>
<figcaption><span class="figure-label">Explorer {number}.</span> {inline_markdown(caption)}</figcaption>
</figure>"""

    def results_table(self, args, body):
        seed = {}
        for line in body.strip().splitlines():
            match = re.match(r"^seed (\w+):\s*(\S+)\s+(\S+)\s+(\S+)\s*$", line.strip())
            if not match:
                raise BuildError(f"page/tutorial.md: results-table line not understood: {line!r}")
            seed[match.group(1)] = match.groups()[1:]
        rows = []
        for name, title in MODELS.items():
            m = self.metrics[name]
            quoted = seed.get(name, ("—", "—", "—"))

            def cell(key, spec, quote=None):
                value = (f'<span class="missing-value">{MISSING}</span>' if m is None else
                         f'<span data-metric="{name}.{key}">{format_value(m[key], [spec])}</span>')
                if quote is not None:
                    value += f'<span class="seed-value">seed ~{html.escape(quote)}</span>'
                return f'<td class="num">{value}</td>'

            rows.append(
                f'<tr><th scope="row">{SHORT_NAMES[name]}</th>{cell("latent_dim", "d")}'
                f'{cell("test_loss", ".2f", quoted[0])}{cell("test_reconstruction", ".2f", quoted[1])}'
                f'{cell("test_kl", ".2f", quoted[2])}</tr>'
            )
        return f"""<div class="table-wrap"><table class="results" id="results-table">
<thead>
<tr><th scope="col">Model</th><th scope="col"><i>k</i></th><th scope="col" class="num">test loss</th><th scope="col" class="num">recon&shy;struction</th><th scope="col" class="num">KL</th></tr>
</thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table></div>"""

    def runs_table(self, args, body):
        rows = []
        for name, title in MODELS.items():
            m = self.metrics[name]
            if m is None:
                rows.append(f'<tr><th scope="row">{SHORT_NAMES[name]}</th>'
                            f'<td colspan="6" class="missing-value">{MISSING} models/metrics_{name}.json</td></tr>')
                continue
            facts = self.facts[name]
            cells = [
                ("epochs", format_value(m["epochs"], ["d"])),
                ("batch_size", format_value(m["batch_size"], ["d"])),
                ("learning_rate", format_value(m["learning_rate"], ["g"])),
                ("beta", format_value(m["beta"], ["g"])),
                ("seconds_training", format_value(m["seconds_training"], [".0f"])),
                ("seconds_per_epoch_median", format_value(facts["seconds_per_epoch_median"], [".1f"])),
            ]
            rows.append(
                f'<tr><th scope="row">{SHORT_NAMES[name]}</th>'
                + "".join(f'<td class="num" data-metric="{name}.{key}">{text}</td>' for key, text in cells)
                + f'<td class="device" data-metric="{name}.device">{html.escape(m["device"])}</td></tr>'
            )
        return f"""<div class="table-wrap"><table class="runs" id="runs-table">
<thead><tr><th scope="col">Model</th><th scope="col" class="num">epochs</th><th scope="col" class="num">batch</th><th scope="col" class="num">learning rate</th><th scope="col" class="num">β</th><th scope="col" class="num">training (s)</th><th scope="col" class="num">s per epoch (median)</th><th scope="col">device</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table></div>"""

    def main_block(self, args, body):
        (relative,) = args
        path = self.inputs.path(relative)
        if path is None:
            return f'<div class="missing-input">missing input: {html.escape(relative)}</div>'
        source = path.read_text()
        for node in ast.parse(source).body:
            if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                    and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
                block = "\n".join(source.splitlines()[node.lineno - 1 : node.end_lineno])
                return (f'<figure class="listing"><pre><code class="language-python">{html.escape(block, quote=False)}'
                        f'</code></pre><figcaption>The end of <a href="{relative}"><code>{relative}</code></a>'
                        f"</figcaption></figure>")
        raise BuildError(f"{relative} has no `if __name__ == \"__main__\":` block")


def figure_key(filenames):
    """The id of a figure: its image's name without .png (the first image's, for a row)."""
    return Path(filenames[0]).stem


# ---------------------------------------------------------------------------------------------
# Explorer data: the decoders' weights and the test encodings


def export_decoder(path, latent_dim):
    """The decoder's layers as [{"in", "out", "activation", "kernel", "bias"}] (base64 float32 LE).

    Supports what build_decoder makes: Dense layers (relu or linear), an Activation (sigmoid)
    after the last one, and a Reshape; anything else is an error naming the layer.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    sys.path.insert(0, str(REPO_ROOT / "code"))
    import vae.model  # noqa: F401  (registers the custom layers)

    model = keras.models.load_model(path, compile=False)
    if tuple(model.input_shape[1:]) != (latent_dim,):
        raise BuildError(f"{path}: input shape {model.input_shape}, but its metrics say latent_dim {latent_dim}")
    layers = []
    for layer in model.layers:
        config = layer.get_config()
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = (np.asarray(w, dtype="<f4") for w in layer.get_weights())
            layers.append({
                "name": layer.name,
                "in": int(kernel.shape[0]),
                "out": int(kernel.shape[1]),
                "activation": config["activation"],
                "kernel": base64.b64encode(np.ascontiguousarray(kernel).tobytes()).decode("ascii"),
                "bias": base64.b64encode(bias.tobytes()).decode("ascii"),
            })
        elif isinstance(layer, keras.layers.Activation) and layers and layers[-1]["activation"] == "linear":
            layers[-1]["activation"] = config["activation"]
        elif isinstance(layer, keras.layers.Reshape) and tuple(config["target_shape"]) == (28, 28, 1):
            continue
        else:
            raise BuildError(f"{path}: layer {layer.name!r} ({type(layer).__name__}) is not one the page's "
                             "JavaScript decoder knows (Dense relu/linear, then Activation sigmoid, Reshape)")
    for layer in layers:
        if layer["activation"] not in ("relu", "linear", "sigmoid"):
            raise BuildError(f"{path}: activation {layer['activation']!r} of {layer['name']!r} is not supported")
    if not layers or layers[-1]["out"] != 784 or layers[-1]["activation"] != "sigmoid":
        raise BuildError(f"{path}: the decoder should end in 784 sigmoid outputs")
    return layers


def round_up_half(value):
    return math.ceil(2 * value) / 2


def explorer_data(inputs, name, metrics):
    """The data of one model's explorer, or None if its decoder or encodings are missing."""
    decoder = inputs.path(f"models/decoder_{name}.h5")
    encodings = inputs.path(f"models/test_encodings_{name}.npz")
    if decoder is None or encodings is None or metrics is None:
        return None
    latent_dim = int(metrics["latent_dim"])
    with np.load(encodings) as npz:
        z_mean = np.asarray(npz["z_mean"], dtype=np.float32)
        labels = np.asarray(npz["labels"]).astype(np.int64)
    if z_mean.ndim != 2 or z_mean.shape[1] != latent_dim or len(labels) != len(z_mean):
        raise BuildError(f"models/test_encodings_{name}.npz: z_mean {z_mean.shape} and labels {labels.shape} "
                         f"do not fit latent_dim {latent_dim}")
    # Every (N / count)-th test image: spread over the whole (unsorted) test set, and no random generator.
    count = min(EXPLORER_POINTS, len(z_mean))
    chosen = (np.arange(count) * len(z_mean)) // count
    points = z_mean[chosen]
    # The plane shows ±extent: enough for 99.5% of the test encodings (and the prior's 2σ ellipse).
    extent = max(3.0, round_up_half(float(np.quantile(np.abs(z_mean[:, :2]), 0.995))))
    view = {"extent": extent}
    if latent_dim >= 3:
        view["slice_extent"] = max(2.0, round_up_half(float(np.quantile(np.abs(z_mean[:, 2]), 0.995))))
    data = {
        "name": name,
        "title": MODELS[name],
        "latent_dim": latent_dim,
        "decoder": f"models/decoder_{name}.h5",
        "encodings": f"models/test_encodings_{name}.npz",
        "view": view,
        "prior_covariance": metrics.get("prior_covariance"),
        "layers": export_decoder(decoder, latent_dim),
        "points": {
            "count": int(count),
            "z": base64.b64encode(np.ascontiguousarray(points, dtype="<f4").tobytes()).decode("ascii"),
            "labels": "".join(str(int(label)) for label in labels[chosen]),
        },
    }
    if data["prior_covariance"] is not None:
        extent_prior = 2 * math.sqrt(max(data["prior_covariance"][i][i] for i in range(2)))
        view["extent"] = max(extent, round_up_half(extent_prior + 0.25))
    return data


def explorer_script(data):
    """assets/explorer/<model>.js: sets window.VAE_MODELS[model]."""
    body = json.dumps(data, indent=1, ensure_ascii=True)
    return (
        f"// Generated by code/build_page.py from {data['decoder']} and {data['encodings']}: do not edit.\n"
        "window.VAE_MODELS = window.VAE_MODELS || {};\n"
        f'window.VAE_MODELS["{data["name"]}"] = {body};\n'
    )


# ---------------------------------------------------------------------------------------------
# The whole page


def table_of_contents(toc_tokens):
    items = "\n".join(
        f'<li><a href="#{token["id"]}">{token["html"]}</a></li>' for token in toc_tokens if token["level"] == 2
    )
    return f'<nav class="toc" aria-label="Contents"><h2 class="toc-title">Contents</h2><ol>\n{items}\n</ol></nav>'


def check_links(html_text, inputs, produced):
    """Every relative href/src must name a file that exists (or that this build writes)."""
    for match in re.finditer(r'(?:href|src)="([^"#:]+)(?:#[^"]*)?"', html_text):
        target = html.unescape(match.group(1))
        if target in produced:
            continue
        inputs.path(target)


def build(root=REPO_ROOT, allow_missing=False):
    """Build the page from the inputs under `root`; returns {relative path: bytes}.

    Raises BuildError naming every missing input, unless `allow_missing`.
    """
    inputs = Inputs(root)
    metrics = load_metrics(inputs)
    facts = derived_facts(metrics)
    facts["vae_3d"] = script_constants(inputs, "code/vae_3d.py")
    explorers = {name: explorer_data(inputs, name, metrics[name]) for name in MODELS}

    source = (PAGE_DIR / "tutorial.md").read_text()
    source = fill_placeholders(source, facts, metrics)
    title_match = re.search(r"^# (.+)$", source, re.MULTILINE)
    if not title_match:
        raise BuildError("page/tutorial.md must start with a '# Title' line")
    title = title_match.group(1).strip()
    # Between the title and the first section: the introductory paragraph, shown in the page's header.
    first_section = source.index("\n## ", title_match.end())
    lede = source[title_match.end():first_section].strip()
    source = source[first_section:]
    tex_sources = []
    source, formulas = extract_math(source, tex_sources)

    page = Page(inputs, metrics, facts, explorers, tex_sources)
    source = page.render(source)
    md = new_markdown()
    content = restore_math(md.convert(source), formulas)
    # Markdown's own tables (no attributes) scroll sideways on narrow screens, like the generated ones.
    content = content.replace("<table>\n", '<div class="table-wrap"><table>\n').replace(
        "</table>\n", "</table></div>\n")
    content = content.replace("</table></div></div>", "</table></div>")
    title_html = restore_math(inline_markdown(extract_math(title)[0]), extract_math(title)[1])
    lede_html = restore_math(inline_markdown(extract_math(lede)[0]), extract_math(lede)[1])

    outputs = {}
    data_scripts = []
    for name, data in explorers.items():
        if data is not None:
            relative = f"{EXPLORER_DIR}/{name}.js"
            outputs[relative] = explorer_script(data).encode("utf-8")
            data_scripts.append(f'<script src="{relative}"></script>')

    template = string.Template((PAGE_DIR / "template.html").read_text())
    index = template.substitute(
        title=html.escape(re.sub(r"<[^>]+>", "", title_html)),
        title_html=title_html,
        lede_html=lede_html,
        toc=table_of_contents(md.toc_tokens),
        content=content,
        css=(PAGE_DIR / "style.css").read_text().strip(),
        data_scripts="\n".join(data_scripts),
        explorer_js=(PAGE_DIR / "explorer.js").read_text().strip(),
    )
    check_links(index, inputs, outputs)
    if inputs.missing and not allow_missing:
        listed = "\n".join(f"  {path}" for path in inputs.missing)
        raise BuildError(f"missing inputs (train the models first, see the README):\n{listed}")
    outputs["index.html"] = index.encode("utf-8")
    return dict(sorted(outputs.items())), inputs.missing


def stale_files(outputs, out_dir):
    """[(relative path, why)] for every output that differs from the file under out_dir, and for
    files in assets/explorer/ that the build would not write."""
    out_dir = Path(out_dir)
    stale = []
    for relative, content in outputs.items():
        path = out_dir / relative
        if not path.is_file():
            stale.append((relative, "missing"))
        elif path.read_bytes() != content:
            stale.append((relative, "differs from a fresh build"))
    explorer_dir = out_dir / EXPLORER_DIR
    if explorer_dir.is_dir():
        for path in sorted(explorer_dir.iterdir()):
            relative = f"{EXPLORER_DIR}/{path.name}"
            if relative not in outputs and not path.name.startswith("."):
                stale.append((relative, "not written by the build (left over)"))
    return stale


def first_difference(old, new, context=2):
    """A few lines of unified diff between two versions of a text file, for --check's report."""
    old_lines = old.decode("utf-8", "replace").splitlines()
    new_lines = new.decode("utf-8", "replace").splitlines()
    diff = list(difflib.unified_diff(old_lines, new_lines, "on disk", "fresh build", n=context, lineterm=""))
    return "\n".join(line[:200] for line in diff[:24])


def write_outputs(outputs, out_dir):
    """Write the files that changed (atomically) and remove left-over explorer files."""
    out_dir = Path(out_dir)
    written = []
    for relative, content in outputs.items():
        path = out_dir / relative
        if path.is_file() and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside it, then renamed over it: never a half-written page (.gitignore has .*.partial.*).
        temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
        try:
            temporary.write_bytes(content)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        written.append(relative)
    explorer_dir = out_dir / EXPLORER_DIR
    if explorer_dir.is_dir():
        for path in sorted(explorer_dir.iterdir()):
            if f"{EXPLORER_DIR}/{path.name}" not in outputs and path.suffix == ".js" and not path.name.startswith("."):
                path.unlink()
                written.append(f"{EXPLORER_DIR}/{path.name} (removed)")
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming each output that is out of date")
    parser.add_argument("--allow-missing", action="store_true",
                        help="development: build even if some models are missing, with visible placeholders")
    parser.add_argument("--inputs", default=str(REPO_ROOT), metavar="DIR",
                        help="the folder holding assets/ and models/ (default: the repository)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write (or --check) index.html and assets/explorer/ under DIR (default: --inputs)")
    args = parser.parse_args(argv)
    out_dir = Path(args.out or args.inputs)
    try:
        outputs, missing = build(args.inputs, allow_missing=args.allow_missing)
    except BuildError as error:
        print(f"build_page: error: {error}", file=sys.stderr)
        return 2
    if missing:
        print("build_page: warning: built with placeholders for missing inputs:\n"
              + "\n".join(f"  {path}" for path in missing), file=sys.stderr)
    if args.check:
        stale = stale_files(outputs, out_dir)
        for relative, why in stale:
            print(f"build_page: stale: {relative} ({why})", file=sys.stderr)
            old = out_dir / relative
            if why.startswith("differs") and relative.endswith(".html"):
                print(first_difference(old.read_bytes(), outputs[relative]), file=sys.stderr)
        if stale:
            print("build_page: run `python code/build_page.py` to rebuild", file=sys.stderr)
            return 1
        print(f"build_page: up to date: {', '.join(outputs)}")
        return 0
    written = write_outputs(outputs, out_dir)
    sizes = ", ".join(f"{relative} ({len(content) / 1e6:.2f} MB)" for relative, content in outputs.items())
    print(f"build_page: {len(written)} file(s) changed; outputs: {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

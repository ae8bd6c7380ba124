"""Build the tutorial page, index.html, from page/, the figures and the trained models.

    python page/build.py                  # write index.html and assets/explorer/*.js
    python page/build.py --check          # write nothing; exit 1, naming each stale file
    python page/build.py --inputs DIR     # read assets/ and models/ from DIR instead

Sources, in page/: tutorial.md (the text: Markdown with LaTeX math, and Jinja2 placeholders such
as {{ two_d.test_loss | num(".2f") }} and calls such as {{ image("latent2D.png", "alt") }}),
template.html, explorer.html, style.css and explorer.js. Inputs: assets/*.png, models/metrics_*.json,
models/likelihood_*.json (written by code/explore.py: ln p(x) beyond the ELBO, posterior widths, holes),
models/decoder_*.h5 and models/test_encodings_*.npz for the models 2d, 3d, correlated and conditional
(the conditional VAE's decoder takes [z, label]), and the source files whose code the page shows
(code/vae_2d.py, ...), read when the page is built.

Outputs: index.html, which opens from disk (file://) with no network: the math is MathML made
here, the CSS and JavaScript are inlined; and assets/explorer/<model>.js, one per model: the
decoder's weights (int8 with one float32 scale per output unit, base64) and a subsample of the
test encodings, loaded by <script src> so that they work from file:// too. The explorers of FOLDED_MODELS sit
in a closed <details>: their script is added to the page only when the reader opens it.

The output depends on the inputs only: building twice gives byte-identical files. The tests
(tests/test_page.py) check the committed page against a build from the committed results: the
figures and models of git HEAD, not those a reader's own run of a script may have rewritten.
"""

import argparse
import ast
import base64
import contextlib
import html
import json
import os
import re
import struct
import sys
import textwrap
from pathlib import Path

import jinja2
import markdown
import numpy as np
from latex2mathml.converter import convert as latex2mathml

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGE_DIR = Path(__file__).resolve().parent
MODELS = {"2d": "2-D latent space", "3d": "3-D latent space", "correlated": "correlated prior",
          "conditional": "conditional"}  # the models with an explorer, and their titles
TEMPLATE_NAMES = {"2d": "two_d", "3d": "three_d", "correlated": "correlated"}  # metrics as named in tutorial.md
# Each explorer's metrics, as named in load_facts' facts: TEMPLATE_NAMES' models (which also have a
# models/likelihood_<model>.json), and the conditional VAE, whose metrics load_facts reads on their own.
EXPLORER_FACTS = {**TEMPLATE_NAMES, "conditional": "conditional"}
FOLDED_MODELS = ("conditional",)  # explorers in a closed <details>, their data loaded only when it is opened
EXPLORER_POINTS = 3000  # test encodings drawn in each explorer
STRIP_COUNT = 8  # digits in an explorer's strip: prior samples, or the steps of a walk between two points
PICKABLE_IMAGES = 50  # test images each explorer ships, to show one with its reconstruction and μ ± 2σ


def load_safely(path):
    """The model in the .h5 file `path`, through vae.saving.load_model_safely (which refuses a Lambda layer or
    a class the project does not make); its refusal is a BuildError naming the file."""
    sys.path.insert(0, str(REPO_ROOT / "code"))
    from vae.saving import load_model_safely

    try:
        return load_model_safely(path)
    except ValueError as error:
        raise BuildError(str(error)) from None


class BuildError(Exception):
    """The page cannot be built; the message says which input is missing or wrong."""


def read_input(root, relative):
    path = Path(root) / relative
    if not path.is_file():
        raise BuildError(f"missing input: {relative} (train the models first, see the README)")
    return path


def read_json(root, relative):
    """The JSON object in the input file `relative`; BuildError naming the file if it is not one."""
    path = read_input(root, relative)
    try:
        data = json.loads(path.read_text())
    except ValueError as error:  # not JSON, or not UTF-8
        raise BuildError(f"{relative} is not valid JSON ({error}); {REPAIR}") from None
    if not isinstance(data, dict):
        raise BuildError(f"{relative} holds a JSON {type(data).__name__}, not an object; {REPAIR}")
    return data


REPAIR = "restore it with `git checkout`, or rerun the script that wrote it"


@contextlib.contextmanager
def reading(relative):
    """Within this block, a missing key or a value of the wrong type in the input file `relative` is one
    BuildError naming the file, not a traceback."""
    try:
        yield
    except KeyError as error:
        raise BuildError(f"{relative} has no {error} (or one of its entries lacks it); {REPAIR}") from None
    except (TypeError, ValueError, IndexError, np.linalg.LinAlgError) as error:
        raise BuildError(f"{relative} holds a value of the wrong type or shape ({error}); {REPAIR}") from None


def require_numbers(data, keys):
    """TypeError unless each of `keys` in `data` is a number (KeyError if one is missing)."""
    for key in keys:
        if isinstance(data[key], bool) or not isinstance(data[key], (int, float)):
            raise TypeError(f"{key} is {data[key]!r}, not a number")


# ---------------------------------------------------------------------------------------------
# Values the text quotes: the metrics, and a few numbers derived from them


def load_facts(root):
    """{name in tutorial.md: value}: each model's metrics (two_d, three_d, correlated) with a few
    derived values, the differences between models, and the constants of code/vae_3d.py."""
    sys.path.insert(0, str(REPO_ROOT / "code"))
    from vae.saving import chapter_script, pending_journals  # no TensorFlow

    journals = pending_journals(Path(root) / "models")
    if journals:
        raise BuildError(f"models/ holds outputs that an interrupted run was still moving into place "
                         f"({journals[0].name}), so they may be a mix of two runs: run python code/"
                         f"{chapter_script(journals[0])} again to finish the move, then build the page")
    facts = {"explorer_points": EXPLORER_POINTS, "pickable_images": PICKABLE_IMAGES, "strip_count": STRIP_COUNT}
    metrics = {}
    for name, alias in TEMPLATE_NAMES.items():
        relative = f"models/metrics_{name}.json"
        m = read_json(root, relative)
        with reading(relative):
            m["seconds_per_epoch_median"] = float(np.median(np.asarray(m["seconds_per_epoch"], dtype=np.float64)))
            m["minutes_training"] = m["seconds_training"] / 60
            kl = [float(value) for value in m["history"]["kl"]]
            m["kl_first"], m["kl_last"] = kl[0], kl[-1]
            m["kl_rises_every_epoch"] = all(b > a for a, b in zip(kl, kl[1:]))
            m["kl_rise_epochs"] = sum(b > a for a, b in zip(kl, kl[1:]))
            if "prior_covariance" in m:
                sigma = np.asarray(m["prior_covariance"], dtype=np.float64)
                m["prior_cholesky"] = np.linalg.cholesky(sigma).tolist()
                m["prior_log_det"] = float(np.linalg.slogdet(sigma)[1])
            require_numbers(m, ("latent_dim", "test_loss", "test_reconstruction", "test_kl"))
            # The KL's two parts (vae/evaluation.py: kl_split): among how many images a code leaves its own
            # image unresolved, e^H(n|z) = N e^(−I(n; z)).
            for split in m["kl_split"].values():
                split["images_unresolved"] = split["images"] * float(np.exp(-split["mutual_information"]))
        # What code/explore.py measured inside the model (models/likelihood_<name>.json): ln p(x) three
        # ways, the posterior widths, the holes, active units.
        inside_relative = f"models/likelihood_{name}.json"
        if not (Path(root) / inside_relative).is_file():
            raise BuildError(f"missing input: {inside_relative} (run `python code/explore.py --model {name} "
                             f"--update-results`)")
        inside = m["inside"] = read_json(root, inside_relative)
        with reading(inside_relative):
            inside["sigma_percent_of_prior"] = [
                100 * s / np.sqrt(v) for s, v in zip(np.asarray(inside["posterior_sigma_median"], dtype=np.float64),
                                                     np.diag(np.asarray(inside["prior_covariance"], dtype=np.float64)))]
        metrics[name] = facts[alias] = m
    three = metrics["3d"]
    with reading("models/metrics_3d.json"):
        three["usage_ratio_min"] = min(float(v) / float(w) for v, w in
                                       zip(three["latent_variance"], three["mean_posterior_variance"]))
    # How many encoded test means fall inside the prior's 1σ and 2σ ellipses (Mahalanobis radius 1, 2).
    correlated = metrics["correlated"]
    z_mean, _ = load_encodings(root, "correlated", correlated["latent_dim"])
    with reading("models/metrics_correlated.json"):
        radius = np.linalg.norm(np.linalg.solve(np.asarray(correlated["prior_cholesky"]), z_mean.T), axis=0)
    correlated["inside_1sigma"] = float(np.mean(radius <= 1))
    correlated["inside_2sigma"] = float(np.mean(radius <= 2))
    facts["gaussian_2d_inside"] = {k: 1 - float(np.exp(-k * k / 2)) for k in (1, 2)}  # 1 − e^(−k²/2)
    for other, alias in [("3d", "diff"), ("correlated", "diff_correlated")]:
        facts[alias] = {key: metrics[other][f"test_{key}"] - metrics["2d"][f"test_{key}"]
                        for key in ("loss", "reconstruction", "kl")}
    facts["vae_3d"] = script_constants(read_input(root, "code/vae_3d.py"))
    facts["pixels"] = pixel_statistics()
    # The 2-D model under three pixel likelihoods (code/compare_likelihoods.py) and the literature's protocol
    # (benchmarks/literature.py).
    for key, relative, entry in [("likelihoods", "models/likelihoods_2d.json", "settings"),
                                 ("literature", "benchmarks/literature.json", None),
                                 # The papers' own networks, reproduced (benchmarks/reproduction.py).
                                 ("reproduction", "benchmarks/reproduction.json", None),
                                 # β from 0 to 16, and posterior collapse in 32 dimensions (code/compare_beta.py).
                                 ("beta_sweep", "models/beta_sweep.json", "betas"),
                                 ("collapse", "models/collapse_32.json", "settings"),
                                 # Each comparison's rankings beyond the spread over seeds (vae/spread.py), and
                                 # the standard against the correlated prior (code/compare_priors.py).
                                 ("likelihood_rankings", "models/likelihoods_2d.json", "rankings"),
                                 ("beta_rankings", "models/beta_sweep.json", "rankings"),
                                 ("collapse_rankings", "models/collapse_32.json", "rankings"),
                                 ("priors", "models/priors_2d.json", "priors"),
                                 ("prior_rankings", "models/priors_2d.json", "rankings"),
                                 # The conditional VAE (code/vae_conditional.py).
                                 ("conditional", "models/metrics_conditional.json", None),
                                 # The 2-D chapter with convolutions on Fashion-MNIST (python code/vae_2d.py
                                 # --dataset fashion_mnist --architecture conv).
                                 ("fashion_conv", "models/metrics_2d_fashion_mnist_conv.json", None),
                                 # Exact ln p(x) of the MNIST and Fashion-MNIST 2-D models on each other's test
                                 # images (python code/compare_datasets.py).
                                 ("out_of_distribution", "models/out_of_distribution.json", None)]:
        data = read_json(root, relative)
        with reading(relative):
            facts[key] = data if entry is None else data[entry]
    with reading("models/metrics_conditional.json"):  # what its explorer reads (explorer_data)
        require_numbers(facts["conditional"], ("latent_dim", "num_classes"))
    # How well the 2-D model's codes tell the class, measured as the conditional script measures its own
    # (vae.evaluation.class_from_code).
    sys.path.insert(0, str(REPO_ROOT / "code"))
    from vae.evaluation import class_from_code

    facts["two_d"]["class_from_code_accuracy"] = class_from_code(*load_encodings(root, "2d", metrics["2d"]["latent_dim"]))
    return facts, metrics


def pixel_statistics():
    """What Bernoulli cross-entropy on grayscale targets cannot remove, from the repository's MNIST test set:
    the share of the non-zero pixels strictly between 0 and 1, and the floor of the reconstruction term,
    Σ over the pixels of the entropy H(x) = −x ln x − (1 − x) ln(1 − x), averaged over the images (nats)."""
    sys.path.insert(0, str(REPO_ROOT / "code"))
    from vae.data import read_idx

    images = read_idx(REPO_ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte.gz", ndim=3)
    x = images.reshape(len(images), -1).astype(np.float64) / 255
    inside = (x > 0) & (x < 1)
    entropy = -(np.where(inside, x * np.log(np.where(inside, x, 1)), 0)
                + np.where(inside, (1 - x) * np.log(np.where(inside, 1 - x, 1)), 0))
    return {"share_between": float(inside.sum() / (x > 0).sum()), "entropy_floor": float(entropy.sum(axis=1).mean()),
            "test_images": len(images)}


def script_constants(path):
    """The module-level `NAME = literal` constants of a script (e.g. SLICES of code/vae_3d.py)."""
    constants = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return constants


def num(value, spec="g"):
    """Jinja filter: format a number, with the typographic minus sign "−"."""
    return format(value, spec).replace("-", "−")


def tex(value, spec="g"):
    """Jinja filter: a number for use inside $...$; a negative one in braces, {-1}, so that MathML
    reads its minus as a sign, without the spaces of a binary minus."""
    text = format(value, spec)
    return f"{{{text}}}" if text.startswith("-") else text


def lower_higher(value):
    """Jinja filter: "lower" for a negative difference, "higher" otherwise."""
    return "lower" if value < 0 else "higher"


def apart(verdict, a, b):
    """Jinja filter on a comparison's ranking of one metric (models/*.json "rankings", vae/spread.py): whether
    settings `a` and `b` differ beyond the spread over their seeds, e.g.
    {% if beta_rankings.test_elbo | apart("0.5", "1") %}. A pair the ranking does not hold is an error."""
    for pair in verdict["pairs"]:
        if {pair["better"], pair["worse"]} == {a, b}:
            return pair["beyond_spread"]
    raise BuildError(f"the ranking of {verdict['metric']} has no pair {a!r}, {b!r} (it has {verdict['order']})")


# ---------------------------------------------------------------------------------------------
# Math: LaTeX → MathML, kept away from Markdown meanwhile


def mathml_row(latex, display=False):
    """The MathML of a LaTeX fragment, without its <math> element; `display` puts limits under and over ∑."""
    if not latex.strip():
        return ""
    converted = latex2mathml(latex.strip(), display="block" if display else "inline")
    return converted[converted.index(">") + 1:converted.rindex("</math>")]


def aligned_mathml(body):
    """\\begin{aligned} rows \\\\ of cells & ... \\end{aligned} as an <mtable> whose odd columns are
    right-aligned and even ones left-aligned (latex2mathml does not lay out `aligned`)."""
    rows = []
    for row in re.split(r"\\\\", body):
        cells = row.split("&")
        # "{}" before a left cell that starts with "=" or "+" keeps it a binary operator, with its spaces.
        tds = "".join(f"<mtd>{mathml_row(cell if i % 2 == 0 else '{}' + cell, display=True)}</mtd>"
                      for i, cell in enumerate(cells))
        rows.append(f"<mtr>{tds}</mtr>")
    return f'<mtable class="aligned" displaystyle="true">{"".join(rows)}</mtable>'


def latex_to_mathml(latex, display):
    """One formula as a <math> element, with the TeX kept as an annotation."""
    latex = latex.strip()
    aligned = re.fullmatch(r"\\begin\{aligned\}(.*)\\end\{aligned\}", latex, re.DOTALL)
    body = aligned_mathml(aligned.group(1)) if aligned else mathml_row(latex, display)
    # latex2mathml writes \sim as a tilde identifier; it is the relation ∼.
    body = body.replace("<mi>&#x0007E;</mi>", "<mo>&#x0223C;</mo>")
    # \operatorname{diag}, \det ...: names of functions, upright identifiers rather than spaced operators ...
    body = re.sub(r'<mo(?: movablelimits="true")?>([a-z]{2,})</mo>', r"<mi>\1</mi>", body)
    # ... followed by a thin space, as TeX puts, unless a parenthesis follows.
    body = re.sub(r"<mi>([a-z]{2,})</mi>(?!<mo[^>]*>(?:\(|&#x00028;))", r'<mi>\1</mi><mspace width="0.167em" />', body)
    # The transpose sign ⊤ is an identifier, not a spaced binary operator.
    body = body.replace("<mo>&#x022A4;</mo>", '<mi mathvariant="normal">&#x022A4;</mi>')
    # The brace under a term stretches to the term's width.
    body = body.replace("<mo>&#x023DF;</mo>", '<mo stretchy="true">&#x023DF;</mo>')
    annotation = f'<annotation encoding="application/x-tex">{html.escape(latex, quote=False)}</annotation>'
    mode = "block" if display else "inline"
    return (f'<math xmlns="http://www.w3.org/1998/Math/MathML" display="{mode}"><semantics><mrow>{body}</mrow>'
            f"{annotation}</semantics></math>")


MATH_TOKEN = "MATHxPHx{}xEND"
MATH_TOKEN_PATTERN = re.compile(r"MATHxPHx(\d+)xEND")
CODE_OR_MATH = re.compile(
    r"(?P<fence>^```.*?^```[ \t]*$)"  # fenced code block
    r"|(?P<code>`[^`\n]+`)"  # inline code
    r"|\$\$(?P<display>.+?)\$\$"  # display math
    r"|(?<![\\$\w])\$(?P<inline>[^\s$](?:[^$\n]*?[^\s$])?)\$(?!\w)",  # inline math
    re.DOTALL | re.MULTILINE,
)


def extract_math(text):
    """Replace each $...$ / $$...$$ outside code by a token; return (text, [MathML, ...])."""
    formulas = []

    def replace(match):
        if match.group("fence") or match.group("code"):
            return match.group(0)
        display = match.group("display") is not None
        formulas.append(latex_to_mathml(match.group("display" if display else "inline"), display))
        token = MATH_TOKEN.format(len(formulas) - 1)
        if not display:
            return token
        # A display formula becomes a paragraph of its own, indented like its line (inside a list item).
        line_start = match.string.rfind("\n", 0, match.start()) + 1
        indent = match.string[line_start:match.start()]
        indent = indent if not indent.strip() else ""
        return f"\n\n{indent}{token}\n\n{indent}"

    return CODE_OR_MATH.sub(replace, text), formulas


def restore_math(html_text, formulas):
    """Put the MathML back; a display formula gets its own block."""
    html_text = re.sub(r"<p>\s*(MATHxPHx\d+xEND)\s*</p>", r'<div class="math-display">\1</div>', html_text)
    # Punctuation right after an inline formula stays on its line: on a phone "$x$," must not wrap before ",".
    html_text = re.sub(r"(MATHxPHx\d+xEND)([.,;:!?)\]’”]+)", r'<span class="nowrap">\1\2</span>', html_text)
    return MATH_TOKEN_PATTERN.sub(lambda m: formulas[int(m.group(1))], html_text)


# ---------------------------------------------------------------------------------------------
# What tutorial.md calls: figures, code listings, explorers


def png_size(path):
    """(width, height, pixels per inch) of a PNG, from its IHDR and pHYs chunks (96 ppi without pHYs)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise BuildError(f"{path} is not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    ppi = 96.0
    at = data.find(b"pHYs")
    if at > 0:
        x_per_meter, _, unit = struct.unpack(">IIB", data[at + 4:at + 13])
        if unit == 1:
            ppi = x_per_meter * 0.0254
    return width, height, ppi


def find_definition(path, name):
    """The ast node of class or function `name` ("Class.method" for a method) in the file at `path`."""
    body = ast.parse(path.read_text()).body
    node = None
    for part in name.split("."):
        node = next((n for n in body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == part), None)
        if node is None:
            raise BuildError(f"{path.name} defines no {name!r} (named in page/tutorial.md)")
        body = node.body
    return node


def definition_lines(path, name):
    """(first line, last line, dedented source) of `name` in `path`, decorators included."""
    node = find_definition(path, name)
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    lines = path.read_text().splitlines()[first - 1:node.end_lineno]
    return first, node.end_lineno, textwrap.dedent("\n".join(lines))


class Page:
    """The functions tutorial.md calls, with what they need: the inputs' folder and figure numbers."""

    def __init__(self, root, source_text, facts):
        self.root = Path(root)
        self.facts = facts
        figures = re.findall(r'label\("([\w.-]+)"\)', source_text)  # the figures, in the order of the text
        self.figure_numbers = {key: number for number, key in enumerate(dict.fromkeys(figures), start=1)}
        self.explorer_numbers = {}
        self.explorer_template = None
        self.explorer_scripts = {}  # {model: the bytes of assets/explorer/<model>.js}, set by `build`
        self.timelines = {}  # {model: its timeline's data}, for each timeline() the text calls

    def fig(self, key):
        """A link "Figure N" to the figure labelled `key`."""
        if key not in self.figure_numbers:
            raise BuildError(f"page/tutorial.md: fig({key!r}) names no figure")
        return f"[Figure {self.figure_numbers[key]}](#fig-{key})"

    def label(self, key):
        """The "Figure N." that starts the caption of figure `key` (its element has id="fig-key")."""
        return f'<span class="figure-label">Figure {self.figure_numbers[key]}.</span>'

    def image(self, filename, alt):
        """An <img> of assets/filename, sized in CSS pixels from its pixels and density, loaded lazily."""
        relative = f"assets/{filename}"
        width, height, ppi = png_size(read_input(self.root, relative))
        density = max(1, round(ppi / 100))  # figures.py saves 200 ppi for 2 image pixels per CSS pixel
        return (f'<a class="figure-image" href="{relative}"><img src="{relative}" alt="{html.escape(alt)}" '
                f'width="{round(width / density)}" height="{round(height / density)}" loading="lazy" '
                f'decoding="async" data-density="{density}" style="--w: {round(width / density)}px"></a>')

    def source(self, relative, name):
        """The exact source of class or function `name` in file `relative`, as a listing."""
        first, last, code = definition_lines(read_input(self.root, relative), name)
        return (f'<figure class="listing"><pre><code class="language-python" data-source="{relative}" '
                f'data-name="{name}" data-lines="{first}-{last}">{html.escape(code, quote=False)}</code></pre>'
                f'<figcaption><a href="{relative}"><code>{relative}</code></a>, lines {first}–{last}: '
                f"<code>{name}</code></figcaption></figure>")

    def main_block(self, relative):
        """The `if __name__ == "__main__":` block of a script, as a listing."""
        source = read_input(self.root, relative).read_text()
        for node in ast.parse(source).body:
            if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
                block = "\n".join(source.splitlines()[node.lineno - 1:node.end_lineno])
                return (f'<figure class="listing"><pre><code class="language-python" data-source="{relative}" '
                        f'data-lines="{node.lineno}-{node.end_lineno}">{html.escape(block, quote=False)}</code></pre>'
                        f'<figcaption>The end of <a href="{relative}"><code>{relative}</code></a>, lines '
                        f"{node.lineno}–{node.end_lineno}</figcaption></figure>")
        raise BuildError(f'{relative} has no `if __name__ == "__main__":` block')

    def explorer(self, model, fallback, caption):
        """A live latent explorer of `model`, with a link to the static figure `fallback`. A conditional model's
        explorer has a class picker; one of FOLDED_MODELS sits in a closed <details> that says how much its
        data weigh, and whose opening loads them."""
        if model not in MODELS:
            raise BuildError(f"page/tutorial.md: explorer({model!r}): no such model (one of {', '.join(MODELS)})")
        self.explorer_numbers.setdefault(model, len(self.explorer_numbers) + 1)
        metrics = self.facts[EXPLORER_FACTS[model]]
        return self.explorer_template.render(
            model=model, title=MODELS[model], number=self.explorer_numbers[model], latent_dim=metrics["latent_dim"],
            fallback=fallback, fallback_number=self.figure_numbers[fallback], caption=caption,
            prior=metrics.get("prior_covariance") is not None,
            prior_text="N(0, Σ) as z = L ε" if metrics.get("prior_covariance") is not None else "N(0, I)",
            strip_count=STRIP_COUNT, pickable=PICKABLE_IMAGES,
            slice_extent=explorer_view(self.root, model, metrics).get("slice_extent", 0),
            num_classes=metrics.get("num_classes") or 0, label=default_label(metrics),
            folded=model in FOLDED_MODELS, script=f"assets/explorer/{model}.js",
            script_kb=round(len(self.explorer_scripts[model]) / 1000),
            prior_inside={k: round(100 * share) for k, share in self.facts["gaussian_2d_inside"].items()},
            pad=model == PAD_MODEL, pad_script=f"assets/explorer/encoder_{PAD_MODEL}.js",
            pad_kb=round(len(self.explorer_scripts.get(f"encoder_{PAD_MODEL}", b"")) / 1000),
        )

    def timeline(self, model, caption):
        """The training of `model` played back (page/timeline.js): the codes of a fixed set of test images
        and the loss curve, epoch by epoch, from models/timeline_<model>.npz. Its data,
        assets/explorer/timeline_<model>.js, load only when the reader scrolls near it."""
        if model not in TIMELINE_MODELS:
            raise BuildError(f"page/tutorial.md: timeline({model!r}): no timeline for it (one of "
                             f"{', '.join(TIMELINE_MODELS)})")
        data = self.timelines.setdefault(model, timeline_data(self.root, model))
        return timeline_html(model, data, len(timeline_script(data)), caption)


# ---------------------------------------------------------------------------------------------
# The timeline: the codes of 2,000 test images after every epoch of the 2-D model (code/vae/timeline.py),
# played back by page/timeline.js from assets/explorer/timeline_<model>.js

TIMELINE_MODELS = ("2d",)
TIMELINE_LOSSES = ("loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl")


def timeline_data(root, name):
    """The data page/timeline.js plays: the epochs, the codes (E, N, 2) as int16 × `scale`, the labels, the
    losses per epoch (nats per image), and the square view ±extent that holds 99.5% of every epoch's codes."""
    relative = f"models/timeline_{name}.npz"
    try:
        with np.load(read_input(root, relative), allow_pickle=False) as npz:
            epochs, z, labels = npz["epochs"], np.asarray(npz["z_mean"], np.float64), npz["labels"]
            losses = {key: [round(float(v), 4) for v in npz[key]] for key in TIMELINE_LOSSES if key in npz.files}
    except (OSError, ValueError, KeyError) as error:
        raise BuildError(f"{relative}: not a readable timeline ({type(error).__name__}: {error}); {REPAIR}") from None
    if z.ndim != 3 or z.shape[0] != len(epochs) or z.shape[1] != len(labels) or z.shape[2] < 2 or not len(epochs) \
            or not np.isfinite(z).all() or any(len(values) != len(epochs) for values in losses.values()):
        raise BuildError(f"{relative}: its arrays do not fit together (z_mean {z.shape}, {len(epochs)} epochs, "
                         f"{len(labels)} labels); {REPAIR}")
    z = z[:, :, :2]
    scale = max(float(np.abs(z).max()), 1e-6) / 32767
    extent = round_up_half(max(float(np.percentile(np.abs(codes), 99.5)) for codes in z))
    return {
        "name": name,
        "epochs": [int(epoch) for epoch in epochs],
        "count": int(z.shape[1]),
        "extent": max(extent, 2.5),  # at least the prior's 2σ circle
        "scale": scale,
        "z": base64.b64encode(np.round(z / scale).astype("<i2").tobytes()).decode("ascii"),
        "labels": "".join(str(int(label) % 10) for label in labels),
        "losses": losses,
    }


def timeline_script(data):
    """assets/explorer/timeline_<model>.js: sets window.VAE_TIMELINES[model]."""
    return (f"// Generated by page/build.py from models/timeline_{data['name']}.npz: do not edit.\n"
            "window.VAE_TIMELINES = window.VAE_TIMELINES || {};\n"
            f'window.VAE_TIMELINES["{data["name"]}"] = {json.dumps(data, separators=(",", ":"))};\n').encode()


def timeline_html(name, data, script_bytes, caption):
    """The timeline's figure: a plane and a loss curve (canvases drawn by page/timeline.js), a play button and
    an epoch slider; without JavaScript, a link to the still figure assets/timeline_<model>.png."""
    first, last, count = data["epochs"][0], data["epochs"][-1], len(data["epochs"])
    kb = round(script_bytes / 1000)
    return f"""<figure class="timeline" id="timeline-{name}" data-timeline="{name}" data-timeline-script="assets/explorer/timeline_{name}.js">
<div class="timeline-live" hidden>
<div class="timeline-body">
<canvas class="timeline-plane" width="480" height="480" role="img" aria-label="The posterior means of {data['count']:,} test images after the chosen epoch, colored by their digit"></canvas>
<div class="timeline-side">
<canvas class="timeline-curve" width="480" height="300" role="img" aria-label="The training and test loss of every epoch, the chosen epoch marked"></canvas>
<div class="timeline-controls">
<button type="button" class="timeline-play" aria-pressed="false">Play</button>
<label class="timeline-epoch-label" for="timeline-{name}-epoch">Epoch</label>
<input class="timeline-epoch" id="timeline-{name}-epoch" type="range" min="0" max="{count - 1}" step="1" value="{count - 1}" aria-valuetext="epoch {last}">
<output class="timeline-epoch-value" for="timeline-{name}-epoch">{last}</output>
</div>
<p class="timeline-readout" aria-live="polite"></p>
</div>
</div>
</div>
<p class="timeline-wait" hidden>The recorded training, epochs {first} to {last} ({kb} kB), loads when you scroll here.</p>
<noscript><p class="explorer-note">This playback runs in JavaScript, which is turned off. <a href="assets/timeline_{name}.png">A still version</a> shows the plane at a few epochs.</p></noscript>
<figcaption markdown="span"><span class="figure-label">Training, replayed.</span> {caption}</figcaption>
</figure>"""


# ---------------------------------------------------------------------------------------------
# Explorer data: the decoders' weights, quantized, and the test encodings


def round_up_half(value):
    return float(np.ceil(2 * value) / 2)


def load_encodings(root, name, latent_dim):
    with np.load(read_input(root, f"models/test_encodings_{name}.npz")) as npz:
        z_mean, labels = np.asarray(npz["z_mean"], dtype=np.float32), np.asarray(npz["labels"]).astype(np.int64)
    if z_mean.ndim != 2 or z_mean.shape[1] != latent_dim or len(labels) != len(z_mean):
        raise BuildError(f"models/test_encodings_{name}.npz: z_mean {z_mean.shape} and labels {labels.shape} "
                         f"do not fit latent_dim {latent_dim}")
    return z_mean, labels


def explorer_view(root, name, metrics):
    """The explorer's plane, ±extent: enough for 99.5% of the test encodings and the prior's 2σ ellipse;
    for 3-D, the slider's range ±slice_extent."""
    z_mean, _ = load_encodings(root, name, metrics["latent_dim"])
    extent = max(3.0, round_up_half(float(np.quantile(np.abs(z_mean[:, :2]), 0.995))))
    if metrics.get("prior_covariance") is not None:
        sigma = np.asarray(metrics["prior_covariance"])
        extent = max(extent, round_up_half(2 * np.sqrt(max(sigma[0, 0], sigma[1, 1])) + 0.25))
    view = {"extent": extent}
    if metrics["latent_dim"] >= 3:
        view["slice_extent"] = max(2.0, round_up_half(float(np.quantile(np.abs(z_mean[:, 2]), 0.995))))
    return view


def decoder_layers(path, latent_dim, num_classes=None):
    """The decoder's Dense layers as [(kernel (in, out) float64, bias (out,), activation)].

    Supports what build_decoder makes: Dense layers (relu or linear), then an Activation (sigmoid)
    and a Reshape; anything else is an error naming the layer. With `num_classes`, the conditional
    decoder of build_decoder(..., num_classes): inputs [z, label], the label one-hot (CategoryEncoding)
    and joined after z (Concatenate); the first kernel's rows are then [z0, z1, ..., one-hot 0..num_classes-1].
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    sys.path.insert(0, str(REPO_ROOT / "code"))

    model = load_safely(path)
    expected = [(None, latent_dim), (None,)] if num_classes else (None, latent_dim)
    shapes = [tuple(shape) for shape in model.input_shape] if num_classes else tuple(model.input_shape)
    if shapes != expected:
        raise BuildError(f"{path}: input shape {model.input_shape}, but its metrics say latent_dim {latent_dim}"
                         + (f" and num_classes {num_classes} (inputs [z, label])" if num_classes else ""))
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
            layers.append([kernel, bias, layer.get_config()["activation"]])
        elif isinstance(layer, keras.layers.Activation) and layers and layers[-1][2] == "linear":
            layers[-1][2] = layer.get_config()["activation"]
        elif num_classes and not layers and isinstance(layer, keras.layers.CategoryEncoding):
            if layer.get_config()["num_tokens"] != num_classes or layer.get_config()["output_mode"] != "one_hot":
                raise BuildError(f"{path}: layer {layer.name!r} should one-hot {num_classes} classes")
        elif num_classes and not layers and isinstance(layer, keras.layers.Concatenate):
            joined = [type(tensor._keras_history.operation).__name__ for tensor in layer.input]
            if layer.input[0] is not model.inputs[0] or joined[1:] != ["CategoryEncoding"]:
                raise BuildError(f"{path}: layer {layer.name!r} should join [z, one-hot label], joins {joined}")
        elif not isinstance(layer, (keras.layers.InputLayer, keras.layers.Reshape)):
            raise BuildError(f"{path}: layer {layer.name!r} ({type(layer).__name__}) is not one the page's "
                             "JavaScript decoder knows (Dense relu/linear, then Activation sigmoid, Reshape; "
                             "for a conditional decoder, a one-hot label joined to z before them)")
    if [a for _, _, a in layers[:-1]] != ["relu"] * (len(layers) - 1) or layers[-1][2] != "sigmoid" \
            or layers[-1][0].shape[1] != 784:
        raise BuildError(f"{path}: the decoder should be Dense relu layers, then 784 sigmoid outputs")
    if layers[0][0].shape[0] != latent_dim + (num_classes or 0):
        raise BuildError(f"{path}: its first layer takes {layers[0][0].shape[0]} inputs, not latent_dim {latent_dim}"
                         + (f" + num_classes {num_classes}" if num_classes else ""))
    return layers


def view_grid(view, latent_dim, points=64):
    """Latent points covering the explorer's whole domain (the plane, and for 3-D the slider's range)."""
    axes = [np.linspace(-view["extent"], view["extent"], points)] * 2
    if latent_dim >= 3:
        axes.append(np.linspace(-view["slice_extent"], view["slice_extent"], points // 4))
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    return np.hstack([grid, np.zeros((len(grid), latent_dim - len(axes)))])


def with_labels(z, num_classes):
    """The conditional decoder's inputs for latent points z (N, latent_dim) under every label: (num_classes·N,
    latent_dim + num_classes), the rows [z, one-hot(0)] for all z, then [z, one-hot(1)], ..."""
    one_hot = np.repeat(np.eye(num_classes), len(z), axis=0)
    return np.hstack([np.tile(z, (num_classes, 1)), one_hot])


def quantize(kernel, inputs):
    """int8 kernel and float32 scale per output unit, rounded with error compensation (GPTQ, Frantar
    et al. 2022): each input row's rounding error is spread over the rows not yet rounded, in
    proportion to how the inputs (N, in) seen on the explorer's domain correlate."""
    kernel = kernel.copy()
    scale = np.maximum(np.abs(kernel).max(axis=0), 1e-12) / 127
    hessian = inputs.T @ inputs / len(inputs)
    hessian += (0.01 * np.mean(np.diag(hessian)) + 1e-9) * np.eye(len(hessian))
    upper = np.linalg.cholesky(np.linalg.inv(hessian)).T
    quantized = np.zeros(kernel.shape, dtype=np.int8)
    for i in range(len(kernel)):
        quantized[i] = np.clip(np.round(kernel[i] / scale), -127, 127)
        error = (kernel[i] - quantized[i] * scale) / upper[i, i]
        kernel[i + 1:] -= np.outer(upper[i, i + 1:], error)
    return quantized, scale.astype(np.float32)


def export_decoder(path, latent_dim, view, num_classes=None):
    """The decoder for the page: hidden units that stay inactive over the whole explorer domain are
    dropped (they add nothing there), and every kernel is quantized to int8 (see `quantize`). For a
    conditional decoder the domain is the view's grid under every label, and the first layer takes
    latent_dim + num_classes inputs, [z, one-hot label].

    Returns [{"in", "out", "activation", "kernel" (base64 int8), "scale", "bias" (base64 float32 LE)}].
    """
    layers = decoder_layers(path, latent_dim, num_classes)
    x = view_grid(view, latent_dim)
    if num_classes:
        x = with_labels(x, num_classes)
    keep = np.arange(x.shape[1])
    exported = []
    for index, (kernel, bias, activation) in enumerate(layers):
        kernel = kernel[keep]
        if activation == "relu":
            alive = np.flatnonzero((np.maximum(x @ kernel + bias, 0) > 0).any(axis=0))
            kernel, bias = kernel[:, alive], bias[alive]
            next_keep = alive
        quantized, scale = quantize(kernel, x)
        dequantized = quantized * scale.astype(np.float64)
        exported.append({
            "in": int(kernel.shape[0]), "out": int(kernel.shape[1]), "activation": activation,
            "kernel": base64.b64encode(quantized.tobytes()).decode("ascii"),
            "scale": base64.b64encode(scale.astype("<f4").tobytes()).decode("ascii"),
            "bias": base64.b64encode(bias.astype("<f4").tobytes()).decode("ascii"),
        })
        x = x @ dequantized + bias.astype(np.float32)
        if activation == "relu":
            x = np.maximum(x, 0)
            keep = next_keep
    return exported


def pickable_test_images(root, name, latent_dim, conditional=False):
    """Every (10,000 / PICKABLE_IMAGES)-th test image: its index, label, pixels (uint8, base64), posterior
    mean μ (from the test encodings) and σ (from the saved encoder). The images are the repository's MNIST
    (data/mnist/), the σ come from models/encoder_<name>.h5; a `conditional` encoder is given [images, labels]."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    sys.path.insert(0, str(REPO_ROOT / "code"))
    from vae.data import read_idx

    z_mean, labels = load_encodings(root, name, latent_dim)
    images = read_idx(REPO_ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte.gz", ndim=3)
    if len(images) != len(z_mean):
        raise BuildError(f"models/test_encodings_{name}.npz has {len(z_mean)} encodings for {len(images)} test images")
    chosen = (np.arange(PICKABLE_IMAGES) * len(images)) // PICKABLE_IMAGES
    encoder = load_safely(read_input(root, f"models/encoder_{name}.h5"))
    inputs = images[chosen, :, :, None].astype("float32") / 255
    if conditional:
        inputs = [inputs, labels[chosen].astype("int32")]
    outputs = encoder(inputs, training=False)
    sigma = np.exp(0.5 * keras.ops.convert_to_numpy(outputs[1]).astype(np.float64))
    return {
        "count": int(len(chosen)),
        "index": [int(i) for i in chosen],
        "labels": "".join(str(int(label)) for label in labels[chosen]),
        "pixels": base64.b64encode(np.ascontiguousarray(images[chosen], dtype=np.uint8).tobytes()).decode("ascii"),
        "z": base64.b64encode(np.ascontiguousarray(z_mean[chosen], dtype="<f4").tobytes()).decode("ascii"),
        "sigma": base64.b64encode(np.ascontiguousarray(sigma, dtype="<f4").tobytes()).decode("ascii"),
    }


def default_label(metrics):
    """The class a conditional model's explorer draws first: the class of its figure of styles (the decoder over
    a grid of codes), style_grid_class in its metrics; None for a model without classes."""
    if not metrics.get("num_classes"):
        return None
    label = int(metrics.get("style_grid_class", 0))
    if not 0 <= label < metrics["num_classes"]:
        raise BuildError(f"style_grid_class {label} is not one of the {metrics['num_classes']} classes")
    return label


QUADRATURE_NODES = 5  # Gauss–Hermite nodes per latent dimension for a posterior's expected reconstruction term


def gauss_hermite(count=QUADRATURE_NODES):
    """Nodes and weights (summing to 1) of Gauss–Hermite quadrature for E[f(ε)], ε ~ N(0, 1): the explorers
    average −ln p(x | z) over a posterior N(μ, σ²) at z = μ + σ·node, every combination of nodes over the dimensions."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(count)
    return {"nodes": nodes.tolist(), "weights": (weights / weights.sum()).tolist()}


def explorer_data(root, name, metrics):
    """The data of one model's explorer: view, weights, and every (N / count)-th test encoding; for a
    conditional model also num_classes and the label drawn first."""
    latent_dim = int(metrics["latent_dim"])
    num_classes = int(metrics.get("num_classes") or 0) or None
    z_mean, labels = load_encodings(root, name, latent_dim)
    view = explorer_view(root, name, metrics)
    count = min(EXPLORER_POINTS, len(z_mean))
    chosen = (np.arange(count) * len(z_mean)) // count
    data = {
        "name": name,
        "latent_dim": latent_dim,
        "view": view,
        "prior_covariance": metrics.get("prior_covariance"),
        "quadrature": gauss_hermite(),
    }
    if num_classes:
        data.update(num_classes=num_classes, label=default_label(metrics))
    data.update({
        "layers": export_decoder(read_input(root, f"models/decoder_{name}.h5"), latent_dim, view, num_classes),
        "points": {
            "count": int(count),
            "z": base64.b64encode(np.ascontiguousarray(z_mean[chosen], dtype="<f4").tobytes()).decode("ascii"),
            "labels": "".join(str(int(label)) for label in labels[chosen]),
        },
        "test_images": pickable_test_images(root, name, latent_dim, conditional=bool(num_classes)),
    })
    return data


def explorer_script(data):
    """assets/explorer/<model>.js: sets window.VAE_MODELS[model]."""
    return (f"// Generated by page/build.py from models/decoder_{data['name']}.h5, "
            f"models/test_encodings_{data['name']}.npz, models/encoder_{data['name']}.h5 and data/mnist: do not edit.\n"
            "window.VAE_MODELS = window.VAE_MODELS || {};\n"
            f'window.VAE_MODELS["{data["name"]}"] = {json.dumps(data, separators=(",", ":"))};\n')


# ---------------------------------------------------------------------------------------------
# The drawing pad beside the 2-D explorer: the encoder's weights, MNIST's preprocessing, what a scribble gives

PAD_MODEL = "2d"  # the model whose explorer has a drawing pad
PAD_RASTER = 112  # the pad's strokes are inked on a PAD_RASTER² grid (4× MNIST's), then reduced as MNIST's digits were
PAD_PEN = 7.0  # the pen's radius, in PAD_RASTER pixels: a digit drawn the pad's height gets strokes about 2.5 px wide
PAD_SCRIBBLES = 20  # scribbles measured for the page: each PAD_SCRIBBLE_POINTS random points joined in one stroke
PAD_SCRIBBLE_POINTS = 12


def ink_strokes(strokes, size=PAD_RASTER, pen=PAD_PEN):
    """The pad's ink, (size, size) bool: a pixel is inked when its center lies within `pen` of a stroke. `strokes` is a
    list of strokes, each a list of (x, y) points in 0..1 (x right, y down); a one-point stroke is a dot."""
    centers = np.arange(size, dtype=np.float64) + 0.5
    cy, cx = np.meshgrid(centers, centers, indexing="ij")
    ink = np.zeros((size, size), dtype=bool)
    for stroke in strokes:
        points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2) * size
        segments = zip(points, points[1:]) if len(points) > 1 else [(points[0], points[0])]
        for (ax, ay), (bx, by) in segments:
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = np.zeros_like(cx) if length2 == 0 else np.clip(((cx - ax) * dx + (cy - ay) * dy) / length2, 0, 1)
            ex, ey = cx - (ax + t * dx), cy - (ay + t * dy)
            ink |= ex * ex + ey * ey <= pen * pen
    return ink


def coverage(start, length, scale, cells):
    """(len, cells): how much of each output cell [c, c + 1) the source pixels [start + i·scale, start + (i+1)·scale)
    cover, i < length."""
    left = start + np.arange(length, dtype=np.float64) * scale
    edges = np.arange(cells, dtype=np.float64)
    return np.clip(np.minimum(left[:, None] + scale, edges[None, :] + 1) - np.maximum(left[:, None], edges[None, :]), 0, None)


def mnist_raster(ink, box=20, size=28):
    """The ink prepared as MNIST's digits were: cropped to its bounding box, scaled into a box × box square keeping
    its aspect (each output pixel the share of its area the ink covers: anti-aliased), then moved by whole pixels so
    that its center of mass is at the center of the size × size image; gray levels rounded to 1/255 as MNIST's
    bytes. Returns (size, size) float64 in 0..1 (all zero for no ink)."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return np.zeros((size, size))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float64)
    height, width = crop.shape
    scale = box / max(height, width)
    top, left = (size - height * scale) / 2, (size - width * scale) / 2
    gray = coverage(top, height, scale, size).T @ crop @ coverage(left, width, scale, size)
    gray = np.floor(255 * np.clip(gray, 0, 1) + 0.5) / 255  # halves round up, as in JavaScript
    centers = np.arange(size) + 0.5
    total = gray.sum()
    shift_y = int(np.clip(np.floor(size / 2 - (gray.sum(axis=1) @ centers) / total + 0.5), -np.floor(top), np.floor(top)))
    shift_x = int(np.clip(np.floor(size / 2 - (gray.sum(axis=0) @ centers) / total + 0.5), -np.floor(left), np.floor(left)))
    return np.roll(gray, (shift_y, shift_x), axis=(0, 1))


def scribble_strokes(count=PAD_SCRIBBLES, points=PAD_SCRIBBLE_POINTS, seed=0):
    """`count` scribbles, each one stroke through `points` uniform random points of the pad's middle 70%."""
    rng = np.random.default_rng(seed)
    return [[rng.uniform(0.15, 0.85, size=(points, 2)).tolist()] for _ in range(count)]


def export_encoder(root, name=PAD_MODEL):
    """The 2-D encoder for the drawing pad: 784 → 512 relu → 256 relu → [μ, ln σ²] (one linear layer of 2·latent_dim
    outputs, z_mean's then z_log_var's), every kernel int8 as the decoders' (see `quantize`, its inputs the first
    2,000 test images). Returns [layer] as export_decoder does."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    sys.path.insert(0, str(REPO_ROOT / "code"))
    from vae.data import read_idx

    path = read_input(root, f"models/encoder_{name}.h5")
    encoder = load_safely(path)
    dense = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Dense)]
    heads = {layer.name: layer for layer in dense if layer.name in ("z_mean", "z_log_var")}
    hidden = [layer for layer in dense if layer.name not in heads]
    if len(heads) != 2 or not hidden or heads["z_mean"].input is not hidden[-1].output \
            or heads["z_log_var"].input is not hidden[-1].output:
        raise BuildError(f"{path}: the pad's encoder should be Flatten, Dense relu layers, then z_mean and z_log_var")
    layers = []
    for layer in hidden:
        if layer.get_config()["activation"] != "relu":
            raise BuildError(f"{path}: layer {layer.name!r} is not relu")
        kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
        layers.append((kernel, bias, "relu"))
    heads = [np.asarray(w, dtype=np.float64) for head in ("z_mean", "z_log_var") for w in heads[head].get_weights()]
    layers.append((np.hstack([heads[0], heads[2]]), np.concatenate([heads[1], heads[3]]), "linear"))
    images = read_idx(REPO_ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte.gz", ndim=3)
    x = images[:2000].reshape(-1, 784).astype(np.float64) / 255
    exported = []
    for kernel, bias, activation in layers:
        quantized, scale = quantize(kernel, x)
        exported.append({
            "in": int(kernel.shape[0]), "out": int(kernel.shape[1]), "activation": activation,
            "kernel": base64.b64encode(quantized.tobytes()).decode("ascii"),
            "scale": base64.b64encode(scale.astype("<f4").tobytes()).decode("ascii"),
            "bias": base64.b64encode(bias.astype("<f4").tobytes()).decode("ascii"),
        })
        x = x @ (quantized * scale.astype(np.float64)) + bias.astype(np.float32)
        if activation == "relu":
            x = np.maximum(x, 0)
    return exported


def pad_facts(root, name=PAD_MODEL):
    """What the chapter's model (Keras) makes of scribbles and of the test digits, for the page's sentence: the KL and
    the reconstruction term (nats, by the explorers' quadrature) and distance |μ| from the origin of PAD_SCRIBBLES
    scribbles, prepared as the pad prepares a drawing, beside the test digits' (medians; the digits' 99th percentile)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    sys.path.insert(0, str(REPO_ROOT / "code"))
    from vae.data import read_idx

    encoder = load_safely(read_input(root, f"models/encoder_{name}.h5"))
    decoder = load_safely(read_input(root, f"models/decoder_{name}.h5"))
    logits = keras.Model(decoder.inputs, decoder.get_layer("logits").output)
    images = read_idx(REPO_ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte.gz", ndim=3).astype("float32") / 255
    scribbles = np.stack([mnist_raster(ink_strokes(strokes)) for strokes in scribble_strokes()]).astype("float32")
    quadrature = gauss_hermite()

    def kl_and_distance(x):
        mu, log_var = (keras.ops.convert_to_numpy(a).astype(np.float64) for a in encoder.predict(
            x[..., None], verbose=0, batch_size=2000)[:2])
        kl = -0.5 * np.sum(1 + log_var - mu ** 2 - np.exp(log_var), axis=1)
        return kl, np.linalg.norm(mu, axis=1), mu, np.exp(0.5 * log_var)

    def reconstruction(x, mu, sigma):
        """E_q[−ln p(x | z)] by the explorers' quadrature, with the chapter's (Keras) decoder: (N,) nats."""
        nodes, weights = np.asarray(quadrature["nodes"]), np.asarray(quadrature["weights"])
        grid = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2)
        weight = np.outer(weights, weights).ravel()
        z = (mu[:, None, :] + sigma[:, None, :] * grid[None]).reshape(-1, 2).astype("float32")
        out = np.asarray(logits.predict(z, verbose=0, batch_size=4096), np.float64).reshape(len(x), len(grid), 784)
        pixels = x.reshape(len(x), 1, 784).astype(np.float64)
        nats = np.sum(np.maximum(out, 0) - pixels * out + np.log1p(np.exp(-np.abs(out))), axis=-1)
        return nats @ weight

    digit_kl, digit_distance, digit_mu, digit_sigma = kl_and_distance(images)
    scribble_kl, scribble_distance, scribble_mu, scribble_sigma = kl_and_distance(scribbles)
    every = slice(None, None, 5)  # the reconstruction term of every 5th test digit (2,000): 25 decodes each
    digit_reconstruction = reconstruction(images[every], digit_mu[every], digit_sigma[every])
    scribble_reconstruction = reconstruction(scribbles, scribble_mu, scribble_sigma)
    return {"scribble_reconstruction_median": float(np.median(scribble_reconstruction)),
            "digit_reconstruction_median": float(np.median(digit_reconstruction)),
            "digit_reconstruction_p99": float(np.quantile(digit_reconstruction, 0.99)),
            "digits_reconstructed": int(len(digit_reconstruction)),
            "scribbles_beyond_digit_reconstruction_p99": float(np.mean(
                scribble_reconstruction > np.quantile(digit_reconstruction, 0.99))),"scribbles": PAD_SCRIBBLES, "scribble_points": PAD_SCRIBBLE_POINTS,
            "scribble_kl_median": float(np.median(scribble_kl)), "scribble_kl_min": float(scribble_kl.min()),
            "scribble_distance_median": float(np.median(scribble_distance)),
            "digit_kl_median": float(np.median(digit_kl)), "digit_kl_p99": float(np.quantile(digit_kl, 0.99)),
            "digit_distance_median": float(np.median(digit_distance)), "test_images": int(len(images)),
            "scribbles_beyond_digit_kl_p99": float(np.mean(scribble_kl > np.quantile(digit_kl, 0.99)))}


def encoder_script(root, name=PAD_MODEL):
    """assets/explorer/encoder_<model>.js: sets window.VAE_ENCODERS[model] (its weights, the pad's settings and
    pad_facts); loaded when the reader first uses the drawing pad. Returns (script, facts)."""
    facts = pad_facts(root, name)
    data = {"name": name, "layers": export_encoder(root, name), "raster": PAD_RASTER, "pen": PAD_PEN, "facts": facts}
    script = (f"// Generated by page/build.py from models/encoder_{name}.h5 and data/mnist: do not edit.\n"
              "window.VAE_ENCODERS = window.VAE_ENCODERS || {};\n"
              f'window.VAE_ENCODERS["{name}"] = {json.dumps(data, separators=(",", ":"))};\n')
    return script, facts


# ---------------------------------------------------------------------------------------------
# The whole page


def flags_table():
    """Every flag of the chapters, as vae/config.py declares it (one row each), for the page: a `$` that
    names an environment variable is written as an entity, so that it does not open a formula."""
    from vae.config import flags_markdown

    return flags_markdown().replace("$", "&#36;")


def build(root=REPO_ROOT):
    """Build the page from the inputs under `root`; returns {relative path: bytes}."""
    facts, _ = load_facts(root)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PAGE_DIR), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        comment_start_string="<!--#", comment_end_string="#-->",  # "{#" starts Markdown's {#id} attributes
    )
    environment.filters.update(num=num, tex=tex, lower_higher=lower_higher, apart=apart)
    source_text = (PAGE_DIR / "tutorial.md").read_text()
    page = Page(root, source_text, facts)
    page.explorer_template = environment.get_template("explorer.html")
    outputs = {f"assets/explorer/{name}.js": explorer_script(explorer_data(root, name, facts[EXPLORER_FACTS[name]]))
               .encode() for name in MODELS}
    page.explorer_scripts = {name: outputs[f"assets/explorer/{name}.js"] for name in MODELS}
    script, facts["pad"] = encoder_script(root)
    outputs[f"assets/explorer/encoder_{PAD_MODEL}.js"] = script.encode()
    page.explorer_scripts[f"encoder_{PAD_MODEL}"] = outputs[f"assets/explorer/encoder_{PAD_MODEL}.js"]
    try:
        text = environment.from_string(source_text).render(
            **facts, fig=page.fig, label=page.label, image=page.image, source=page.source,
            main_block=page.main_block, explorer=page.explorer, flags_table=flags_table, timeline=page.timeline)
    except jinja2.UndefinedError as error:
        raise BuildError(f"page/tutorial.md: {error} (see models/metrics_*.json and `load_facts`)") from None

    title_match = re.match(r"# (.+)\n", text)
    if not title_match:
        raise BuildError("page/tutorial.md must start with a '# Title' line")
    text, formulas = extract_math(text)
    md = markdown.Markdown(extensions=["tables", "fenced_code", "toc", "attr_list", "md_in_html", "sane_lists"],
                           output_format="html")
    body = restore_math(md.convert(text[text.index("\n## "):]), formulas)
    lede = restore_math(markdown.markdown(text[title_match.end():text.index("\n## ")].strip()), formulas)
    # Markdown's own tables (a bare <table>) scroll sideways in a wrapper; those of tables.html have theirs.
    body = re.sub(r"<table>(.*?)</table>", r'<div class="table-wrap"><table>\1</table></div>', body, flags=re.DOTALL)

    index = environment.get_template("template.html").render(
        title=title_match.group(1).strip(), lede=lede, toc=[t for t in md.toc_tokens if t["level"] == 2],
        content=body, css=(PAGE_DIR / "style.css").read_text().strip(),
        data_scripts=[],  # none loads with the page: explorer.js adds each when the reader nears its explorer
        explorer_js=(PAGE_DIR / "explorer.js").read_text().strip()
        + ("\n" + (PAGE_DIR / "timeline.js").read_text().strip() if page.timelines else ""),
    )
    outputs.update({f"assets/explorer/timeline_{name}.js": timeline_script(data) for name, data in page.timelines.items()})
    for target in re.findall(r'(?:href|src)="([^"#:]+)(?:#[^"]*)?"', index):
        if html.unescape(target) not in outputs:
            read_input(root, html.unescape(target))
    outputs["index.html"] = index.encode("utf-8")
    return dict(sorted(outputs.items()))


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
    for path in sorted((out_dir / "assets/explorer").glob("*")):
        relative = f"assets/explorer/{path.name}"
        if relative not in outputs and not path.name.startswith("."):
            stale.append((relative, "not written by the build (left over)"))
    return stale


def write_outputs(outputs, out_dir):
    """Write the files that changed, each under a temporary name then renamed; remove left-over
    explorer files. Returns the relative paths written or removed."""
    out_dir = Path(out_dir)
    written = []
    for relative, content in outputs.items():
        path = out_dir / relative
        if path.is_file() and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.stem}.partial{path.suffix}")  # .gitignore has .*.partial.*
        try:
            temporary.write_bytes(content)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        written.append(relative)
    for path in sorted((out_dir / "assets/explorer").glob("*.js")):
        if f"assets/explorer/{path.name}" not in outputs:
            path.unlink()
            written.append(f"assets/explorer/{path.name} (removed)")
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each stale output")
    parser.add_argument("--inputs", default=str(REPO_ROOT), metavar="DIR",
                        help="the folder holding assets/, models/ and code/ (default: the repository)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write (or --check) index.html and assets/explorer/ under DIR (default: --inputs)")
    args = parser.parse_args(argv)
    out_dir = Path(args.out or args.inputs)
    try:
        outputs = build(args.inputs)
    except BuildError as error:
        print(f"page/build.py: error: {error}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_files(outputs, out_dir)
        for relative, why in stale:
            print(f"page/build.py: stale: {relative} ({why})", file=sys.stderr)
        if stale:
            print("page/build.py: run `python page/build.py` to rebuild", file=sys.stderr)
            return 1
        print(f"page/build.py: up to date: {', '.join(outputs)}")
        return 0
    written = write_outputs(outputs, out_dir)
    sizes = ", ".join(f"{relative} ({len(content) / 1e6:.2f} MB)" for relative, content in outputs.items())
    print(f"page/build.py: {len(written)} file(s) changed; outputs: {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The tutorial page (index.html): up to date with its sources and the committed results, its numbers
read from the metrics, its listings copied from the source, and working in a real browser (headless
Chromium, opened from file:// with the network cut off) at 1280, 390 and 320 CSS pixels.

Three explorers load their data when the reader nears them; the conditional model's (FOLDED_MODELS) sits in a closed <details>, and
its data, assets/explorer/conditional.js, load only when the reader opens it: the page's budgets count what
loads before the reader opens anything, and a test of its own opens it.

The page is checked against the committed results (the `committed_root` fixture of conftest.py:
assets/*.png and models/* as in git HEAD), so that a reader's own run of a script, which rewrites
them, does not make these tests fail. Needs Chromium at /usr/bin/chromium (Debian's `chromium`;
$VAE_PAGE_CHROMIUM to use another) and Playwright's Python package (requirements-page.txt).
"""

import ast
import base64
import html
import importlib.util
import json
import math
import os
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("page_build", REPO_ROOT / "page" / "build.py")
build_page = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_page)

MODELS = ("2d", "3d", "correlated")  # the explorers that load with the page (and the models with likelihood_*.json)
FOLDED_MODELS = ("conditional",)  # explorers in a closed <details>: their data load when the reader opens it
EXPLORER_MODELS = MODELS + FOLDED_MODELS
SECTIONS = ["introduction", "what-is-a-vae", "model-architecture", "2d-latent-space-experiments",
            "3d-latent-space-extension", "correlated-prior", "conditional", "inside-the-2-d-model", "deeper",
            "results", "implementation-guide", "references"]
FIGURES = {  # every figure the training scripts draw that the main path shows
    "reconstructions_2d.png", "2D3DClusters.png", "reconstructions_3d.png",
    "reconstructions_correlated.png",
    # inside the models (vae/inspection.py, drawn by the scripts and by code/explore.py)
    "samples_2d.png", "interpolation_2d.png", "posterior_widths_2d.png", "holes_2d.png",
    "samples_conditional.png",  # code/vae_conditional.py
}
FOLDED_FIGURES = {  # inside a closed <details>: loaded only when the reader opens it
    "latent2D.png", "Clusters2D.png", "history_2d.png",
    "Clusters3D.png", "3DLatent1.png", "3DLatent2.png", "3DLatent3.png", "latent_variance_3d.png", "traversal_3d.png",
    "history_3d.png", "samples_3d.png", "interpolation_3d.png", "posterior_widths_3d.png", "holes_3d.png",
    "ClustersCorrelated.png", "KLAdapted.png", "samples_correlated.png", "covariance_matrix.png",
    "history_correlated.png", "interpolation_correlated.png", "posterior_widths_correlated.png", "holes_correlated.png",
    "style_transfer_conditional.png", "ClustersConditional.png", "latentConditional.png",  # code/vae_conditional.py
    # the deeper questions: each in its own fold
    "likelihoods_2d.png",  # code/compare_likelihoods.py
    "beta_sweep.png", "rate_distortion.png", "beta_spread.png", "collapse_32.png",  # code/compare_beta.py
    "reconstructions_2d_fashion_mnist_conv.png", "Clusters2D_fashion_mnist_conv.png",  # ... --architecture conv
    "latent2D_fashion_mnist_conv.png",
    "literature_curves.png",  # benchmarks/literature.py
    "true_posterior_2d.png",  # code/explore.py
    "out_of_distribution.png",  # code/compare_datasets.py
}

LISTINGS = {("code/vae_2d.py", "Sampling"), ("code/vae_2d.py", "build_encoder"), ("code/vae_2d.py", "build_decoder"),
            ("code/vae_2d.py", "VAE.kl_divergence"), ("code/vae_2d.py", "VAE.reconstruction_loss"),
            ("code/vae_2d.py", "VAE.train_step"), ("code/vae_correlated.py", "CorrelatedVAE.kl_divergence")}
CHROMIUM = os.environ.get("VAE_PAGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
EXACT_TOLERANCE = 1e-6  # the JavaScript decoder vs the same int8 network in NumPy, per pixel probability
QUANTIZED_TOLERANCE = 0.05  # the int8 network vs Keras' float32 decoder, per pixel probability
WEIGHTS_BUDGET = 2_000_000  # bytes of decoder weights the page loads, its unfolded explorers together
PAGE_BUDGET = 4_000_000  # bytes of everything the page loads before the reader opens a <details>
WIDTHS = [(1280, 900), (390, 844), (320, 640)]


# ---------------------------------------------------------------------------------------------
# Fixtures: one build, one set of Keras decoders, one browser, for the whole module


@pytest.fixture(scope="module")
def outputs(committed_root):
    """A fresh build of the page from the committed results, in memory: {relative path: bytes}."""
    try:
        return build_page.build(committed_root)
    except build_page.BuildError as error:
        pytest.fail(f"the page cannot be built: {error}")


@pytest.fixture(scope="module")
def metrics(committed_root):
    return {name: json.loads((committed_root / "models" / f"metrics_{name}.json").read_text()) for name in MODELS}


@pytest.fixture(scope="module")
def inside(committed_root):
    """{model: models/likelihood_<model>.json}, written by code/explore.py."""
    return {name: json.loads((committed_root / "models" / f"likelihood_{name}.json").read_text()) for name in MODELS}


@pytest.fixture(scope="module")
def page_html():
    return (REPO_ROOT / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def explorer_models():
    """{model: the data of assets/explorer/<model>.js}, the folded explorers' included."""
    data = {}
    for name in EXPLORER_MODELS:
        text = (REPO_ROOT / "assets" / "explorer" / f"{name}.js").read_text()
        data[name] = json.loads(text[text.index("= {") + 2:text.rindex(";")])
    return data


@pytest.fixture(scope="module")
def decoders(committed_root):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from vae.saving import load_model_safely

    return {name: load_model_safely(committed_root / "models" / f"decoder_{name}.h5")
            for name in EXPLORER_MODELS}


def keras_decode(decoders, name, z, labels=None):
    """The Keras decoder's pixel probabilities for latent points z: (N, 784) float64. A conditional decoder
    ([z, label] inputs) draws the digits `labels` (one per point, or one for all)."""
    decoder = decoders[name]
    conditional = isinstance(decoder.input_shape, list)
    z = np.asarray(z, dtype="float32").reshape(-1, (decoder.input_shape[0] if conditional else decoder.input_shape)[-1])
    inputs = z
    if conditional:
        inputs = [z, np.broadcast_to(np.asarray(labels, dtype="int32"), (len(z),)).copy()]
    elif labels is not None:
        raise ValueError(f"the {name} decoder takes no labels")
    return np.asarray(decoder.predict(inputs, verbose=0, batch_size=4096), dtype=np.float64).reshape(len(z), 784)


def numpy_decode(model, z, labels=None):
    """The explorer's int8 network, decoded in NumPy (float64): (N, 784). A conditional model's input is
    [z, one-hot label], `labels` one per point or one for all."""
    x = np.asarray(z, dtype=np.float64).reshape(-1, model["latent_dim"])
    if model.get("num_classes"):
        one_hot = np.eye(model["num_classes"])[np.broadcast_to(np.asarray(labels, dtype=int), (len(x),))]
        x = np.hstack([x, one_hot])
    for layer in model["layers"]:
        kernel = np.frombuffer(base64.b64decode(layer["kernel"]), np.int8).reshape(layer["in"], layer["out"])
        scale = np.frombuffer(base64.b64decode(layer["scale"]), "<f4").astype(np.float64)
        bias = np.frombuffer(base64.b64decode(layer["bias"]), "<f4").astype(np.float64)
        x = (x @ kernel) * scale + bias
        x = np.maximum(x, 0) if layer["activation"] == "relu" else 1 / (1 + np.exp(-x))
    return x


def domain_points(model, count, seed=0):
    """Random latent points over an explorer's whole domain (its plane, and for 3-D its slider's range)."""
    rng = np.random.default_rng(seed)
    view = model["view"]
    z = rng.uniform(-view["extent"], view["extent"], size=(count, model["latent_dim"]))
    if model["latent_dim"] >= 3:
        z[:, 2] = rng.uniform(-view["slice_extent"], view["slice_extent"], size=count)
    return z


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: pip install -r requirements-page.txt")
    with sync_playwright() as playwright:
        if Path(CHROMIUM).exists():  # Debian's chromium, or $VAE_PAGE_CHROMIUM
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        else:  # Playwright's own Chromium, on a machine where `python -m playwright install chromium` ran
            try:
                browser = playwright.chromium.launch(args=CHROMIUM_ARGS)
            except Exception as error:
                pytest.fail(f"no Chromium: {CHROMIUM} does not exist and Playwright has none of its own "
                            f"({str(error).splitlines()[0]}). On Debian or Ubuntu: sudo apt-get install chromium; "
                            f"elsewhere (macOS): python -m playwright install chromium")
        yield browser
        browser.close()


class OpenPage:
    """index.html of `root` opened from file:// in a new browser context whose every non-file request
    is aborted and counted, with the console errors and the files loaded collected."""

    def __init__(self, browser, root, **context_options):
        self.root = Path(root)
        self.blocked, self.errors, self.loaded = [], [], []
        self.context = browser.new_context(**context_options)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto((self.root / "index.html").as_uri(), wait_until="load")

    def _route(self, route):
        if route.request.url.startswith("file://"):
            self.loaded.append(route.request.url)
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def scroll_through(self):
        """Scroll to the bottom and back, so that every lazy image loads and every explorer starts (but those
        in a closed <details>)."""
        height = self.page.evaluate("document.documentElement.scrollHeight")
        for y in range(0, height + 600, 500):
            self.page.evaluate(f"window.scrollTo(0, {y})")
            self.page.wait_for_timeout(25)
        self.page.wait_for_function(UNFOLDED_EXPLORERS_STARTED, timeout=20_000)
        self.page.wait_for_function("Array.from(document.images).every(img => img.complete "
                                    "|| img.closest('details:not([open])'))", timeout=20_000)  # folded: not loaded
        self.page.evaluate("window.scrollTo(0, 0)")

    def open_folded_explorer(self, name, key=None):
        """Open the <details> of a folded explorer, by a click on its summary or by `key` ("Enter") on the
        focused summary, and wait until the explorer has loaded its data and started."""
        summary = self.page.locator(f"#explorer-{name}-fold > summary")
        summary.scroll_into_view_if_needed()
        if key:
            summary.focus()
            self.page.keyboard.press(key)
        else:
            summary.click()
        self.page.wait_for_function("name => window.vaeExplorer && window.vaeExplorer.models().includes(name)",
                                    arg=name, timeout=20_000)

    def close(self):
        self.context.close()


UNFOLDED_EXPLORERS_STARTED = """() => window.vaeExplorer && Array.from(document.querySelectorAll('.explorer[data-model]'))
    .filter(e => !e.closest('details:not([open])')).every(e => window.vaeExplorer.models().includes(e.dataset.model))"""


@pytest.fixture(scope="module")
def laptop(browser, committed_root):
    """The page at laptop size, scrolled through: every image loaded, every explorer started."""
    opened = OpenPage(browser, committed_root, viewport={"width": 1280, "height": 900})
    opened.scroll_through()
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def phone(browser, committed_root):
    """The page at phone size, with a touch screen and a device pixel ratio of 2."""
    opened = OpenPage(browser, committed_root, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                      is_mobile=True, has_touch=True)
    opened.scroll_through()
    yield opened
    opened.close()


def state(opened, name):
    return opened.page.evaluate("name => window.vaeExplorer.state(name)", name)


def assert_decodes_like_keras(decoders, explorer_models, name, explorer_state):
    """The explorer's last decoded digit equals its int8 network at its z (and label, for a conditional
    model), is close to Keras', and is drawn as it was decoded."""
    label = explorer_state["label"]
    exact = numpy_decode(explorer_models[name], [explorer_state["z"]], label)[0]
    expected = keras_decode(decoders, name, [explorer_state["z"]], label)[0]
    pixels = np.asarray(explorer_state["pixels"])
    drawn = 1 - np.asarray(explorer_state["drawn"]) / 255
    assert np.max(np.abs(pixels - exact)) <= EXACT_TOLERANCE
    assert np.max(np.abs(pixels - expected)) <= QUANTIZED_TOLERANCE
    assert np.max(np.abs(drawn - pixels)) <= 0.5 / 255 + 1e-9, "the digit is drawn as decoded"


# ---------------------------------------------------------------------------------------------
# The build


def test_page_and_explorer_files_are_up_to_date(outputs):
    stale = build_page.stale_files(outputs, REPO_ROOT)
    assert not stale, ("out of date with the committed results (run `python page/build.py`): "
                       + "; ".join(f"{path} ({why})" for path, why in stale))


def test_build_writes_one_explorer_file_per_model(outputs):
    assert sorted(outputs) == ["assets/explorer/2d.js", "assets/explorer/3d.js", "assets/explorer/conditional.js",
                               "assets/explorer/correlated.js", "assets/explorer/encoder_2d.js",
                               "assets/explorer/timeline_2d.js", "index.html"]


def test_check_names_a_stale_or_left_over_file(outputs, tmp_path):
    build_page.write_outputs(outputs, tmp_path)
    assert build_page.stale_files(outputs, tmp_path) == []
    (tmp_path / "assets/explorer/3d.js").write_bytes(b"// edited by hand\n")
    (tmp_path / "assets/explorer/old.js").write_text("")
    assert build_page.stale_files(outputs, tmp_path) == [
        ("assets/explorer/3d.js", "differs from a fresh build"),
        ("assets/explorer/old.js", "not written by the build (left over)")]


def test_missing_model_is_named(tmp_path):
    (tmp_path / "models").mkdir()
    with pytest.raises(build_page.BuildError, match=r"models/metrics_2d\.json"):
        build_page.build(tmp_path)


def test_shown_code_equals_the_source_it_names(page_html):
    """Every listing names its file, object and lines; those lines of that file (dedented) define
    that object and are exactly the code shown."""
    listings = re.findall(r'<code class="language-python" data-source="([^"]+)"(?: data-name="([^"]+)")? '
                          r'data-lines="(\d+)-(\d+)">(.*?)</code>', page_html, re.DOTALL)
    named = {(source, name) for source, name, *_ in listings if name}
    assert LISTINGS <= named, f"listings missing from the page: {LISTINGS - named}"
    for source, name, first, last, shown in listings:
        text = (REPO_ROOT / source).read_text()
        lines = text.splitlines()[int(first) - 1:int(last)]
        assert html.unescape(shown) == textwrap.dedent("\n".join(lines)), f"{source}:{first}-{last} differs"
        if name:
            body, node = ast.parse(text).body, None
            for part in name.split("."):
                node = next(n for n in body if getattr(n, "name", None) == part)
                body = node.body
            first_line = min([node.lineno] + [d.lineno for d in node.decorator_list])
            assert (first_line, node.end_lineno) == (int(first), int(last)), f"{name} is not at {first}-{last}"


def test_explorer_weights_fit_the_budget(explorer_models):
    """The weights of the explorers that load with the page; a folded explorer's load only when the reader
    opens it (test_folded_explorer_loads_only_when_opened), and are not counted."""
    weights = sum(len(layer[key]) for name in MODELS for layer in explorer_models[name]["layers"]
                  for key in ("kernel", "scale", "bias"))
    assert weights <= WEIGHTS_BUDGET, f"{weights:,} bytes of weights loaded with the page"


@pytest.mark.parametrize("name", EXPLORER_MODELS)
def test_quantized_decoder_is_close_to_keras_over_the_whole_plane(explorer_models, decoders, name):
    """Over random points of the explorer's domain; a conditional model's at each of its labels."""
    model = explorer_models[name]
    labels = [None] if not model.get("num_classes") else range(model["num_classes"])
    z = domain_points(model, 5000 if labels == [None] else 2000)
    for label in labels:
        error = np.max(np.abs(numpy_decode(model, z, label) - keras_decode(decoders, name, z, label)))
        assert error <= QUANTIZED_TOLERANCE, f"{name}: the int8 decoder differs from Keras by {error:.3f} (label {label})"


# ---------------------------------------------------------------------------------------------
# Numbers and captions come from the metrics


def number(text):
    return text.replace("−", "-").replace(",", "")


def page_text(page_html, numbers=True):
    """The page's text, without tags or TeX annotations; with `numbers`, as `number` reads it."""
    text = html.unescape(re.sub(r"<annotation.*?</annotation>|<[^>]+>", "", page_html))
    return number(text) if numbers else text


def test_results_tables_show_the_metrics(page_html, metrics):
    cells = dict(re.findall(r'data-metric="([\w.]+)">([^<]*)<', page_html))
    formats = {"test_loss": ".2f", "test_reconstruction": ".2f", "test_kl": ".2f", "latent_dim": "d",
               "epochs": "d", "batch_size": "d", "learning_rate": "g", "beta": "g", "seconds_training": ".0f"}
    for name in MODELS:
        for key, spec in formats.items():
            assert number(cells[f"{name}.{key}"]) == format(metrics[name][key], spec), f"{name}.{key}"
        assert html.unescape(cells[f"{name}.device"]) == metrics[name]["device"]
        median = float(np.median(metrics[name]["seconds_per_epoch"]))
        assert number(cells[f"{name}.seconds_per_epoch_median"]) == f"{median:.1f}"


def test_text_quotes_the_metrics(page_html, metrics):
    text = page_text(page_html)
    correlated = metrics["correlated"]
    assert f"{correlated['prior_correlation']:.3f}" in text
    assert f"{correlated['encoded_correlation']:.3f}" in text
    for name in MODELS:
        for key in ("test_loss", "test_reconstruction", "test_kl"):
            assert f"{metrics[name][key]:.2f}" in text, f"{name}.{key}"
    assert f"{metrics['2d']['seconds_training'] / 60:.1f} minutes" in text
    for quoted in ("~165", "~161", "~3.9", "~164", "~160", "~4.2", "~166", "~162", "~4.1"):
        assert quoted in text, "the seed tutorial's numbers are quoted as its own"


def test_the_literature_table_quotes_the_reproduction_and_calls_reproduced_only_what_the_json_does(page_html):
    """Each row of the papers' networks: the mean over its finished seeds, or how far each seed got; the text names
    as reproduced within a nat exactly the rows benchmarks/reproduction.json marks so."""
    reproduction = json.loads((REPO_ROOT / "benchmarks" / "reproduction.json").read_text())
    cells = dict(re.findall(r'data-metric="([\w.]+)">([^<]*)<', page_html))
    table = page_html[page_html.index('id="literature-table"'):]
    table = page_text(table[:table.index("</table>")], numbers=False)
    text = page_text(page_html, numbers=False)
    for row in reproduction["rows"]:
        k = row["latent_dim"]
        if row["seeds"]:
            assert number(cells[f"reproduction.k{k}.nll"]).startswith(f"{row['nll']['mean']:.2f}"), k
            assert number(cells[f"reproduction.k{k}.nelbo"]).startswith(f"{row['nelbo']['mean']:.2f}"), k
        else:
            assert f"reproduction.k{k}.nll" not in cells
            seeds = "; ".join(f"seed {u['seed']}: epoch {u['epochs']:,}" for u in row["unfinished"])
            assert seeds in table, k
    reproduced = [row["latent_dim"] for row in reproduction["rows"] if row["reproduced"]]
    if reproduced:
        sentence = text[text.index("The paper's network reproduces its published"):]
        sentence = sentence[:sentence.index(".\n") if ".\n" in sentence else None]
        assert [int(k) for k in re.findall(r"k = (\d+) \(", sentence)] == reproduced
    else:
        assert "No row is reproduced within a nat over three seeds yet." in text


def test_likelihood_table_and_text_quote_the_likelihood_files(page_html, inside, metrics):
    """ln p(x) three ways, the posterior widths and the holes, as code/explore.py measured them."""
    cells = dict(re.findall(r'data-metric="([\w.]+)">([^<]*)<', page_html))
    text = page_text(page_html)
    for name in MODELS:
        m = inside[name]
        assert m["elbo"] <= m["iw_log_likelihood"] + 3 * m["iw_log_likelihood_standard_error"]
        assert number(cells[f"{name}.inside.elbo"]) == f"{-m['elbo']:.2f}"
        assert number(cells[f"{name}.inside.iw_log_likelihood"]) == f"{-m['iw_log_likelihood']:.2f}"
        assert cells[f"{name}.inside.active_units"] == f"{m['active_units']} of {metrics[name]['latent_dim']}"
    two = inside["2d"]
    assert two["iw_log_likelihood"] <= two["quadrature_log_likelihood"] + 3 * two["iw_log_likelihood_standard_error"]
    assert number(cells["2d.inside.quadrature_log_likelihood"]) == f"{-two['quadrature_log_likelihood']:.2f}"
    for key in ("quadrature_minus_elbo", "iw_gain_over_elbo", "approximation_gap"):
        assert f"{two[key]:.2f} nats" in text, key
    for sigma in two["posterior_sigma_median"]:
        assert f"{sigma:.3f}" in text
    assert two["data_convention"] in page_text(page_html, numbers=False)
    source = (REPO_ROOT / "page" / "tutorial.md").read_text() + (REPO_ROOT / "page" / "tables.html").read_text()
    for name in MODELS:
        for key in ("elbo", "iw_log_likelihood"):
            assert f"{-inside[name][key]:.2f}" not in source, f"{name}.{key} typed into the page's sources"


def test_page_claims_no_more_than_the_models_show(page_html):
    """The sentences the issue named are gone: the posteriors are narrow, the plane has holes."""
    text = page_text(page_html, numbers=False)
    assert "latent space without holes" not in text
    assert "the space between clusters decodes to plausible in-between shapes" not in text
    assert "fills the gaps between classes" not in text
    assert "morphs one digit smoothly into another" not in text


def test_missing_likelihood_file_is_named(committed_root, tmp_path):
    for name in ("assets", "code"):
        (tmp_path / name).symlink_to(committed_root / name)
    (tmp_path / "models").mkdir()
    for path in (committed_root / "models").iterdir():
        if path.name != "likelihood_3d.json":
            (tmp_path / "models" / path.name).symlink_to(path)
    with pytest.raises(build_page.BuildError, match=r"models/likelihood_3d\.json \(run `python code/explore\.py --model 3d --update-results`\)"):
        build_page.build(tmp_path)


def test_captions_describe_the_learning_curves(page_html, metrics):
    """What the captions say of the KL is what the histories show."""
    text = page_text(page_html)
    for name in MODELS:
        kl = metrics[name]["history"]["kl"]
        assert f"from {kl[0]:.2f} to {kl[-1]:.2f} nats" in text, name
        assert kl[-1] > kl[0]
    kl = metrics["2d"]["history"]["kl"]
    assert all(b > a for a, b in zip(kl, kl[1:])), "the 2-D caption says the KL rises in every epoch"
    assert f"rises in every one of the {len(kl)} epochs" in text


def test_text_defines_its_terms_and_cites_its_sources(page_html):
    text = page_text(page_html, numbers=False)
    assert "nats per image, the unit of the natural logarithm" in text
    assert "seed tutorial, Maroua Oukrid" in text
    references = text[text.index("References"):]
    assert "Maroua Oukrid (2024)" in references
    for k in (1, 2):
        assert f"{100 * (1 - math.exp(-k * k / 2)):.0f}% within" in text


def test_no_result_is_typed_into_the_source(metrics):
    source = (REPO_ROOT / "page" / "tutorial.md").read_text()
    for name in MODELS:
        m = metrics[name]
        for key in ("test_loss", "test_reconstruction", "test_kl", "seconds_training"):
            assert format(m[key], ".2f") not in source, f"{name}.{key} typed into page/tutorial.md"
    for key in ("prior_correlation", "encoded_correlation"):
        assert f"{metrics['correlated'][key]:.3f}" not in source


# ---------------------------------------------------------------------------------------------
# In the browser


def test_opens_offline_without_errors(laptop):
    assert laptop.blocked == [], f"the page tried to reach the network: {laptop.blocked}"
    assert laptop.errors == [], f"console errors: {laptop.errors}"


def test_every_section_and_figure_is_there_lazy_and_sized(laptop):
    page = laptop.page
    for section in SECTIONS:
        assert page.locator(f"h2[id='{section}']").count() == 1, section
    images = page.evaluate(IMAGES_JS)
    assert {image["src"] for image in images} == {f"assets/{figure}" for figure in FIGURES | FOLDED_FIGURES}
    for image in images:
        assert image["lazy"] and image["sized"] and image["captioned"], image
        if image["folded"]:  # in a closed <details>: not loaded yet
            assert image["src"].removeprefix("assets/") in FOLDED_FIGURES, image
            assert not any(url.endswith(image["src"]) for url in laptop.loaded), f"{image['src']} loaded while folded"
        else:
            assert image["loaded"], image


IMAGES_JS = """() => Array.from(document.images).map(img => ({
    src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0, lazy: img.loading === 'lazy',
    sized: img.hasAttribute('width') && img.hasAttribute('height'),
    captioned: !!img.closest('figure') && !!img.closest('figure').querySelector('figcaption'),
    folded: !!img.closest('details:not([open])'),
    shown: img.getBoundingClientRect().width, natural: img.naturalWidth, density: +img.dataset.density}))"""


def test_figures_are_shown_large_enough_to_read(laptop):
    """At 1280 px every figure is shown at least at half its CSS size (natural width ÷ density), so that
    its smallest text, 11 points or 15 CSS pixels at full size (code/vae/figures.py), is at least 9 px."""
    sizes = laptop.page.evaluate("""() => Array.from(document.images).filter(img => !img.closest('details:not([open])'))
        .map(img => [img.getAttribute('src'), img.getBoundingClientRect().width, img.naturalWidth, +img.dataset.density])""")
    for src, shown, natural, density in sizes:
        assert density == 2, f"{src}: drawn for a 2× screen (200 dpi)"
        assert shown >= natural / density / 2, f"{src}: {shown:.0f} px wide, natural {natural} px"


def test_page_and_formulas_fit_every_width(browser, committed_root):
    for width, height in WIDTHS:
        opened = OpenPage(browser, committed_root, viewport={"width": width, "height": height},
                          device_scale_factor=2, is_mobile=width < 1000, has_touch=width < 1000)
        try:
            opened.scroll_through()
            overflow = opened.page.evaluate("""() => {
                const width = document.documentElement.clientWidth, bad = [];
                for (const box of document.querySelectorAll('.math-display')) {
                  const math = box.querySelector('math').getBoundingClientRect(), own = box.getBoundingClientRect();
                  if (box.scrollWidth > box.clientWidth + 1 || math.right > own.right + 1 || math.left < own.left - 1)
                    bad.push(box.textContent.slice(0, 40));
                }
                const column = document.querySelector('main').getBoundingClientRect();
                for (const math of document.querySelectorAll('main math')) {
                  const r = math.getBoundingClientRect();
                  if (r.right > column.right + 0.5 || r.left < column.left - 0.5) bad.push(math.textContent.slice(0, 40));
                }
                return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, bad: bad};
            }""")
            assert overflow["scrollWidth"] <= width and overflow["innerWidth"] == width, (width, overflow)
            assert overflow["bad"] == [], f"at {width} px these formulas overflow: {overflow['bad']}"
            assert opened.errors == [] and opened.blocked == []
        finally:
            opened.close()


def test_math_is_rendered_as_mathml(laptop):
    sizes = laptop.page.evaluate("""() => Array.from(document.querySelectorAll('math'))
        .map(m => [m.getAttribute('display'), m.getBoundingClientRect().width])""")
    assert len(sizes) >= 30
    assert sum(display == "block" for display, _ in sizes) >= 8
    assert all(width > 0 for _, width in sizes), "a formula has no width (MathML not rendered?)"
    assert laptop.page.locator("mtable.aligned").count() >= 5, "long formulas are broken into aligned rows"


def test_total_bytes_loaded(laptop):
    """What the page loads, scrolled through, before the reader opens anything: the page, the unfolded
    explorers' data and the unfolded figures; neither folded figures nor folded explorers' data."""
    files = {url for url in laptop.loaded}
    sizes = {url: (Path(url.replace("file://", "")).stat().st_size) for url in files}
    assert not [url for url in files if any(url.endswith(f"/explorer/{name}.js") for name in FOLDED_MODELS)]
    assert len(files) == 1 + len(MODELS) + len(FIGURES), sorted(files)
    assert sum(sizes.values()) <= PAGE_BUDGET, f"{sum(sizes.values()):,} bytes loaded before anything is opened"


@pytest.mark.parametrize("width", [1280, 390])
def test_folded_figures_open_by_click_and_keyboard_and_fit(browser, committed_root, width):
    """Each chapter's further figures sit in a <details>: opened with a click (or Enter on its summary), its
    images load, are captioned, shown large enough to read at 1280 px, and nothing overflows at 390 px."""
    opened = OpenPage(browser, committed_root, viewport={"width": width, "height": 900}, device_scale_factor=2,
                      is_mobile=width < 1000, has_touch=width < 1000)
    try:
        summaries = opened.page.locator("details.more-figures > summary")
        assert summaries.count() >= 15
        summaries.nth(0).click()
        for other in range(1, summaries.count()):
            summaries.nth(other).focus()
            opened.page.keyboard.press("Enter")
        assert opened.page.evaluate("Array.from(document.querySelectorAll('details.more-figures')).every(d => d.open)")
        opened.scroll_through()
        images = [image for image in opened.page.evaluate(IMAGES_JS) if image["src"].removeprefix("assets/")
                  in FOLDED_FIGURES]
        assert len(images) == len(FOLDED_FIGURES)
        for image in images:
            assert image["loaded"] and image["captioned"] and image["density"] == 2, image
            if width == 1280:
                assert image["shown"] >= image["natural"] / image["density"] / 2, image
        assert opened.page.evaluate("document.documentElement.scrollWidth") <= width
        assert opened.errors == [] and opened.blocked == []
    finally:
        opened.close()


@pytest.mark.parametrize("name", MODELS)
def test_javascript_decoder_matches_its_weights_and_keras(laptop, decoders, explorer_models, name):
    z = domain_points(explorer_models[name], 12, seed=7)
    decoded = np.asarray(laptop.page.evaluate("([name, zs]) => zs.map(z => window.vaeExplorer.decode(name, z))",
                                              [name, z.tolist()]))
    assert decoded.shape == (len(z), 784)
    assert np.max(np.abs(decoded - numpy_decode(explorer_models[name], z))) <= EXACT_TOLERANCE
    assert np.max(np.abs(decoded - keras_decode(decoders, name, z))) <= QUANTIZED_TOLERANCE


def test_pointer_and_keyboard_drive_the_2d_explorer(laptop, decoders, explorer_models):
    page = laptop.page
    plane = page.locator("#explorer-2d .explorer-plane")
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    page.mouse.move(box["x"] + 0.25 * box["width"], box["y"] + 0.3 * box["height"])
    first = state(laptop, "2d")
    page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.8 * box["height"], steps=3)
    second = state(laptop, "2d")
    assert first["z"][0] < 0 < first["z"][1] and second["z"][1] < 0 < second["z"][0], (first["z"], second["z"])
    assert np.max(np.abs(np.subtract(first["drawn"], second["drawn"]))) > 50, "the drawn digit did not change"
    assert_decodes_like_keras(decoders, explorer_models, "2d", first)
    assert_decodes_like_keras(decoders, explorer_models, "2d", second)
    readout = page.locator("#explorer-2d .explorer-z").inner_text()
    assert number(readout.replace("\u2007", " ")).split() == ["z₀", "=", f"{second['z'][0]:.2f}",
                                                               "z₁", "=", f"{second['z'][1]:.2f}"]
    plane.focus()
    page.keyboard.press("ArrowUp")
    third = state(laptop, "2d")
    assert third["z"][0] == second["z"][0] and math.isclose(third["z"][1], second["z"][1] + 0.1, abs_tol=1e-9)
    assert_decodes_like_keras(decoders, explorer_models, "2d", third)


def test_decoded_digit_is_described_when_the_pointer_rests(laptop):
    page = laptop.page
    plane = page.locator("#explorer-2d .explorer-plane")
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    status = page.locator("#explorer-2d .explorer-status")
    page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.5 * box["height"])
    page.wait_for_timeout(800)
    page.evaluate("() => document.querySelector('#explorer-2d .explorer-status').textContent = ''")
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.5 * box["height"], steps=4)
    assert status.inner_text() == "", "announced while the pointer was still moving"
    page.wait_for_timeout(800)
    described = status.inner_text()
    assert re.search(r"Of the 10 test digits encoded nearest to this point, \d+ (are|is a) \d", described), described
    assert page.locator("#explorer-2d .explorer-digit").get_attribute("aria-label") == described
    assert status.get_attribute("aria-live") == "polite"


def test_3d_slider_changes_the_slice_and_the_readout_keeps_its_size(laptop, decoders, explorer_models):
    page = laptop.page
    slider = page.locator("#explorer-3d .explorer-slice")
    slider.scroll_into_view_if_needed()
    assert page.locator("label[for='explorer-3d-slice']").count() == 1, "the slider's label names the slider"
    box = slider.bounding_box()
    assert box["height"] >= 24, "the slider is a touch target of at least 24 px"
    readout = page.locator("#explorer-3d .explorer-readout").bounding_box()
    before = state(laptop, "3d")
    page.mouse.click(box["x"] + 0.9 * box["width"], box["y"] + box["height"] / 2)
    after = state(laptop, "3d")
    assert after["z"][2] > before["z"][2] + 0.5 and after["z"][:2] == before["z"][:2], (before["z"], after["z"])
    assert np.max(np.abs(np.subtract(before["pixels"], after["pixels"]))) > 1e-3, "the digit did not change"
    assert_decodes_like_keras(decoders, explorer_models, "3d", after)
    page.mouse.click(box["x"] + 0.1 * box["width"], box["y"] + box["height"] / 2)
    assert state(laptop, "3d")["z"][2] < 0
    assert page.locator("#explorer-3d .explorer-readout").bounding_box() == readout, "the readout moved"
    assert page.locator("#explorer-3d .explorer-slice").bounding_box() == box, "the slider moved"


def test_correlated_explorer_draws_the_prior_ellipses(laptop, decoders, explorer_models, metrics):
    page = laptop.page
    page.locator("#explorer-correlated .explorer-plane").scroll_into_view_if_needed()
    cholesky = np.linalg.cholesky(np.asarray(metrics["correlated"]["prior_covariance"]))
    darkest = []
    for k in (1, 2):
        for angle in np.linspace(0, 2 * np.pi, 12, endpoint=False):
            z0, z1 = k * cholesky @ [np.cos(angle), np.sin(angle)]
            x, y = page.evaluate("([z0, z1]) => window.vaeExplorer.toCanvas('correlated', z0, z1)", [z0, z1])
            neighborhood = [page.evaluate("([x, y]) => window.vaeExplorer.planePixel('correlated', x, y)",
                                          [x + dx, y + dy]) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
            darkest.append(min(max(rgba[:3]) for rgba in neighborhood))
    assert max(darkest) < 90, f"no dark ellipse stroke where the prior's 1σ/2σ contours are: {darkest}"
    assert_decodes_like_keras(decoders, explorer_models, "correlated",
                              page.evaluate("() => window.vaeExplorer.setZ('correlated', [0.8, 0.4])"))


def test_classes_are_marked_by_numerals_on_the_plane(laptop, explorer_models):
    """Each class's numeral is written, dark, at the median of its points."""
    page = laptop.page
    model = explorer_models["2d"]
    z = np.frombuffer(base64.b64decode(model["points"]["z"]), "<f4").reshape(-1, 2)
    labels = np.array([int(c) for c in model["points"]["labels"]])
    page.evaluate("() => window.vaeExplorer.setZ('2d', [3.4, -3.4])")  # the marker out of the way
    for digit in range(10):
        center = np.sort(z[labels == digit], axis=0)[len(z[labels == digit]) // 2]
        x, y = page.evaluate("([z0, z1]) => window.vaeExplorer.toCanvas('2d', z0, z1)", center.tolist())
        pixels = [page.evaluate("([x, y]) => window.vaeExplorer.planePixel('2d', x, y)", [x + dx, y + dy])
                  for dx in range(-4, 5, 2) for dy in range(-5, 6, 2)]
        assert min(max(p[:3]) for p in pixels) < 60, f"no dark numeral {digit} at its class center"


def swipe(session, page, start, dy, steps=10):
    """A finger put down at `start` (x, y) and moved dy CSS pixels down (negative: up), through Chromium's
    own touch input, so that touch-action and scrolling apply as on a phone."""
    x, y = start
    session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, steps + 1):
        session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y + dy * step / steps}]})
        page.wait_for_timeout(16)
    session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    page.wait_for_timeout(300)


def test_phone_touch_scrolls_until_the_reader_taps_then_explores(phone, decoders, explorer_models):
    page = phone.page
    assert phone.errors == [] and phone.blocked == []
    plane = page.locator("#explorer-2d .explorer-plane")
    plane.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, -150)")
    box = plane.bounding_box()
    digit = page.locator("#explorer-2d .explorer-digit").bounding_box()
    assert digit["y"] + digit["height"] <= box["y"], "on a phone the digit is above the plane, clear of the finger"
    assert box["width"] <= 390
    button = page.locator("#explorer-2d .explorer-activate").bounding_box()
    assert button and button["height"] >= 24 and button["width"] >= 24
    session = phone.context.new_cdp_session(page)
    center = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    # A vertical swipe that starts on the plane scrolls the page and decodes nothing.
    before, scroll = state(phone, "2d"), page.evaluate("window.scrollY")
    swipe(session, page, center, dy=-250)
    assert page.evaluate("window.scrollY") > scroll + 100, "a swipe on the plane did not scroll the page"
    assert state(phone, "2d")["z"] == before["z"] and not state(phone, "2d")["exploring"]

    # A tap decodes there and starts exploring; then a drag decodes as it goes.
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    page.touchscreen.tap(box["x"] + 0.8 * box["width"], box["y"] + 0.2 * box["height"])
    tapped = state(phone, "2d")
    assert tapped["exploring"] and tapped["z"][0] > 0 and tapped["z"][1] > 0, tapped["z"]
    assert_decodes_like_keras(decoders, explorer_models, "2d", tapped)
    scroll = page.evaluate("window.scrollY")
    swipe(session, page, (box["x"] + 0.3 * box["width"], box["y"] + 0.3 * box["height"]), dy=0.4 * box["height"])
    dragged = state(phone, "2d")
    assert dragged["z"][0] < 0 and dragged["z"][1] < tapped["z"][1], dragged["z"]
    assert abs(page.evaluate("window.scrollY") - scroll) < 2, "exploring, a drag should not scroll the page"
    page.locator("#explorer-2d .explorer-activate").click()
    assert not state(phone, "2d")["exploring"]


def test_page_reads_without_javascript(browser, committed_root):
    opened = OpenPage(browser, committed_root, viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    try:
        page = opened.page
        assert opened.blocked == []
        for section in SECTIONS:
            assert page.locator(f"h2[id='{section}']").is_visible(), section
        assert page.locator("math").count() >= 30
        notes = page.locator("figure.explorer .explorer-note")
        assert notes.count() == len(EXPLORER_MODELS)
        for name in EXPLORER_MODELS:  # a folded explorer's note shows once its <details> is opened
            if name in FOLDED_MODELS:
                page.locator(f"#explorer-{name}-fold > summary").click()
            assert page.locator(f"#explorer-{name} .explorer-note").is_visible(), name
            assert not page.locator(f"#explorer-{name} .explorer-live").is_visible(), name
    finally:
        opened.close()


# ---------------------------------------------------------------------------------------------
# The explorers' strip: prior samples and walks between two points


def redness(page, name, x, y):
    """The largest red minus green of the plane's pixels within one CSS pixel of (x, y)."""
    pixels = [page.evaluate("([name, x, y]) => window.vaeExplorer.planePixel(name, x, y)", [name, x + dx, y + dy])
              for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    return max(r - g for r, g, _, _ in pixels)


def strip(opened, name):
    return opened.page.evaluate("name => window.vaeExplorer.strip(name)", name)


def assert_strip_decodes_like_keras(decoders, explorer_models, name, shown):
    """The strip's digits are its int8 network's at its points (and label), close to Keras', drawn as decoded."""
    z, label = np.asarray(shown["z"]), shown["label"]
    pixels, drawn = np.asarray(shown["pixels"]), 1 - np.asarray(shown["drawn"]) / 255
    assert pixels.shape == (8, 784) and drawn.shape == (8, 784)
    assert np.max(np.abs(pixels - numpy_decode(explorer_models[name], z, label))) <= EXACT_TOLERANCE
    assert np.max(np.abs(pixels - keras_decode(decoders, name, z, label))) <= QUANTIZED_TOLERANCE
    assert np.max(np.abs(drawn - pixels)) <= 0.5 / 255 + 1e-9, "the strip is drawn as decoded"


@pytest.mark.parametrize("name", MODELS)
def test_prior_samples_button_decodes_fresh_samples(laptop, decoders, explorer_models, name):
    page = laptop.page
    button = page.locator(f"#explorer-{name} .explorer-sample")
    button.scroll_into_view_if_needed()
    button.click()
    first = strip(laptop, name)
    assert first["kind"] == "samples" and len(first["z"]) == 8
    assert_strip_decodes_like_keras(decoders, explorer_models, name, first)
    button.focus()
    page.keyboard.press("Enter")  # the keyboard draws again
    second = strip(laptop, name)
    assert second["z"] != first["z"], "fresh samples each time"
    z = np.asarray(first["z"] + second["z"])
    if name == "correlated":  # z = L ε: the samples lean along the prior's correlation
        assert np.all(np.abs(z[:, :2]) <= explorer_models[name]["view"]["extent"])
    status = page.locator(f"#explorer-{name} .explorer-strip-status").inner_text()
    assert "decoded from codes drawn from the prior" in status


def test_walk_between_two_clicked_points(laptop, decoders, explorer_models):
    page = laptop.page
    page.locator("#explorer-2d .explorer-walk").click()
    assert state(laptop, "2d")["walking"]
    plane = page.locator("#explorer-2d .explorer-plane")
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    page.mouse.click(box["x"] + 0.2 * box["width"], box["y"] + 0.2 * box["height"])
    assert len(state(laptop, "2d")["walkEnds"]) == 1
    page.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + 0.7 * box["height"])
    shown = strip(laptop, "2d")
    assert shown["kind"] == "walk" and not state(laptop, "2d")["walking"]
    z = np.asarray(shown["z"])
    assert z[0, 0] < 0 < z[0, 1] and z[-1, 0] > 0 > z[-1, 1], z[[0, -1]]
    np.testing.assert_allclose(z, np.linspace(z[0], z[-1], 8), atol=1e-12)  # a straight, evenly spaced walk
    assert_strip_decodes_like_keras(decoders, explorer_models, "2d", shown)
    x, y = page.evaluate("([z0, z1]) => window.vaeExplorer.toCanvas('2d', z0, z1)", ((z[0] + z[-1]) / 2).tolist())
    assert redness(page, "2d", x, y) > 80, "the walk is drawn on the plane in red"


def test_walk_by_keyboard_in_the_3d_slice(laptop, decoders, explorer_models):
    page = laptop.page
    page.evaluate("() => window.vaeExplorer.setZ('3d', [-1.0, 0.5, 0.5])")
    button = page.locator("#explorer-3d .explorer-walk")
    button.focus()
    page.keyboard.press("Enter")
    plane = page.locator("#explorer-3d .explorer-plane")
    plane.focus()
    page.keyboard.press("Enter")
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    shown = strip(laptop, "3d")
    assert shown["kind"] == "walk"
    np.testing.assert_allclose(shown["z"][0], [-1.0, 0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(shown["z"][-1], [0.0, 0.5, 0.5], atol=1e-9)
    assert_strip_decodes_like_keras(decoders, explorer_models, "3d", shown)


def test_phone_taps_draw_samples_and_choose_a_walk(phone, decoders, explorer_models):
    page = phone.page
    page.locator("#explorer-correlated .explorer-sample").tap()
    assert strip(phone, "correlated")["kind"] == "samples"
    page.locator("#explorer-correlated .explorer-walk").tap()
    plane = page.locator("#explorer-correlated .explorer-plane")
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    page.touchscreen.tap(box["x"] + 0.3 * box["width"], box["y"] + 0.5 * box["height"])
    page.touchscreen.tap(box["x"] + 0.7 * box["width"], box["y"] + 0.5 * box["height"])
    shown = strip(phone, "correlated")
    assert shown["kind"] == "walk" and shown["z"][0][0] < 0 < shown["z"][-1][0]
    assert_strip_decodes_like_keras(decoders, explorer_models, "correlated", shown)
    buttons = [page.locator(f"#explorer-correlated {c}").bounding_box() for c in (".explorer-sample", ".explorer-walk")]
    assert all(b["height"] >= 24 for b in buttons), "touch targets of at least 24 px"


def test_every_explorer_table_and_section_is_inside_main(laptop):
    """A stray closing tag (e.g. a table wrapped twice) would end <main> early and push the rest out of the column."""
    outside = laptop.page.evaluate("""() => Array.from(document.querySelectorAll('.explorer, table, h2:not(.toc-title)'))
        .filter(el => !el.closest('main')).map(el => el.id || el.tagName)""")
    assert outside == [], f"outside <main>: {outside}"


# ---------------------------------------------------------------------------------------------
# Picking a test dot: the test image, its reconstruction, its posterior's μ ± 2σ ellipse


@pytest.fixture(scope="module")
def test_images():
    from vae.data import read_idx

    return read_idx(REPO_ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte.gz")


def assert_picked_is_the_test_image(decoders, explorer_models, test_images, committed_root, name, picked):
    encodings = np.load(committed_root / "models" / f"test_encodings_{name}.npz")
    np.testing.assert_allclose(picked["pixels"], test_images[picked["index"]].ravel() / 255, atol=1e-12)
    np.testing.assert_allclose(picked["z"], encodings["z_mean"][picked["index"]], atol=1e-6)
    assert picked["label"] == encodings["labels"][picked["index"]]
    reconstruction = np.asarray(picked["reconstruction"])
    label = picked["label"] if explorer_models[name].get("num_classes") else None  # decoded with its own label
    assert np.max(np.abs(reconstruction - numpy_decode(explorer_models[name], [picked["z"]], label)[0])) <= EXACT_TOLERANCE
    assert np.max(np.abs(reconstruction - keras_decode(decoders, name, [picked["z"]], label)[0])) <= QUANTIZED_TOLERANCE
    assert np.max(np.abs(1 - np.asarray(picked["drawn"]) / 255 - reconstruction)) <= 0.5 / 255 + 1e-9
    assert all(0 < s < 1 for s in picked["sigma"])


def test_pick_a_test_dot_by_click_and_by_keyboard(laptop, decoders, explorer_models, test_images, committed_root):
    page = laptop.page
    pickable = page.evaluate("() => window.vaeExplorer.pickable('2d')")
    assert len(pickable) == build_page.PICKABLE_IMAGES
    target = pickable[17]
    page.locator("#explorer-2d .explorer-pick").click()
    assert state(laptop, "2d")["picking"]
    plane = page.locator("#explorer-2d .explorer-plane")
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    x, y = page.evaluate("([z0, z1]) => window.vaeExplorer.toCanvas('2d', z0, z1)", target["z"][:2])
    page.mouse.click(box["x"] + x, box["y"] + y)
    picked = page.evaluate("() => window.vaeExplorer.picked('2d')")
    assert picked["index"] == target["index"] and not state(laptop, "2d")["picking"]
    assert_picked_is_the_test_image(decoders, explorer_models, test_images, committed_root, "2d", picked)
    assert page.locator("#explorer-2d .explorer-picked").is_visible()
    assert f"Test image {target['index'] + 1:,}" in page.locator("#explorer-2d .explorer-picked-text").inner_text()
    assert redness(page, "2d", x + 10, y) > 80, "the picked dot is ringed in red"
    # Keyboard: the pick button, then Enter on the plane at the keyboard's point.
    other = pickable[40]
    page.evaluate("(z) => window.vaeExplorer.setZ('2d', z)", other["z"])
    page.locator("#explorer-2d .explorer-pick").focus()
    page.keyboard.press("Enter")
    plane.focus()
    page.keyboard.press("Enter")
    assert page.evaluate("() => window.vaeExplorer.picked('2d')")["index"] == other["index"]


def test_pick_a_test_dot_by_touch(phone, decoders, explorer_models, test_images, committed_root):
    page = phone.page
    target = page.evaluate("() => window.vaeExplorer.pickable('correlated')")[5]
    page.locator("#explorer-correlated .explorer-pick").tap()
    plane = page.locator("#explorer-correlated .explorer-plane")
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    x, y = page.evaluate("([z0, z1]) => window.vaeExplorer.toCanvas('correlated', z0, z1)", target["z"][:2])
    page.touchscreen.tap(box["x"] + x, box["y"] + y)
    picked = page.evaluate("() => window.vaeExplorer.picked('correlated')")
    assert picked["index"] == target["index"]
    assert_picked_is_the_test_image(decoders, explorer_models, test_images, committed_root, "correlated", picked)


# ---------------------------------------------------------------------------------------------
# The conditional model's explorer: folded, loaded when opened; a class picker sets the digit drawn


@pytest.fixture(scope="module")
def conditional_page(browser, committed_root):
    """The page at laptop size with the conditional explorer opened by a click on its summary (the page not
    scrolled through: nothing else needs to load). `loaded_before` lists the files loaded before the click."""
    opened = OpenPage(browser, committed_root, viewport={"width": 1280, "height": 900})
    opened.loaded_before = list(opened.loaded)
    opened.open_folded_explorer("conditional")
    yield opened
    opened.close()


def class_buttons(page, name="conditional"):
    """{label: aria-pressed} of the explorer's class picker."""
    return dict(page.evaluate("""name => Array.from(document.querySelectorAll('#explorer-' + name + ' .explorer-class'))
        .map(b => [+b.dataset.label, b.getAttribute('aria-pressed')])""", name))


def test_folded_explorer_loads_only_when_opened(conditional_page, committed_root):
    """The conditional explorer's data are not requested while its <details> is closed (the laptop fixture's
    page, scrolled through, checks the same in test_total_bytes_loaded); a click on the summary loads them,
    and the summary says how much they weigh."""
    script = "assets/explorer/conditional.js"
    assert not any(url.endswith(script) for url in conditional_page.loaded_before)
    assert [url for url in conditional_page.loaded if url.endswith(script)] == [(committed_root / script).as_uri()]
    summary = conditional_page.page.locator("#explorer-conditional-fold > summary").inner_text()
    assert f"loads {round((committed_root / script).stat().st_size / 1000)} kB" in summary, summary
    assert conditional_page.errors == [] and conditional_page.blocked == []


@pytest.mark.parametrize("label", [0, 4, 7])
def test_conditional_javascript_decoder_matches_its_weights_and_keras(conditional_page, decoders, explorer_models, label):
    z = domain_points(explorer_models["conditional"], 6, seed=label)
    decoded = np.asarray(conditional_page.page.evaluate(
        "([zs, label]) => zs.map(z => window.vaeExplorer.decode('conditional', z, label))", [z.tolist(), label]))
    assert decoded.shape == (len(z), 784)
    assert np.max(np.abs(decoded - numpy_decode(explorer_models["conditional"], z, label))) <= EXACT_TOLERANCE
    assert np.max(np.abs(decoded - keras_decode(decoders, "conditional", z, label))) <= QUANTIZED_TOLERANCE


def test_choosing_a_digit_redraws_the_point_as_that_digit(conditional_page, decoders, explorer_models, committed_root):
    """The picker starts at the digit of the figure of styles; a click, or Enter or Space on a focused button,
    chooses another, and the current point is drawn again at once, as the decoder's drawing of that digit."""
    page = conditional_page.page
    first = json.loads((committed_root / "models" / "metrics_conditional.json").read_text())["style_grid_class"]
    group = page.locator("#explorer-conditional .explorer-classes")
    assert group.get_attribute("role") == "group"
    assert page.locator("#" + group.get_attribute("aria-labelledby")).inner_text() == "Digit to draw"
    assert class_buttons(page) == {k: "true" if k == first else "false" for k in range(10)}
    shown = page.evaluate("() => window.vaeExplorer.setZ('conditional', [0.7, -1.2])")
    assert shown["label"] == first
    assert_decodes_like_keras(decoders, explorer_models, "conditional", shown)
    sample = page.locator("#explorer-conditional .explorer-sample")
    assert sample.inner_text() == f"Draw new {first}s from the prior"

    page.locator("#explorer-conditional .explorer-class[data-label='7']").click()
    clicked = state(conditional_page, "conditional")
    assert clicked["label"] == 7 and clicked["z"] == [0.7, -1.2]
    assert_decodes_like_keras(decoders, explorer_models, "conditional", clicked)
    assert np.max(np.abs(np.subtract(clicked["drawn"], shown["drawn"]))) > 50, "the 7 is drawn like the first digit"
    assert class_buttons(page)[7] == "true" and list(class_buttons(page).values()).count("true") == 1
    assert sample.inner_text() == "Draw new 7s from the prior"

    page.locator("#explorer-conditional .explorer-class[data-label='2']").focus()
    page.keyboard.press("Enter")
    assert state(conditional_page, "conditional")["label"] == 2
    page.keyboard.press("Tab")  # the next button, 3, then Space
    page.keyboard.press(" ")
    by_keyboard = state(conditional_page, "conditional")
    assert by_keyboard["label"] == 3 and class_buttons(page)[3] == "true"
    assert_decodes_like_keras(decoders, explorer_models, "conditional", by_keyboard)
    assert np.max(np.abs(np.subtract(by_keyboard["drawn"], clicked["drawn"]))) > 50
    assert conditional_page.errors == []


def test_conditional_strip_and_picked_image(conditional_page, decoders, explorer_models, test_images, committed_root):
    """Prior samples and walks are drawn as the chosen digit (choosing another redraws the strip at the same
    codes); a picked test image is reconstructed with its own label, whatever digit is chosen."""
    page = conditional_page.page
    page.evaluate("() => window.vaeExplorer.setLabel('conditional', 5)")
    page.locator("#explorer-conditional .explorer-sample").click()
    samples = strip(conditional_page, "conditional")
    assert samples["kind"] == "samples" and samples["label"] == 5
    assert_strip_decodes_like_keras(decoders, explorer_models, "conditional", samples)
    assert "8 new 5s decoded from codes drawn from the prior N(0, I)" in \
        page.locator("#explorer-conditional .explorer-strip-status").inner_text()
    page.locator("#explorer-conditional .explorer-class[data-label='9']").click()
    again = strip(conditional_page, "conditional")
    assert again["z"] == samples["z"] and again["label"] == 9
    assert_strip_decodes_like_keras(decoders, explorer_models, "conditional", again)

    page.evaluate("() => window.vaeExplorer.setZ('conditional', [-1.0, 0.5])")
    page.locator("#explorer-conditional .explorer-walk").click()
    plane = page.locator("#explorer-conditional .explorer-plane")
    plane.focus()
    page.keyboard.press("Enter")
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    walk = strip(conditional_page, "conditional")
    assert walk["kind"] == "walk" and walk["label"] == 9
    np.testing.assert_allclose(walk["z"][-1], [0.0, 0.5], atol=1e-9)
    assert_strip_decodes_like_keras(decoders, explorer_models, "conditional", walk)

    labels = explorer_models["conditional"]["test_images"]["labels"]  # in the order of pickable()
    target = next(t for t, label in zip(page.evaluate("() => window.vaeExplorer.pickable('conditional')"), labels)
                  if label != "9")
    page.evaluate("(z) => window.vaeExplorer.setZ('conditional', z)", target["z"])
    page.locator("#explorer-conditional .explorer-pick").click()
    plane.focus()
    page.keyboard.press("Enter")
    picked = page.evaluate("() => window.vaeExplorer.picked('conditional')")
    assert picked["index"] == target["index"] and picked["label"] != 9
    assert_picked_is_the_test_image(decoders, explorer_models, test_images, committed_root, "conditional", picked)
    assert conditional_page.errors == [] and conditional_page.blocked == []


def test_folded_explorer_opens_by_keyboard_and_fits_a_phone(browser, committed_root, decoders, explorer_models):
    """Enter on the focused summary loads and starts the explorer; at 390 and 320 px nothing of the opened
    explorer reaches past the screen's edge, and its ten class buttons are touch targets."""
    opened = OpenPage(browser, committed_root, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                      is_mobile=True, has_touch=True)
    try:
        page = opened.page
        assert not any(url.endswith("/explorer/conditional.js") for url in opened.loaded)
        opened.open_folded_explorer("conditional", key="Enter")
        assert page.evaluate("document.getElementById('explorer-conditional-fold').open")
        assert_decodes_like_keras(decoders, explorer_models, "conditional", state(opened, "conditional"))
        page.locator("#explorer-conditional .explorer-class[data-label='6']").tap()
        assert_decodes_like_keras(decoders, explorer_models, "conditional", state(opened, "conditional"))
        for width in (390, 320):
            page.set_viewport_size({"width": width, "height": 800})
            page.wait_for_timeout(100)
            past = page.evaluate("""() => { const width = document.documentElement.clientWidth;
                const fold = document.getElementById('explorer-conditional-fold');
                return [fold, ...fold.querySelectorAll('*')].filter(el => {
                    const r = el.getBoundingClientRect(); return r.width > 0 && (r.right > width || r.left < 0); })
                  .map(el => el.className || el.tagName); }""")
            assert past == [], f"at {width} px these reach past the screen: {past}"
            boxes = [page.locator(f"#explorer-conditional .explorer-class[data-label='{k}']").bounding_box()
                     for k in range(10)]
            assert all(b["width"] >= 24 and b["height"] >= 24 for b in boxes), (width, boxes)
        assert opened.errors == [] and opened.blocked == []
    finally:
        opened.close()


# ---------------------------------------------------------------------------------------------
# One story: the main path's length, the phone, and the lessons the KL's two parts teach

MAIN_PATH_PX = 25_000  # the main path's height at 1280 px, with every fold closed and every explorer started
SMALLEST_TEXT_PX = 11 / 72 * 100  # a figure's smallest text at its drawn size: 11 pt at 100 CSS px per inch
READABLE_PX = 9


def test_main_path_fits_its_height_with_the_folds_closed(laptop):
    """At 1280 px, with the unfolded explorers started (their full height) and every <details> closed, the
    page is at most MAIN_PATH_PX tall: the depth is in folds."""
    page = laptop.page
    assert page.evaluate("document.querySelectorAll('main details[open]').length") == 0
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= MAIN_PATH_PX, f"the main path is {height} px tall"


def open_every_fold(opened):
    opened.page.evaluate("document.querySelectorAll('main details.more-figures').forEach(d => d.open = true)")
    opened.scroll_through()


def test_on_a_phone_figures_listings_and_tables_keep_their_content(browser, committed_root):
    """At 390 px: every figure (the folded ones too) is shown large enough that its smallest text is at least
    READABLE_PX (a wider one scrolls in its own box), no listing line is cut (long lines wrap), every table
    that is wider than its box shows the shadow cue at its edge, and the page itself never scrolls sideways."""
    opened = OpenPage(browser, committed_root, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                      is_mobile=True, has_touch=True)
    try:
        page = opened.page
        open_every_fold(opened)
        sizes = page.evaluate("""() => Array.from(document.querySelectorAll('main img')).map(img =>
            [img.getAttribute('src'), img.getBoundingClientRect().width, img.naturalWidth / (+img.dataset.density || 1)])""")
        assert len(sizes) >= 40
        for src, shown, drawn in sizes:
            assert shown / drawn * SMALLEST_TEXT_PX >= READABLE_PX - 0.05, f"{src}: {shown:.0f} of {drawn:.0f} px"
        cut = page.evaluate("""() => Array.from(document.querySelectorAll('main pre'))
            .filter(pre => pre.scrollWidth > pre.clientWidth + 1).map(pre => pre.textContent.slice(0, 50))""")
        assert cut == [], f"listings with hidden text: {cut}"
        tables = page.evaluate("""() => Array.from(document.querySelectorAll('main table')).map(table => {
            const box = table.closest('.table-wrap');
            return {id: table.id || table.className, boxed: !!box,
                    wider: box ? box.scrollWidth > box.clientWidth + 1 : false,
                    cue: box ? getComputedStyle(box).backgroundImage : ''}; })""")
        assert len(tables) >= 5
        for table in tables:
            assert table["boxed"], table
            if table["wider"]:
                assert "gradient" in table["cue"], f"{table['id']} hides columns without a cue"
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    finally:
        opened.close()


def test_punctuation_after_inline_math_stays_on_its_line(laptop):
    """An inline formula followed by a comma or a full stop is wrapped with it in one unbreakable span."""
    loose = laptop.page.evaluate("""() => Array.from(document.querySelectorAll('main math:not([display="block"])'))
        .filter(m => { const next = m.nextSibling;
                       return next && next.nodeType === 3 && /^[.,;:!?)]/.test(next.textContent)
                              && !m.parentElement.classList.contains('nowrap'); })
        .map(m => m.textContent.slice(0, 30) + m.nextSibling.textContent.slice(0, 3))""")
    assert loose == []
    assert laptop.page.locator("main .nowrap > math").count() >= 50


def test_kl_passages_quote_its_two_parts_and_the_hole_floors(page_html, metrics):
    """The KL's split into I(n; z) and KL(q(z) ‖ p(z)) and the hole shares on the training codes beside the
    estimator's floor are quoted from the metrics; the sentences the claims audit removed stay gone."""
    text = page_text(page_html, numbers=True)
    for name in ("2d", "3d", "correlated"):
        for codes in ("train", "test"):
            split = metrics[name]["kl_split"][codes]
            for key in ("mean_kl", "mutual_information", "marginal_kl"):
                assert f'data-metric="{name}.kl_split.{codes}.{key}">{split[key]:.2f}' in page_html, (name, codes, key)
    holes = metrics["2d"]["holes"]
    assert f"{100 * holes['train']['prior_mass_in_holes']:.1f}% of the prior's probability" in text
    assert f"it gives {100 * holes['prior_floor']['train']['prior_mass_in_holes']:.1f}%" in text
    three = metrics["3d"]["holes"]
    assert f"level with its floor of {100 * three['prior_floor']['train']['prior_mass_in_holes']:.2f}%" in text
    plain = page_text(page_html, numbers=False)
    for gone in ["a probability of at least", "grows with the latent size", "packs around the origin",
                 "because the KL term pulls every posterior", "the codes follow the prior more closely"]:
        assert gone not in plain, gone


def test_the_timeline_s_sentence_is_true_of_the_recording(page_html, metrics):
    """The page says that most of the grouping, like most of the fall of the test loss, comes in the first
    few recorded epochs: both shares are above one half in the committed run."""
    m = metrics["2d"]
    agreement, loss = m["timeline"]["class_agreement"], m["history"]["val_loss"]
    early = m["timeline"]["epochs"][4]
    assert f"comes in the first {early} epochs" in page_text(page_html, numbers=False)
    assert agreement[4] - agreement[0] > 0.5 * (agreement[-1] - agreement[0])
    assert loss[0] - loss[early - 1] > 0.5 * (loss[0] - loss[-1])

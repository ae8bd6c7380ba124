"""Looking inside a trained VAE: the figures and numbers that show what it does beyond its loss.

Shared by the chapter scripts (which draw every figure for their model and record the evaluation
in models/metrics_<name>.json) and code/explore.py (which does the same from saved .h5 files, with
more samples, and the exact 2-D likelihood). Figures, by name (`FIGURES`):

- samples: digits decoded from prior samples z = L ε (L = I for N(0, I));
- interpolation: decoded walks between the posterior means of test images of different digits;
- posterior_widths: test means with their μ ± 2σ ellipses, and a close-up where σ is visible;
- aggregate_posterior: q(z) = mean over the test images of q(z|x) against p(z), and the holes;
- traversal (latent_dim ≥ 3): one dimension swept at a time, the others at the test mean;
- embeddings (latent_dim > 3): PCA and t-SNE of the test encodings.
"""

import time

import numpy as np

# TensorFlow loads with vae.figures, vae.evaluation and vae.likelihood, imported where they are used, so
# that code/explore.py answers --help and refuses a bad argument at once.

# K of the importance-weighted ln p(x) in a chapter script's run: on two CPU cores, 10,000 test images
# × (50 + 1) decoder calls take about 10 s (code/explore.py defaults to K = 1000).
SCRIPT_SAMPLES = 50
# name: (file name pattern, smallest latent_dim it is drawn for, largest or None)
FIGURES = {
    "samples": ("samples_{name}.png", 1, None),
    "interpolation": ("interpolation_{name}.png", 1, None),
    "posterior_widths": ("posterior_widths_{name}.png", 2, None),
    "aggregate_posterior": ("holes_{name}.png", 2, None),
    "traversal": ("traversal_{name}.png", 3, None),
    "embeddings": ("embeddings_{name}.png", 4, None),
}
POSTERIOR_WIDTH_IMAGES = 300  # ellipses drawn in posterior_widths
QUADRATURE_LIMIT = 5.0  # the exact 2-D ln p(x) integrates over ε ∈ [−5, 5]² (prior standard deviations)
HOLES_LIMIT = 4.0  # the aggregate posterior is mapped over [−4, 4]² in prior standard deviations
LARGE_SET = 20_000  # measuring more codes than this takes seconds: a line says what runs


def figures_for(latent_dim):
    """The names of the figures drawn for a latent space of `latent_dim` dimensions."""
    return [name for name, (_, low, high) in FIGURES.items() if latent_dim >= low and (high is None or latent_dim <= high)]


def figure_filename(figure, name):
    return FIGURES[figure][0].format(name=name)


def holes_map(z_mean, z_log_var, prior_covariance):
    """(edges, q, p) of `evaluation.aggregate_posterior` over ±HOLES_LIMIT prior standard deviations."""
    from vae.evaluation import aggregate_posterior

    limit = HOLES_LIMIT * float(np.sqrt(np.max(np.diag(np.asarray(prior_covariance))[:2])))
    return aggregate_posterior(z_mean, z_log_var, prior_covariance, limit)


def draw(figure, path, decoder, prior, images, labels, z_mean, z_log_var, interpolation="linear", items="digits"):
    """Draw one of FIGURES to `path`. `prior` is a vae.priors.GaussianPrior; images, labels, z_mean and
    z_log_var are the test set's; `items` names the images in titles ("digits", "clothes")."""
    from vae import figures

    if figure not in FIGURES:
        raise ValueError(f"unknown figure {figure!r}; the figures are {', '.join(FIGURES)}")
    if figure == "samples":
        figures.plot_prior_samples(decoder, prior.cholesky, path, items=items)
    elif figure == "interpolation":
        figures.plot_interpolation(decoder, images, z_mean, labels, path, method=interpolation,
                                   cholesky=prior.cholesky, items=items)
    elif figure == "posterior_widths":
        figures.plot_posterior_widths(z_mean, z_log_var, labels, path, count=POSTERIOR_WIDTH_IMAGES,
                                      prior_covariance=prior.covariance)
    elif figure == "aggregate_posterior":
        edges, q, p = holes_map(z_mean, z_log_var, prior.covariance)
        figures.plot_aggregate_posterior(decoder, edges, q, p, path, prior.covariance, latent_dim=z_mean.shape[1])
    elif figure == "traversal":
        figures.plot_traversal(decoder, z_mean, path)
    elif figure == "embeddings":
        figures.plot_embeddings(z_mean, labels, path)


def posteriors_beyond_grid(z_mean, z_log_var, cholesky, limit):
    """How many posteriors N(μ, diag σ²) reach beyond ±limit (2 standard deviations out) along either
    axis of the whitened plane ε = L⁻¹ z, where the quadrature's grid lies. (Further out the prior's
    own density, below e^(−12.5) of its peak at the grid's edge, outweighs a posterior's thin tail.)"""
    inverse = np.linalg.inv(np.asarray(cholesky, dtype=np.float64))
    mean = np.asarray(z_mean, dtype=np.float64) @ inverse.T
    sigma = np.sqrt(np.exp(np.asarray(z_log_var, dtype=np.float64)) @ (inverse ** 2).T)  # std of ε per axis
    return int(np.any(np.abs(mean) + 2 * sigma > limit, axis=1).sum())


def hole_shares(prior, codes, seed=0):
    """The prior's mass in the holes of the aggregate posterior (`evaluation.hole_statistics` on `holes_map`)
    for each set of codes in `codes`, a dict name: (z_mean, z_log_var), and the floor of that estimator:
    the same numbers for as many codes drawn from the prior itself, each with the width of one of the set's
    posteriors. Those codes leave no hole by construction, so what the estimator finds there (cells of the
    prior's thin tail that no code happens to reach) is the level below which a model's share means nothing.
    Returns {"hole_ratio", name: {...}, ..., "prior_floor": {name: {...}, ...}}."""
    from vae.evaluation import HOLE_RATIO, hole_statistics

    def shares(z_mean, z_log_var):
        statistics = hole_statistics(*holes_map(z_mean, z_log_var, prior.covariance)[1:])
        return {"images": len(z_mean), **{key: value for key, value in statistics.items() if key != "hole_ratio"}}

    for name, (z_mean, _) in codes.items():
        if len(z_mean) > LARGE_SET:
            print(f"Hole shares of the {len(z_mean):,} {name} codes and of as many codes drawn from the prior", flush=True)
    result = {"hole_ratio": HOLE_RATIO}
    result.update({name: shares(z_mean, z_log_var) for name, (z_mean, z_log_var) in codes.items()})
    result["prior_floor"] = {name: shares(prior.sample(len(z_mean), seed=seed), z_log_var)
                             for name, (z_mean, z_log_var) in codes.items()}
    return result


def kl_splits(prior, codes, seed=0):
    """`evaluation.kl_split` (the average KL = I(n; z) + KL(q(z) ‖ p(z))) for each set of codes in `codes`,
    a dict name: (z_mean, z_log_var), as a dict name: split; a line is printed before a large set."""
    from vae.evaluation import kl_split

    result = {}
    for name, (z_mean, z_log_var) in codes.items():
        if len(z_mean) > LARGE_SET:
            print(f"Splitting the KL of the {len(z_mean):,} {name} codes into I(n; z) + KL(q(z) ‖ p(z))", flush=True)
        result[name] = kl_split(z_mean, z_log_var, prior.covariance, seed=seed)
    return result


def check_codes(codes, latent_dim):
    """`codes` as a pair of float arrays (z_mean, z_log_var), each (N, latent_dim) with N ≥ 1 and every value
    finite; anything else raises ValueError naming train_codes and what is wrong."""
    try:
        z_mean, z_log_var = codes
    except (TypeError, ValueError):
        raise ValueError(f"train_codes must be a pair (z_mean, z_log_var), not {type(codes).__name__}") from None
    z_mean, z_log_var = np.asarray(z_mean), np.asarray(z_log_var)
    for array, what in ((z_mean, "z_mean"), (z_log_var, "z_log_var")):
        if array.ndim != 2 or array.shape[1] != latent_dim or len(array) == 0:
            raise ValueError(f"train_codes: {what} must have shape (N, {latent_dim}) with N ≥ 1, not {array.shape}")
        if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
            raise ValueError(f"train_codes: {what} must hold finite numbers")
    if len(z_mean) != len(z_log_var):
        raise ValueError(f"train_codes: z_mean has {len(z_mean):,} rows but z_log_var {len(z_log_var):,}")
    return z_mean, z_log_var


def evaluate_model(encoder, decoder, prior, images, z_mean, z_log_var, samples=SCRIPT_SAMPLES, quadrature=False,
                   seed=0, binarize="off", dataset="mnist", train_codes=None, iw_progress=None,
                   quadrature_progress=None):
    """The evaluation beyond the ELBO, as a dict for a metrics file: the ELBO and the K-sample
    importance-weighted ln p(x) (`likelihood.likelihood_metrics`), per-dimension statistics and active
    units (`evaluation.latent_statistics`), the holes of the aggregate posterior, and, under "kl_split" and
    "holes", the KL's two parts and the hole shares beside their floor (`kl_splits`, `hole_shares`) for the
    test codes and, given `train_codes` (the training images' (z_mean, z_log_var)), the training codes too.
    With `quadrature` (2-D only), the exact ln p(x) by quadrature with its time. Every ln p(x) is under the
    decoder's own likelihood; `binarize` ("off" or "dynamic": the test set binarized once) and `dataset` name
    the images' convention. iw_progress(images done, images) and quadrature_progress(grid points done, grid
    points), if given, are called as the two slow parts go."""
    from vae.evaluation import latent_statistics
    from vae.likelihood import decoder_log_likelihoods, likelihood_metrics, log_likelihood_by_quadrature

    codes = {"test": (z_mean, z_log_var)}
    if train_codes is not None:
        codes["train"] = check_codes(train_codes, prior.latent_dim)
    holes = hole_shares(prior, codes, seed=seed)
    result = {**likelihood_metrics(encoder, decoder, prior, images, samples, seed=seed, binarize=binarize,
                                   dataset=dataset, progress=iw_progress),
              **latent_statistics(z_mean, z_log_var, prior.covariance),
              "hole_ratio": holes["hole_ratio"],  # the test codes' holes, as before, and under "holes"
              "prior_mass_in_holes": holes["test"]["prior_mass_in_holes"],
              "posterior_mass_where_prior_is_low": holes["test"]["posterior_mass_where_prior_is_low"],
              "kl_split": kl_splits(prior, codes, seed=seed),
              "holes": holes}
    if quadrature:
        if prior.latent_dim != 2:
            raise ValueError(f"the quadrature needs a 2-D latent space, this one has {prior.latent_dim} dimensions")
        outside = posteriors_beyond_grid(z_mean, z_log_var, prior.cholesky, QUADRATURE_LIMIT)
        if outside:
            # The grid would miss their mass and report too low a ln p(x): no number rather than a wrong one.
            result["quadrature_skipped"] = (f"{outside:,} of the {len(z_mean):,} test posteriors reach beyond the "
                                            f"grid's ±{QUADRATURE_LIMIT:g} prior standard deviations")
            return result
        started = time.perf_counter()
        exact = log_likelihood_by_quadrature(decoder_log_likelihoods(decoder), prior.cholesky,
                                             images.reshape(len(images), -1), limit=QUADRATURE_LIMIT,
                                             progress=quadrature_progress)
        result.update({
            "quadrature_log_likelihood": float(exact.mean()),
            "quadrature_seconds": time.perf_counter() - started,
            "quadrature_grid": {"limit": QUADRATURE_LIMIT, "spacing": 0.02, "points": 500 * 500},
            "approximation_gap": float(exact.mean() - result["iw_log_likelihood"]),
            "quadrature_minus_elbo": float(exact.mean() - result["elbo"]),
        })
    return result


def look_inside(asset, name, encoder, decoder, prior, images, labels, z_mean, z_log_var, samples=SCRIPT_SAMPLES,
                binarize="off", dataset="mnist", train_codes=None):
    """What a chapter script does after training: draw every figure of `figures_for` its latent size to
    asset(filename) and return `evaluate_model`'s numbers (K = `samples`; `binarize`, `dataset`: the run's;
    `train_codes`: the training images' (z_mean, z_log_var), or None to measure the test codes only), with
    the seconds it all took."""
    from vae.data import DATASET_ITEMS

    if train_codes is not None:
        check_codes(train_codes, z_mean.shape[1])  # before the figures, not after them
    started = time.perf_counter()
    for figure in figures_for(z_mean.shape[1]):
        draw(figure, asset(figure_filename(figure, name)), decoder, prior, images, labels, z_mean, z_log_var,
             items=DATASET_ITEMS[dataset])
    evaluation = evaluate_model(encoder, decoder, prior, images, z_mean, z_log_var, samples=samples, binarize=binarize,
                                dataset=dataset, train_codes=train_codes)
    evaluation["seconds_looking_inside"] = time.perf_counter() - started  # the figures above and the evaluation
    return evaluation

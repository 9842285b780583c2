"""PaddleClas-compatible augmentation policies (AutoAugment, RandAugment, TimmAutoAugment), masking operators
(RandomErasing, Cutout, GridMask, HideAndSeek) and
batch operators (MixupOperator, CutmixOperator, OpSampler): determinism, shapes, the math, the reader wiring
and the errors."""

from __future__ import annotations

import io
import random
import warnings
from itertools import islice

import numpy as np
import pytest
from PIL import Image

from ppipe.data import create_batch_operators, create_operators, iter_batches, prepare_dataset, write_digits_demo
from ppipe.data.augment import AutoAugment, Cutout, GridMask, HideAndSeek, RandAugment, RandomErasing, TimmAutoAugment
from ppipe.data.batch_ops import BatchCompose, CutmixOperator, MixupOperator, OpSampler
from ppipe.data.transforms import OperatorParamError, UnknownOperatorError

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

POLICIES = {
    "AutoAugment": None,
    "RandAugment": {"num_layers": 2, "magnitude": 5},
    "TimmAutoAugment-rand": {"config_str": "rand-m9-mstd0.5-inc1", "interpolation": "bicubic", "img_size": 32},
    "TimmAutoAugment-rand-weighted": {"config_str": "rand-m7-n3-w0", "interpolation": "random", "img_size": 32},
    "TimmAutoAugment-v0": {"config_str": "v0-mstd0.5", "img_size": 32},
    "TimmAutoAugment-original": {"config_str": "original", "img_size": 32},
}


def _op(key: str) -> dict:
    return {key.split("-")[0]: POLICIES[key]}


def _image(h: int = 32, w: int = 32) -> np.ndarray:
    """An HWC uint8 RGB image with structure in every channel (gradients and a bright square)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(y * 255 // (h - 1)), (x * 255 // (w - 1)), ((x + y) * 3) % 256], axis=-1).astype(np.uint8)
    img[h // 4:h // 2, w // 4:w // 2] = (250, 30, 90)
    return img


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- policies

def _assert_seeded(op_list, img, draws: int) -> None:
    """The same seed gives the same outputs draw after draw; another seed changes at least one."""
    def run(seed: int) -> list[np.ndarray]:
        ops = create_operators(op_list, seed=seed)
        return [ops(img) for _ in range(draws)]

    a, b, c = run(3), run(3), run(4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("key", sorted(POLICIES))
def test_policy_output_is_reproducible_for_a_fixed_seed_and_differs_across_seeds(key):
    _assert_seeded([_op(key)], _image(), draws=12)


@pytest.mark.parametrize("key", sorted(POLICIES))
def test_policy_keeps_hwc_shape_and_uint8_dtype_for_arrays_and_pil_images(key):
    ops = create_operators([_op(key)], seed=0)
    img = _image(24, 40)
    for _ in range(8):
        out = ops(img)
        assert out.shape == (24, 40, 3) and out.dtype == np.uint8
    out = ops(Image.fromarray(img))
    assert isinstance(out, np.ndarray) and out.shape == (24, 40, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("key", sorted(POLICIES))
def test_policy_changes_most_images(key):
    ops = create_operators([_op(key)], seed=1)
    img = _image()
    changed = sum(not np.array_equal(ops(img), img) for _ in range(40))
    assert changed >= 20, f"{key} changed only {changed} of 40 images"


def test_policy_does_not_modify_its_input():
    img = _image()
    before = img.copy()
    for key in POLICIES:
        create_operators([_op(key)], seed=0)(img)
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize("op", [{"TimmAutoAugment": {"config_str": "rand-m9-mstd0.5-inc1", "prob": 0.0}},
                                {"TimmAutoAugment": {"config_str": "original", "prob": 0.0}},
                                {"RandAugment": {"num_layers": 0, "magnitude": 9}},
                                {"RandomErasing": {"EPSILON": 0.0}}])
def test_zero_probability_or_zero_layers_leaves_images_unchanged(op):
    ops = create_operators([op], seed=0)
    img = _image() if "RandomErasing" not in op else _image().astype(np.float32) / 255.0
    for _ in range(10):
        np.testing.assert_array_equal(ops(img), img)


@pytest.mark.parametrize("name", ["shearX", "shearY", "translateX", "translateY", "rotate", "color", "contrast",
                                  "sharpness", "brightness"])
def test_randaugment_magnitude_zero_geometric_and_enhance_ops_are_the_identity(name):
    op = RandAugment(magnitude=0)
    img = _image()
    for _ in range(4):  # both signs
        np.testing.assert_array_equal(op.apply_op(img, name), img)


def test_randaugment_magnitude_zero_is_not_the_identity_for_posterize_and_solarize_as_in_paddleclas():
    op = RandAugment(magnitude=0)
    img = _image()
    assert not op.apply_op(img, "posterize").any()  # keeps 0 bits: black
    np.testing.assert_array_equal(op.apply_op(img, "solarize"), 255 - img)  # threshold 0 inverts everything


def test_randaugment_level_scales_with_magnitude():
    assert RandAugment(magnitude=10).level_map["rotate"] == pytest.approx(30.0)
    assert RandAugment(magnitude=5).level_map["shearX"] == pytest.approx(0.15)
    assert RandAugment(magnitude=5).level_map["posterize"] == 2


def test_autoaugment_has_the_25_imagenet_sub_policies_and_a_zero_probability_pair_is_the_identity():
    op = AutoAugment()
    assert len(op.policies) == 25
    # PaddleClas sub-policy 12 is (0.0 equalize, 0.8 equalize): only the second can fire; forcing p2 to 0 too
    op.policies[12] = (0.0, "equalize", 0, 0.0, "equalize", 0)
    img = _image()
    for _ in range(5):
        np.testing.assert_array_equal(op.apply_policy(img, 12), img)


def test_timm_rotate_at_magnitude_zero_with_translate_and_shear_is_the_identity():
    # TimmAutoAugment ops whose level 0 means "no change" (the enhance ops' level 0 is factor 0.1, not 1.0)
    op = TimmAutoAugment(config_str="rand-m0-n3", img_size=32)
    op.rand_ops = [o for o in op.rand_ops if o.name in ("Rotate", "ShearX", "ShearY", "TranslateXRel",
                                                        "TranslateYRel")]
    img = _image()
    for _ in range(10):
        np.testing.assert_array_equal(op(img), img)


def test_timm_config_string_sets_magnitude_layers_noise_and_increasing_ops():
    op = TimmAutoAugment(config_str="rand-m7-n3-mstd0.5-inc1", img_size=[20, 30],
                         mean=(0.5, 0.5, 0.5))
    assert op.num_layers == 3 and {o.magnitude for o in op.rand_ops} == {7}
    assert op.hparams["magnitude_std"] == 0.5 and op.hparams["translate_const"] == 9
    assert op.hparams["img_mean"] == (128, 128, 128)
    assert "PosterizeIncreasing" in [o.name for o in op.rand_ops]
    assert "Posterize" in [o.name for o in TimmAutoAugment(config_str="rand-m9").rand_ops]


# ------------------------------------------------------------------------------------------ RandomErasing

def _erased_box(out: np.ndarray, fill: float) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the filled region, asserting it is one solid rectangle."""
    mask = np.all(out == fill, axis=-1)
    ys, xs = np.nonzero(mask)
    top, left = ys.min(), xs.min()
    h, w = ys.max() - top + 1, xs.max() - left + 1
    assert mask.sum() == h * w and mask[top:top + h, left:left + w].all()
    return int(top), int(left), int(h), int(w)


@pytest.mark.parametrize("use_log_aspect", [False, True])
def test_random_erasing_erases_one_rectangle_within_the_area_and_aspect_bounds(use_log_aspect):
    H, W, sl, sh, r1 = 32, 40, 0.02, 0.4, 0.3
    ops = create_operators([{"RandomErasing": {"EPSILON": 1.0, "sl": sl, "sh": sh, "r1": r1, "mean": [-7.0] * 3,
                                               "use_log_aspect": use_log_aspect}}], seed=0)
    img = np.ones((H, W, 3), np.float32)
    areas = []
    for _ in range(200):
        out = ops(img)
        assert out.shape == img.shape and out.dtype == np.float32
        assert set(np.unique(out).tolist()) == {-7.0, 1.0}
        _, _, h, w = _erased_box(out, -7.0)
        assert h < H and w < W
        # h = round(sqrt(area * ar)), w = round(sqrt(area / ar)) with area in [sl, sh] * H * W, ar in [r1, 1/r1]
        assert (h - 0.5) * (w - 0.5) <= sh * H * W and (h + 0.5) * (w + 0.5) >= sl * H * W
        assert (h - 0.5) / (w + 0.5) <= 1 / r1 and (h + 0.5) / (w - 0.5) >= r1
        areas.append(h * w)
    assert min(areas) < 0.1 * H * W < 0.3 * H * W < max(areas)  # the sizes really vary over the range
    np.testing.assert_array_equal(img, 1.0)  # the input is not modified


def test_random_erasing_epsilon_is_the_probability_of_erasing():
    ops = create_operators([{"RandomErasing": {"EPSILON": 0.25, "mean": [-7.0] * 3}}], seed=0)
    img = np.ones((16, 16, 3), np.float32)
    erased = sum(bool((ops(img) == -7.0).any()) for _ in range(400))
    assert 60 <= erased <= 140


def test_random_erasing_pixel_and_rand_modes_fill_with_seeded_noise():
    img = np.zeros((16, 16, 3), np.float32)
    for mode in ("rand", "pixel"):
        a = create_operators([{"RandomErasing": {"EPSILON": 1.0, "mode": mode}}], seed=5)(img)
        b = create_operators([{"RandomErasing": {"EPSILON": 1.0, "mode": mode}}], seed=5)(img)
        np.testing.assert_array_equal(a, b)
        region = a[np.any(a != 0, axis=-1)]
        assert len(region) > 0
        # 'rand': one value per channel for the whole box; 'pixel': values differ pixel to pixel
        assert (len(np.unique(region[:, 0])) == 1) == (mode == "rand")


def test_random_erasing_accepts_paddleclas_string_numbers():
    op = RandomErasing(EPSILON="0.25", sh="1.0/3.0", r1="0.3", attempt=10, use_log_aspect=True, mode="pixel")
    assert op.EPSILON == 0.25 and op.sh == pytest.approx(1 / 3)
    assert op.r1 == pytest.approx((np.log(0.3), np.log(1 / 0.3)))


# ---------------------------------------------------------------------------- Cutout, GridMask, HideAndSeek

MASKS = {"Cutout": {"n_holes": 2, "length": 12}, "GridMask": {"d1": 6, "d2": 14, "rotate": 30},
         "HideAndSeek": {"grid_sizes": [4, 8], "hide_prob": 0.5}}


def _normalized(h: int = 32, w: int = 32) -> np.ndarray:
    """What NormalizeImage(order='') hands these operators: HWC float32, no zeros of its own."""
    return (_image(h, w).astype(np.float32) + 1.0) / 256.0


@pytest.mark.parametrize("name", sorted(MASKS))
def test_masking_op_keeps_shape_and_dtype_for_hwc_float_hwc_uint8_and_chw_and_leaves_its_input_alone(name):
    ops = create_operators([{name: MASKS[name]}], seed=0)
    for img in (_normalized(24, 40), _image(24, 40) + 1, _normalized(24, 40).transpose(2, 0, 1).copy()):
        before = img.copy()
        outs = [ops(img) for _ in range(6)]
        assert all(out.shape == img.shape and out.dtype == img.dtype for out in outs)
        assert any((out == 0).any() for out in outs)
        np.testing.assert_array_equal(img, before)
    chw = _normalized(24, 40).transpose(2, 0, 1)
    out = create_operators([{name: MASKS[name]}], seed=3)(chw)
    # channel-first input is masked in the same places as its HWC form
    np.testing.assert_array_equal(out.transpose(1, 2, 0), create_operators([{name: MASKS[name]}], seed=3)(
        _normalized(24, 40)))


@pytest.mark.parametrize("name", sorted(MASKS))
def test_masking_op_is_reproducible_for_a_fixed_seed_and_differs_across_seeds(name):
    _assert_seeded([{name: MASKS[name]}], _normalized(), draws=8)


@pytest.mark.parametrize("name", sorted(MASKS))
def test_masking_op_loads_by_name_in_a_paddleclas_transform_ops_list(name):
    ops = create_operators([{"DecodeImage": {"to_rgb": True, "channel_first": False}},
                            {"RandCropImage": {"size": 24}}, {"RandFlipImage": {"flip_code": 1}},
                            {"NormalizeImage": {"scale": "1.0/255.0", "mean": MEAN, "std": STD, "order": ""}},
                            {name: MASKS[name]}, {"ToCHWImage": None}], seed=0)
    out = ops(_png(_image()))
    assert out.shape == (3, 24, 24) and out.dtype == np.float32


def test_cutout_zeroes_n_holes_squares_of_side_length_around_the_drawn_centres_clipped_at_the_borders():
    H, W, n_holes, length = 30, 40, 3, 10
    op = Cutout(n_holes=n_holes, length=length)
    img = np.ones((H, W, 3), np.float32)
    for seed in range(30):
        op.rng = random.Random(seed)
        out = op(img)
        replay, expected = random.Random(seed), np.ones((H, W, 3), np.float32)
        for _ in range(n_holes):
            y, x = replay.randrange(H), replay.randrange(W)
            expected[max(y - 5, 0):y + 5, max(x - 5, 0):x + 5] = 0
        np.testing.assert_array_equal(out, expected)
        assert 0 < (out[..., 0] == 0).sum() <= n_holes * length ** 2
    op = Cutout(n_holes=1, length=length)
    op.rng = random.Random(0)
    interior = [box for box in (_erased_box(op(img), 0.0) for _ in range(50))
                if 0 < box[0] and box[0] + box[2] < H and 0 < box[1] and box[1] + box[3] < W]
    assert interior and all((h, w) == (length, length) for _, _, h, w in interior)


def test_cutout_fill_value_none_fills_each_hole_with_a_seeded_random_colour():
    img = np.full((32, 32, 3), -1.0, np.float32)
    a = create_operators([{"Cutout": {"n_holes": 1, "length": 8, "fill_value": "none"}}], seed=2)(img)
    b = create_operators([{"Cutout": {"n_holes": 1, "length": 8, "fill_value": None}}], seed=2)(img)
    np.testing.assert_array_equal(a, b)
    hole = a[np.any(a != -1.0, axis=-1)]
    assert len(hole) > 0 and len(np.unique(hole, axis=0)) == 1
    assert np.all((hole >= 0) & (hole <= 255) & (hole == np.round(hole)))


def test_gridmask_zeroes_bands_of_width_d_times_ratio_every_d_rows_and_columns():
    H, W, d, ratio = 48, 64, 10, 0.3
    op = GridMask(d1=d, d2=d + 1, rotate=1, ratio=ratio, mode=0)
    img = _normalized(H, W)
    for seed in range(10):
        op.rng = random.Random(seed)
        hidden = op(img)[..., 0] == 0
        rows, cols = hidden.all(axis=1), hidden.all(axis=0)
        # a pixel is hidden exactly when its row or its column lies in a band
        np.testing.assert_array_equal(hidden, rows[:, None] | cols[None, :])
        for bands, n in ((rows, H), (cols, W)):
            np.testing.assert_array_equal(bands[:n - d], bands[d:])  # period d
            starts = np.flatnonzero(bands[1:] & ~bands[:-1]) + 1
            ends = np.flatnonzero(bands[:-1] & ~bands[1:]) + 1
            full = [e - s for s in starts for e in ends if e > s][:1]
            assert full == [int(d * ratio + 0.5)] or len(starts) == 0  # bands are round(d * ratio) wide


def test_gridmask_mode_1_keeps_the_grid_and_prob_is_the_probability_of_masking():
    img = _normalized()
    a, b = GridMask(d1=6, d2=14, mode=0), GridMask(d1=6, d2=14, mode=1)
    a.rng, b.rng = random.Random(1), random.Random(1)
    np.testing.assert_array_equal(a(img) == 0, b(img) != 0)
    ops = create_operators([{"GridMask": {"d1": 6, "d2": 14, "prob": 0.25}}], seed=0)
    masked = sum(bool((ops(img) == 0).any()) for _ in range(400))
    assert 60 <= masked <= 140
    np.testing.assert_array_equal(create_operators([{"GridMask": {"prob": 0.0}}], seed=0)(img), img)


def test_hide_and_seek_hides_whole_grid_patches_each_with_probability_hide_prob():
    img = _normalized(64, 64)
    for size in (8, 16):
        ops = create_operators([{"HideAndSeek": {"grid_sizes": [size], "hide_prob": 0.5}}], seed=0)
        hidden = []
        for _ in range(40):
            patches = (ops(img)[..., 0] == 0).reshape(64 // size, size, 64 // size, size).transpose(0, 2, 1, 3)
            per_patch = patches.reshape(len(patches), len(patches), -1)
            assert np.all(per_patch.all(axis=-1) | ~per_patch.any(axis=-1))  # a patch is hidden whole or not at all
            hidden.append(per_patch.all(axis=-1).mean())
        assert 0.4 <= np.mean(hidden) <= 0.6
    for grid_sizes, hide_prob, all_hidden in (([8], 1.0, True), ([8], 0.0, False), ([0], 1.0, False)):
        out = create_operators([{"HideAndSeek": {"grid_sizes": grid_sizes, "hide_prob": hide_prob}}], seed=0)(img)
        assert (out == 0).all() if all_hidden else np.array_equal(out, img)


def test_hide_and_seek_defaults_are_paddleclas_fixed_grid_sizes_and_probability():
    op = HideAndSeek()
    assert (op.grid_sizes, op.hide_prob) == ([0, 16, 32, 44, 56], 0.5)


# ---------------------------------------------------------------------------------------- batch operators

def _batch(n: int = 6, c: int = 3, h: int = 8, w: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c, h, w)).astype(np.float32), rng.integers(0, 4, size=n)


def test_mixup_targets_are_the_lambda_mix_of_one_hots_and_images_the_same_mix():
    op = MixupOperator(class_num=4, alpha=0.4)
    images, labels = _batch()
    perm, lam = op.draw(len(images), np.random.default_rng(11))
    out, targets = op.apply(images, labels, np.random.default_rng(11))
    assert 0.0 < lam < 1.0 and not np.array_equal(perm, np.arange(len(perm)))
    eye = np.eye(4, dtype=np.float32)
    np.testing.assert_allclose(targets, lam * eye[labels] + (1 - lam) * eye[labels[perm]], rtol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out, lam * images + (1 - lam) * images[perm], rtol=1e-5, atol=1e-6)
    assert out.dtype == np.float32 and targets.dtype == np.float32 and targets.shape == (6, 4)


def test_mixup_lambda_follows_beta_alpha_alpha():
    op = MixupOperator(class_num=2, alpha=0.2)
    rng = np.random.default_rng(0)
    lams = np.array([op.draw(4, rng)[1] for _ in range(2000)])
    assert abs(lams.mean() - 0.5) < 0.03
    assert np.mean((lams < 0.1) | (lams > 0.9)) > 0.5  # Beta(0.2, 0.2) is U-shaped


def test_cutmix_lambda_is_one_minus_the_pasted_box_area_ratio():
    n, h, w = 5, 12, 16
    images = np.stack([np.full((3, h, w), i + 1, np.float32) for i in range(n)])  # each sample one value
    labels = np.arange(n)
    op = CutmixOperator(class_num=n, alpha=1.0)
    checked = 0
    for seed in range(30):
        out, targets = op.apply(images, labels, np.random.default_rng(seed))
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
        for i in range(n):
            pasted = out[i, 0] != i + 1
            if not pasted.any():
                continue
            ys, xs = np.nonzero(pasted)
            box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            assert pasted.sum() == box  # one rectangle, the same channel-wide
            src = int(out[i, 0][pasted][0]) - 1
            lam = 1.0 - box / (h * w)
            expected = np.zeros(n, np.float32)
            expected[i] += lam
            expected[src] += 1 - lam
            np.testing.assert_allclose(targets[i], expected, rtol=1e-5, atol=1e-6)
            checked += 1
    assert checked >= 20


def test_cutmix_box_and_targets_match_a_replay_of_its_draws():
    op = CutmixOperator(class_num=4, alpha=0.2)
    images, labels = _batch()
    perm, (y1, x1, y2, x2), lam = op.draw(images.shape, np.random.default_rng(3))
    out, targets = op.apply(images, labels, np.random.default_rng(3))
    assert lam == pytest.approx(1 - (y2 - y1) * (x2 - x1) / (8 * 10))
    expected = images.copy()
    expected[:, :, y1:y2, x1:x2] = images[perm, :, y1:y2, x1:x2]
    np.testing.assert_array_equal(out, expected)
    eye = np.eye(4, dtype=np.float32)
    np.testing.assert_allclose(targets, lam * eye[labels] + (1 - lam) * eye[labels[perm]], rtol=1e-6)


def test_batch_operators_take_and_return_paddleclas_lists_of_image_and_soft_target():
    images, labels = _batch(4)
    op = MixupOperator(class_num=4)
    op.reseed(0)
    out = op([(images[i], int(labels[i])) for i in range(4)])
    assert isinstance(out, list) and len(out) == 4
    img, target = out[0]
    assert img.shape == (3, 8, 10) and target.shape == (4,) and target.dtype == np.float32


def test_opsampler_with_zero_probabilities_returns_the_batch_unchanged_with_one_hot_targets():
    images, labels = _batch()
    ops = create_batch_operators([{"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.0},
                                                 "CutmixOperator": {"alpha": 1.0, "prob": 0.0}}}],
                                 class_num=4, seed=0)
    for _ in range(5):
        out, targets = ops(images, labels)
        np.testing.assert_array_equal(out, images)
        np.testing.assert_array_equal(targets, np.eye(4, dtype=np.float32)[labels])
        assert targets.dtype == np.float32


def test_opsampler_picks_each_operator_by_its_probability_and_none_for_the_rest():
    sampler = OpSampler(class_num=4, MixupOperator={"alpha": 0.8, "prob": 0.3},
                        CutmixOperator={"alpha": 1.0, "prob": 0.5})
    rng = np.random.default_rng(0)
    picks = [type(sampler.choose(rng)).__name__ for _ in range(4000)]
    assert abs(picks.count("MixupOperator") / 4000 - 0.3) < 0.03
    assert abs(picks.count("CutmixOperator") / 4000 - 0.5) < 0.03
    assert abs(picks.count("NoneType") / 4000 - 0.2) < 0.03
    assert sampler.none_prob == pytest.approx(0.2)


def test_opsampler_operator_without_prob_warns_and_is_never_picked():
    with pytest.warns(UserWarning, match="MixupOperator has no 'prob'"):
        sampler = OpSampler(class_num=3, MixupOperator={"alpha": 0.8})
    rng = np.random.default_rng(0)
    assert all(sampler.choose(rng) is None for _ in range(100))


def test_opsampler_does_not_mutate_the_config_it_is_given():
    cfg = [{"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.5}}}]
    create_batch_operators(cfg, class_num=3)
    assert cfg == [{"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.5}}}]


def test_batch_compose_is_reproducible_after_reseed():
    images, labels = _batch()
    ops = create_batch_operators([{"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.5},
                                                 "CutmixOperator": {"alpha": 1.0, "prob": 0.5}}}], class_num=4)
    ops.reseed(9)
    a = [ops(images, labels) for _ in range(4)]
    ops.reseed(9)
    b = [ops(images, labels) for _ in range(4)]
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_chained_batch_operators_mix_soft_targets_and_keep_rows_summing_to_one():
    images, labels = _batch()
    ops = create_batch_operators([{"MixupOperator": {"alpha": 1.0}}, {"CutmixOperator": {"alpha": 1.0}}],
                                 class_num=4, seed=2)
    out, targets = ops(images, labels)
    assert targets.shape == (6, 4)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)


# ------------------------------------------------------------------------------- pipelines and the reader

TRAIN_OPS = [{"DecodeImage": {"to_rgb": True, "channel_first": False}},
             {"RandCropImage": {"size": 12}}, {"RandFlipImage": {"flip_code": 1}},
             {"TimmAutoAugment": {"config_str": "rand-m9-mstd0.5-inc1", "interpolation": "bicubic", "img_size": 12}},
             {"NormalizeImage": {"scale": 1.0 / 255.0, "mean": MEAN, "std": STD, "order": ""}},
             {"RandomErasing": {"EPSILON": 0.25, "sl": 0.02, "sh": "1.0/3.0", "r1": 0.3, "attempt": 10,
                                "use_log_aspect": True, "mode": "pixel"}},
             {"ToCHWImage": None}]
BATCH_OPS = [{"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.5},
                            "CutmixOperator": {"alpha": 1.0, "prob": 0.5}}}]


@pytest.mark.parametrize("policy", [{"AutoAugment": None}, {"RandAugment": {"num_layers": 2, "magnitude": 9}},
                                    TRAIN_OPS[3]])
def test_contract_style_list_with_a_policy_and_random_erasing_builds_and_runs(policy):
    ops_list = TRAIN_OPS[:3] + [policy] + TRAIN_OPS[4:]
    data = _png(_image(20, 24))
    a = create_operators(ops_list, seed=7)
    b = create_operators(ops_list, seed=7)
    outs = [a(data) for _ in range(4)]
    for out in outs:
        assert out.shape == (3, 12, 12) and out.dtype == np.float32
    for out in outs:
        np.testing.assert_array_equal(out, b(data))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("augment_digits")
    write_digits_demo(str(root / "source"), image_size=12)
    prepare_dataset(str(root / "source"), str(root / "prepared"), shard_size=400, num_workers=0, progress=False)
    return str(root / "prepared")


def _take(prepared, n=3, **kw):
    return list(islice(iter_batches(prepared, "train", TRAIN_OPS, 16, epoch=1, seed=3, **kw), n))


def test_iter_batches_with_batch_ops_gives_float_soft_targets_that_sum_to_one(digits):
    batches = _take(digits, batch_transform_ops=BATCH_OPS)
    plain = _take(digits)
    for (x, y), (_, y_int) in zip(batches, plain):
        assert x.shape == (16, 3, 12, 12) and x.dtype == np.float32
        assert y.shape == (16, 10) and y.dtype == np.float32
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
        # every sample keeps weight on its own label (lam > 0 for its own part; OpSampler always mixes here)
        assert np.all(y[np.arange(16), y_int] > 0)
    assert any(not np.allclose(y, np.eye(10)[y_int]) for (_, y), (_, y_int) in zip(batches, plain))


def test_iter_batches_batch_ops_are_reproducible_and_the_same_with_worker_processes(digits):
    a = _take(digits, batch_transform_ops=BATCH_OPS)
    b = _take(digits, batch_transform_ops=BATCH_OPS)
    c = _take(digits, batch_transform_ops=BATCH_OPS, num_workers=2)
    for (xa, ya), (xb, yb), (xc, yc) in zip(a, b, c):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xc)
        np.testing.assert_array_equal(ya, yc)


def test_iter_batches_without_batch_ops_is_unchanged_by_the_new_keyword(digits):
    base = _take(digits)
    for other in (_take(digits, batch_transform_ops=None), _take(digits, batch_transform_ops=[])):
        for (x0, y0), (x1, y1) in zip(base, other):
            np.testing.assert_array_equal(x0, x1)
            np.testing.assert_array_equal(y0, y1)
            assert y1.dtype == np.int64 and y1.ndim == 1


def test_iter_batches_batch_ops_with_zero_probability_keep_images_and_give_one_hot_targets(digits):
    zero = [{"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.0}}}]
    for (x0, y0), (x1, y1) in zip(_take(digits), _take(digits, batch_transform_ops=zero)):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y1, np.eye(10, dtype=np.float32)[y0])


def test_iter_batches_class_num_sets_the_target_width_and_a_prebuilt_batch_compose_works(digits):
    (_, y), = _take(digits, 1, batch_transform_ops=BATCH_OPS, class_num=12)
    assert y.shape == (16, 12) and np.all(y[:, 10:] == 0)
    built = create_batch_operators(BATCH_OPS, class_num=10)
    assert isinstance(built, BatchCompose)
    (_, y1), = _take(digits, 1, batch_transform_ops=built)
    (_, y2), = _take(digits, 1, batch_transform_ops=BATCH_OPS)
    np.testing.assert_array_equal(y1, y2)


def test_iter_batches_bad_batch_op_fails_before_reading(digits):
    with pytest.raises(UnknownOperatorError, match="'MixUpOperator'"):
        next(iter_batches(digits, "train", TRAIN_OPS, 4, batch_transform_ops=[{"MixUpOperator": None}]))


def test_iter_batches_class_num_smaller_than_the_labels_is_an_error(digits):
    with pytest.raises(ValueError, match="outside \\[0, class_num=3\\)"):
        _take(digits, 1, batch_transform_ops=[{"MixupOperator": {"alpha": 1.0}}], class_num=3)


# ------------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("ops, exc, match", [
    ([{"AutoAugmnt": None}], UnknownOperatorError, "'AutoAugmnt'.*did you mean AutoAugment"),
    ([{"RandAugment": {"magnitud": 5}}], OperatorParamError, "RandAugment: unknown parameter 'magnitud'"),
    ([{"RandomErasing": {"epsilon": 0.5}}], OperatorParamError, "RandomErasing: unknown parameter 'epsilon'"),
    ([{"RandomErasing": {"mode": "noise"}}], OperatorParamError, "mode must be one of const, rand, pixel"),
    ([{"RandomErasing": {"sh": "1/three"}}], OperatorParamError, "RandomErasing: sh '1/three'"),
    ([{"TimmAutoAugment": {"config_str": "augmix-m5-w4-d2"}}], OperatorParamError, "AugMix"),
    ([{"TimmAutoAugment": {"config_str": "rand-m9-q3"}}], OperatorParamError,
     "unknown RandAugment config section 'q3'"),
    ([{"TimmAutoAugment": {"config_str": "fancy-m9"}}], OperatorParamError, "must start with 'rand'"),
    ([{"TimmAutoAugment": {"img_siz": 224}}], OperatorParamError, "TimmAutoAugment: unknown parameter 'img_siz'"),
    ([{"RandAugment": {"magnitude": 11}}], OperatorParamError, "magnitude must be in \\[0, 10\\]"),
    ([{"MixupOperator": {"alpha": 0.2}}], OperatorParamError, "MixupOperator is a batch operator"),
    ([{"Cutout": {"holes": 1}}], OperatorParamError, "Cutout: unknown parameter 'holes'"),
    ([{"Cutout": {"length": -4}}], OperatorParamError, "Cutout: length must be an integer >= 0"),
    ([{"GridMask": {"d1": 224, "d2": 96}}], OperatorParamError, "GridMask: d2 must be greater than d1"),
    ([{"GridMask": {"mode": 2}}], OperatorParamError, "GridMask: mode must be 0"),
    ([{"HideAndSeek": {"grid_sizes": []}}], OperatorParamError, "HideAndSeek: grid_sizes must be a non-empty list"),
])
def test_bad_per_sample_augment_ops_are_errors_naming_them(ops, exc, match):
    with pytest.raises(exc, match=match):
        create_operators(ops)


@pytest.mark.parametrize("ops, exc, match", [
    ([{"MixUpOperator": None}], UnknownOperatorError, "'MixUpOperator'"),
    ([{"MixupOperator": {"beta": 0.2}}], OperatorParamError, "MixupOperator: unknown parameter 'beta'"),
    ([{"CutmixOperator": {"alpha": 0.0}}], OperatorParamError, "CutmixOperator: alpha must be > 0"),
    ([{"OpSampler": {"FmixOperator": {"prob": 0.5}}}], UnknownOperatorError,
     "OpSampler: unknown batch operator 'FmixOperator'"),
    ([{"OpSampler": {"MixupOperator": {"prob": 0.5, "alfa": 1}}}], OperatorParamError,
     "OpSampler.MixupOperator: unknown parameter 'alfa'"),
    ([{"OpSampler": {"MixupOperator": {"prob": 0.7}, "CutmixOperator": {"prob": 0.6}}}], OperatorParamError,
     "sum to 1.3 > 1"),
    ([{"OpSampler": {"RandAugment": {"prob": 0.5}}}], OperatorParamError,
     "OpSampler: RandAugment is a per-sample operator: list it under transform_ops"),
    ([{"RandAugment": None}], OperatorParamError, "RandAugment is a per-sample operator"),
    ([{"MixupOperator": {"class_num": 7}}], OperatorParamError, "class_num 7 disagrees"),
    ("MixupOperator", OperatorParamError, "batch_transform_ops: expected a list"),
])
def test_bad_batch_ops_are_errors_naming_them(ops, exc, match):
    with pytest.raises(exc, match=match):
        create_batch_operators(ops, class_num=4)


def test_batch_op_without_any_class_num_is_an_error_naming_it():
    with pytest.raises(OperatorParamError, match="MixupOperator.*class_num"):
        create_batch_operators([{"MixupOperator": None}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(create_batch_operators([{"MixupOperator": {"class_num": 5}}])) == 1


# --- colour operators: ColorJitter, PCALighting (PaddleClas's ResNet18_dbb recipe) ----------------------------

def _photo(seed: int = 0, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_color_jitter_hue_shift_is_paddle_visions_adjust_hue():
    from paddle.vision.transforms import functional as F

    from ppipe.data.augment.colour import _shift_hue

    img = Image.fromarray(_photo())
    for factor in (-0.4, -0.1, 0.25, 0.4):
        assert np.array_equal(np.asarray(_shift_hue(img, factor)), np.asarray(F.adjust_hue(img, factor)))


def test_color_jitter_draws_factors_in_range_in_random_order_and_reproducibly():
    from ppipe.data.augment import ColorJitter

    ops = create_operators([{"ColorJitter": {"brightness": 0.4, "saturation": 0.4, "hue": 0.4}}], seed=3)
    again = create_operators([{"ColorJitter": {"brightness": 0.4, "saturation": 0.4, "hue": 0.4}}], seed=3)
    img = _photo()
    out = [ops(img) for _ in range(4)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in out)
    assert all(np.array_equal(a, again(img)) for a in out)
    assert not np.array_equal(out[0], out[1])
    # brightness alone scales every pixel by one factor in [0.6, 1.4]
    bright = ColorJitter(brightness=0.4)
    bright.rng = random.Random(0)
    gray = np.full((8, 8, 3), 100, np.uint8)
    levels = {int(bright(gray)[0, 0, 0]) for _ in range(50)}
    assert min(levels) >= 60 and max(levels) <= 140 and len(levels) > 10
    # saturation and hue leave a gray image gray; prob 0 leaves any image alone
    assert np.array_equal(ColorJitter(saturation=0.9, hue=0.5)(gray), gray)
    assert np.array_equal(ColorJitter(brightness=0.9, prob=0)(img), img)


def test_color_jitter_bad_ranges_are_named():
    from ppipe.data.augment import ColorJitter

    with pytest.raises(OperatorParamError, match=r"ColorJitter: brightness must be >= 0, got -0\.1"):
        ColorJitter(brightness=-0.1)
    with pytest.raises(OperatorParamError, match=r"ColorJitter: hue range must lie within \[-0\.5, 0\.5\]"):
        ColorJitter(hue=0.7)
    with pytest.raises(OperatorParamError, match=r"ColorJitter: contrast must be a number or a \[low, high\] pair"):
        ColorJitter(contrast="lots")


def test_pca_lighting_adds_one_offset_along_imagenet_colour_components():
    from ppipe.data.augment import PCALighting

    op = PCALighting()
    op.rng = random.Random(0)
    img = _photo()
    offsets = []
    for _ in range(4000):
        out = op(img)
        offset = out - img.astype(np.float32)
        assert out.dtype == np.float32 and np.allclose(offset, offset[0, 0], atol=1e-4)  # one RGB shift per image
        offsets.append(offset[0, 0])
    # offset = V @ (alpha * eigval), alpha ~ N(0, 0.1): covariance V diag((0.1 * eigval)^2) V^T
    want = PCALighting.EIGVEC @ np.diag((0.1 * PCALighting.EIGVAL) ** 2) @ PCALighting.EIGVEC.T
    assert np.allclose(np.cov(np.array(offsets).T), want, rtol=0.15, atol=2e-6)
    assert PCALighting(alphastd=0)(img) is img
    with pytest.raises(OperatorParamError, match=r"PCALighting: alphastd must be >= 0"):
        PCALighting(alphastd=-1)

"""PaddleClas-compatible transform operators: shapes, dtypes and values on known inputs, and their errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ppipe.data import create_operators
from ppipe.data.transforms import (OPERATORS, CropImage, DecodeImage, NormalizeImage, OperatorParamError,
                                   RandCropImage, RandFlipImage, ResizeImage, ToCHWImage, UnknownOperatorError)

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
CONTRACT_OPS = [{"DecodeImage": {"to_rgb": True, "channel_first": False}},
                {"RandCropImage": {"size": 224}}, {"RandFlipImage": {"flip_code": 1}},
                {"NormalizeImage": {"scale": 1.0 / 255.0, "mean": MEAN, "std": STD, "order": ""}},
                {"ToCHWImage": None}]


def _rgb(h: int, w: int) -> np.ndarray:
    """An HWC uint8 image whose pixels all differ: R = row, G = column, B = 7."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(h)[:, None]
    img[..., 1] = np.arange(w)[None, :]
    img[..., 2] = 7
    return img


def _encode(img: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return buf.getvalue()


def test_decode_image_returns_hwc_uint8_rgb_equal_to_the_png_pixels():
    img = _rgb(5, 7)
    out = DecodeImage(to_rgb=True, channel_first=False)(_encode(img))
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


def test_decode_image_to_rgb_false_gives_bgr_and_channel_first_gives_chw():
    img = _rgb(5, 7)
    np.testing.assert_array_equal(DecodeImage(to_rgb=False)(_encode(img)), img[:, :, ::-1])
    chw = DecodeImage(to_rgb=True, channel_first=True)(_encode(img))
    assert chw.shape == (3, 5, 7)
    np.testing.assert_array_equal(chw, img.transpose(2, 0, 1))


def test_decode_image_pil_backend_matches_cv2_on_png():
    img = _rgb(6, 4)
    np.testing.assert_array_equal(DecodeImage(backend="pil")(_encode(img)), img)


def test_decode_image_rejects_bytes_that_are_not_an_image():
    with pytest.raises(ValueError, match="not a decodable image"):
        DecodeImage()(b"definitely not an image")


def test_resize_image_resize_short_keeps_aspect_ratio():
    out = ResizeImage(resize_short=20)(_rgb(40, 60))
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8


def test_resize_image_size_is_width_then_height():
    assert ResizeImage(size=[10, 5])(_rgb(40, 60)).shape == (5, 10, 3)
    assert ResizeImage(size=16)(_rgb(40, 60)).shape == (16, 16, 3)


def test_resize_image_to_the_same_size_keeps_pixels():
    img = _rgb(12, 9)
    np.testing.assert_array_equal(ResizeImage(size=[9, 12])(img), img)


def test_resize_image_without_size_or_resize_short_is_an_error():
    with pytest.raises(OperatorParamError, match="size"):
        ResizeImage()


def test_crop_image_takes_the_center():
    img = _rgb(10, 12)
    out = CropImage(size=4)(img)
    assert out.shape == (4, 4, 3)
    np.testing.assert_array_equal(out, img[3:7, 4:8])


def test_rand_crop_image_output_size_and_full_crop_identity():
    out = RandCropImage(size=8)(_rgb(30, 20))
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    img = _rgb(16, 16)
    # scale 1 and ratio 1 on a square image: the crop is the whole image, resized to its own size
    np.testing.assert_array_equal(RandCropImage(size=16, scale=[1.0, 1.0], ratio=[1.0, 1.0])(img), img)


def test_rand_flip_image_returns_the_image_or_its_mirror_and_both_happen():
    img = _rgb(3, 4)
    ops = create_operators([{"RandFlipImage": {"flip_code": 1}}], seed=3)
    outs = [ops(img) for _ in range(40)]
    flipped = [np.array_equal(o, img[:, ::-1]) for o in outs]
    same = [np.array_equal(o, img) for o in outs]
    assert all(f or s for f, s in zip(flipped, same))
    assert 0 < sum(flipped) < 40
    vertical = RandFlipImage(flip_code=0)
    vertical.rng.seed(0)
    outs = [vertical(img) for _ in range(20)]
    assert all(np.array_equal(o, img) or np.array_equal(o, img[::-1]) for o in outs)
    with pytest.raises(OperatorParamError, match="flip_code"):
        RandFlipImage(flip_code=2)


def test_normalize_image_hwc_values():
    img = np.full((2, 3, 3), 255, np.uint8)
    out = NormalizeImage(scale=1.0 / 255.0, mean=MEAN, std=STD, order="")(img)
    assert out.shape == (2, 3, 3) and out.dtype == np.float32
    expected = (1.0 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    np.testing.assert_allclose(out[1, 2], expected, rtol=1e-6)
    zeros = NormalizeImage(order="")(np.zeros((1, 1, 3), np.uint8))  # PaddleClas defaults: 1/255, ImageNet stats
    np.testing.assert_allclose(zeros[0, 0], -np.array(MEAN) / np.array(STD), rtol=1e-6)


def test_normalize_image_chw_fp16_channel4_and_string_scale():
    chw = np.full((3, 2, 2), 51, np.uint8)
    out = NormalizeImage(scale="1.0/255.0", mean=[0, 0, 0], std=[1, 1, 1], order="chw", output_fp16=True,
                         channel_num=4)(chw)
    assert out.shape == (4, 2, 2) and out.dtype == np.float16
    np.testing.assert_allclose(out[:3].astype(np.float32), 0.2, rtol=1e-3)
    np.testing.assert_array_equal(out[3], 0)


def test_to_chw_image_transposes():
    img = _rgb(2, 5)
    out = ToCHWImage()(img)
    assert out.shape == (3, 2, 5)
    np.testing.assert_array_equal(out[1], img[..., 1])


def test_contract_example_list_on_jpeg_bytes_gives_3x224x224_float32():
    jpeg = _encode(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8), "JPEG")
    ops = create_operators(CONTRACT_OPS)
    chw = ops(jpeg)
    assert chw.shape == (3, 224, 224) and chw.dtype == np.float32
    lo = (0 - np.array(MEAN)) / np.array(STD)
    hi = (1 - np.array(MEAN)) / np.array(STD)
    assert np.all(chw >= lo.min() - 1e-5) and np.all(chw <= hi.max() + 1e-5)


def test_eval_list_resize_short_then_center_crop_is_deterministic():
    jpeg = _encode(_rgb(120, 160), "JPEG")
    ops = create_operators([{"DecodeImage": {"to_rgb": True, "channel_first": False}},
                            {"ResizeImage": {"resize_short": 64}}, {"CropImage": {"size": 56}},
                            {"NormalizeImage": {"scale": 0.00392157, "mean": MEAN, "std": STD, "order": ""}},
                            {"ToCHWImage": None}])
    a, b = ops(jpeg), ops(jpeg)
    assert a.shape == (3, 56, 56)
    np.testing.assert_array_equal(a, b)


def test_same_seed_same_augmentation_and_reseed_repeats_it():
    jpeg = _encode(_rgb(64, 80), "JPEG")
    a = create_operators(CONTRACT_OPS, seed=11)
    b = create_operators(CONTRACT_OPS, seed=11)
    first = a(jpeg)
    np.testing.assert_array_equal(first, b(jpeg))
    a.reseed(11)
    np.testing.assert_array_equal(a(jpeg), first)


def test_unknown_operator_error_names_it_and_lists_valid_ones():
    with pytest.raises(UnknownOperatorError) as e:
        create_operators([{"DecodeImage": None}, {"RandomFlipImage": {"flip_code": 1}}])
    msg = str(e.value)
    assert "'RandomFlipImage'" in msg and "did you mean RandFlipImage" in msg
    for name in ("CropImage", "DecodeImage", "NormalizeImage", "RandCropImage", "ResizeImage", "ToCHWImage"):
        assert name in msg


def test_unknown_parameter_error_names_it_and_lists_valid_ones():
    with pytest.raises(OperatorParamError) as e:
        create_operators([{"RandCropImage": {"size": 224, "sizes": 3}}])
    msg = str(e.value)
    assert msg.startswith("RandCropImage: unknown parameter 'sizes'")
    assert "valid parameters: size, scale, ratio, interpolation, use_log_aspect, backend" in msg


def test_missing_required_parameter_and_malformed_items_are_errors():
    with pytest.raises(OperatorParamError, match="CropImage"):
        create_operators([{"CropImage": None}])
    with pytest.raises(OperatorParamError, match=r"transform_ops\[0\]: expected a single-key mapping"):
        create_operators([{"DecodeImage": None, "ToCHWImage": None}])


def test_registry_holds_the_seven_operators():
    assert {"DecodeImage", "ResizeImage", "RandCropImage", "RandFlipImage", "CropImage", "NormalizeImage",
            "ToCHWImage"} <= set(OPERATORS)


def test_jpeg_fast_path_decodes_the_same_pixels_as_opencv():
    """DecodeImage decodes YCbCr/grayscale JPEGs with libjpeg-turbo (simplejpeg): same pixels as OpenCV."""
    import io

    import cv2
    from PIL import Image

    from ppipe.data.transforms import _is_plain_jpeg

    rng = np.random.default_rng(0)
    for mode in ("RGB", "L", "CMYK"):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).convert(mode).save(buf, "JPEG")
        data = buf.getvalue()
        assert _is_plain_jpeg(data) == (mode != "CMYK")  # CMYK goes through OpenCV
        want = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        for to_rgb in (True, False):
            got = create_operators([{"DecodeImage": {"to_rgb": to_rgb, "channel_first": False}}])(data)
            np.testing.assert_array_equal(got, want[:, :, ::-1] if to_rgb else want)

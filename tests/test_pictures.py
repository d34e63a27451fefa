"""pictures.load_picture: every mode to 8-bit gray or RGB, EXIF turned, fitted, bad files."""

import io

import numpy as np
import pytest
from PIL import Image

from mnistpipe import pictures
from mnistpipe.pictures import UnreadablePicture, load_picture


def encoded(image: Image.Image, image_format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def test_an_image_of_the_target_size_passes_unchanged():
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    loaded = load_picture(encoded(Image.fromarray(pixels)), "x.png", (28, 28), 1)
    assert loaded.dtype == np.uint8 and loaded.shape == (28, 28, 1)
    np.testing.assert_array_equal(loaded[..., 0], pixels)


def test_proportions_are_kept_and_the_rest_is_black_padding():
    white = Image.new("L", (40, 20), 255)
    loaded = load_picture(encoded(white), "wide.png", (20, 20), 1)[..., 0]
    assert (loaded[5:15] == 255).all() and (loaded[:5] == 0).all() and (loaded[15:] == 0).all()


@pytest.mark.parametrize(
    ("mode", "color"),
    [
        ("L", 200),
        ("RGB", (10, 200, 30)),
        ("RGBA", (10, 200, 30, 255)),
        ("LA", (200, 255)),
        ("P", None),
        ("PA", None),
        ("1", 1),
        ("CMYK", (0, 0, 0, 0)),
        ("I;16", 51400),
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_mode_becomes_eight_bit_gray_or_rgb(mode, color, channels):
    if mode in ("P", "PA"):
        # A palette made from colours, with transparency for PA.
        image = Image.new(
            "RGBA" if mode == "PA" else "RGB",
            (6, 6),
            (200, 100, 50, 255)[: 4 if mode == "PA" else 3],
        ).convert("P")
        if mode == "PA":
            image.info["transparency"] = 255
    else:
        image = Image.new(mode, (6, 6), color)
    image_format = "JPEG" if mode == "CMYK" else "PNG"
    loaded = load_picture(encoded(image, image_format), f"x.{image_format}", (6, 6), channels)
    assert loaded.shape == (6, 6, channels) and loaded.dtype == np.uint8
    assert loaded.max() > 0, "a light image came out black"


def test_sixteen_bit_values_are_scaled_not_clipped():
    image = Image.fromarray(np.full((4, 4), 65535 // 2, dtype=np.uint16))
    loaded = load_picture(encoded(image), "deep.png", (4, 4), 1)
    assert 126 <= loaded.max() <= 128


def test_transparent_parts_become_black():
    image = Image.new("RGBA", (4, 4), (255, 255, 255, 0))
    assert load_picture(encoded(image), "clear.png", (4, 4), 3).max() == 0


def test_the_exif_orientation_is_applied():
    image = Image.new("L", (30, 10), 0)
    image.paste(255, (0, 0, 10, 10))  # a white square at the left
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to view
    loaded = load_picture(encoded(image, "JPEG", exif=exif), "turned.jpg", (30, 10), 1)[..., 0]
    # Upright, the picture is 10 wide and 30 high, the white square at the top.
    assert loaded[:10].mean() > 200 and loaded[20:].mean() < 50


def test_the_format_is_read_from_the_bytes_not_the_name():
    content = encoded(Image.new("L", (5, 5), 77))
    assert load_picture(content, "really-a-png.jpg", (5, 5), 1).max() == 77


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "is empty"),
        (b"hello, not a picture", "is not an image (it starts with b'hello, n')"),
        (encoded(Image.new("L", (50, 50), 9))[:60], "is a damaged image"),
        (encoded(Image.new("L", (5, 5)), "TIFF"), "is not an image"),
    ],
)
def test_bad_files_are_one_line_naming_the_file_and_the_reason(content, fragment):
    with pytest.raises(UnreadablePicture) as raised:
        load_picture(content, "class/bad.png", (8, 8), 1)
    message = str(raised.value)
    assert message.startswith("class/bad.png ") and fragment in message and "\n" not in message
    assert raised.value.source == "class/bad.png" and fragment in raised.value.reason


def test_a_decompression_bomb_is_refused_before_its_pixels_are_read(monkeypatch):
    monkeypatch.setattr(pictures, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(
        UnreadablePicture, match=r"11x11 pixels, more than 100 \(a decompression bomb"
    ):
        load_picture(encoded(Image.new("L", (11, 11))), "bomb.png", (8, 8), 1)

"""One picture file → the uint8 (height, width, channels) array a model sees.

Preprocess (a folder of a user's own images) and ``mnistpipe predict`` both call
``load_picture``, so what serving feeds the model can never drift from what it
was trained on. Pillow does the decoding: it reads the format from the file's
bytes (a PNG named ``.jpg`` is a PNG), knows every mode, and applies EXIF
rotation; nothing here parses a format by hand.

The steps, in order: decode (refusing more than ``MAX_IMAGE_PIXELS`` before the
pixels are read), turn by the EXIF orientation, convert to 8-bit grayscale or
RGB (16-bit scaled, transparency laid on black, palette, CMYK and the rest
converted by Pillow), then fit into (height, width) keeping the proportions and
pad with black, centred. An image already of that size passes unchanged, so a
28x28 PNG gives exactly the pixels it holds.
"""

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnistpipe.errors import PipelineError

# The formats a class folder may hold, as Pillow names them (its JPEG reader also
# takes MPO, a JPEG with a second picture, as many cameras write). Anything else is
# "not an image" even if Pillow could read it (an .ico, a .psd).
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
FORMATS_SHOWN = "a PNG, JPEG, BMP, GIF or WebP image"
# The largest picture decoded: 8000x8000 pixels. Pillow reads the size from the
# header first, so a decompression bomb is refused before its pixels take memory.
MAX_IMAGE_PIXELS = 64_000_000
# Resizing filter: Pillow's bilinear filter widens with the scale (antialiased), so
# a large photo shrunk to 28x28 averages its pixels instead of skipping most of them.
RESAMPLING = Image.Resampling.BILINEAR


class UnreadablePicture(PipelineError):
    """A file that is not a whole picture of an accepted format; ``reason`` says why."""

    def __init__(self, source: str | os.PathLike, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{source} {reason}; expected {FORMATS_SHOWN}")


def decode(content: bytes, source: str | os.PathLike) -> Image.Image:
    """The picture in ``content`` (read from ``source``), decoded and turned upright."""
    if not content:
        raise UnreadablePicture(source, "is empty")
    with warnings.catch_warnings():
        # Pillow warns above MAX_IMAGE_PIXELS and raises only above twice that.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # All of Pillow's format plugins, not the five it loads first: MPO and WebP too.
        Image.init()
        try:
            image = Image.open(io.BytesIO(content), formats=FORMATS)
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise UnreadablePicture(
                    source,
                    f"is a {image.format} image of {width}x{height} pixels, more than "
                    f"{MAX_IMAGE_PIXELS:,} (a decompression bomb?)",
                )
            image.load()
            image = ImageOps.exif_transpose(image)
        except UnidentifiedImageError:
            raise UnreadablePicture(
                source, f"is not an image (it starts with {content[:8]!r})"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise UnreadablePicture(source, f"is too large to decode ({error})") from None
        # Truncated or damaged data: OSError ("image file is truncated"), SyntaxError
        # (a broken PNG chunk), ValueError or EOFError from a decoder.
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise UnreadablePicture(source, f"is a damaged image ({error})") from None
    return image


def to_eight_bit(image: Image.Image, channels: int) -> Image.Image:
    """``image`` as 8-bit grayscale ("L", ``channels`` 1) or RGB (``channels`` 3)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's own conversion clips 16-bit values at 255; scale them instead.
        # Mode "I" and "F" hold 16-bit data too when they come from a 16-bit PNG or TIFF.
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if values.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(np.round(values / scale), 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        # Transparent parts become black, the colour the padding has too.
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L" if channels == 1 else "RGB")


def fit(image: Image.Image, height: int, width: int) -> Image.Image:
    """``image`` scaled to fit (height, width) with its proportions kept, centred on black."""
    if image.size == (width, height):
        return image
    scale = min(width / image.width, height / image.height)
    # At least one pixel each way: a 1x5000 strip still keeps a row.
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resized = image.resize(size, resample=RESAMPLING)
    canvas = Image.new(image.mode, (width, height), 0)
    canvas.paste(resized, ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas


def load_picture(
    content: bytes, source: str | os.PathLike, image_size: tuple[int, int], channels: int
) -> np.ndarray:
    """The picture file's bytes as uint8 (height, width, channels): what the model is fed."""
    return read_picture(content, source, image_size, channels)[0]


def read_picture(
    content: bytes, source: str | os.PathLike, image_size: tuple[int, int], channels: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """``load_picture``'s pixels, and the (height, width) the picture had (upright) before."""
    height, width = image_size
    upright = decode(content, source)
    image = fit(to_eight_bit(upright, channels), height, width)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(height, width, channels), (upright.height, upright.width)

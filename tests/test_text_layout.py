"""Rendered text is laid out the same on every machine: Pillow's wheels carry libraqm but load
FriBiDi from the system at run time, and without it fall back to the basic layout engine, which
places glyphs differently (the committed training and golden images were made with raqm)."""

from PIL import Image, ImageDraw, ImageFont, features

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"    # fonts-dejavu-core


def test_pillow_lays_text_out_with_raqm():
    assert features.check("raqm"), ("Pillow has no raqm layout here: install the Debian "
                                     "packages libraqm0 and libfribidi0 (scripts/setup does)")
    font = ImageFont.truetype(DEJAVU, 24)
    assert font.layout_engine == ImageFont.Layout.RAQM
    image = Image.new("L", (200, 40))
    ImageDraw.Draw(image).text((4, 4), "Straße", font=font, fill=255)
    assert image.getbbox() is not None

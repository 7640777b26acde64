"""Target loading: bundled names, emoji characters, files, and bad input."""

import numpy as np
import pytest
from PIL import Image

from nca.errors import NCAError
from nca.targets import BUNDLED, EMOJI, find_emoji_font, load_target


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_targets_load_square_premultiplied(name):
    t = load_target(name)
    assert t.shape == (72, 72, 4) and t.dtype == np.float32
    assert (t[..., :3] <= t[..., 3:] + 1e-6).all()  # premultiplied colour never exceeds alpha
    assert t[:16].max() == 0 and t[-16:].max() == 0 and t[:, :16].max() == 0  # padding
    ink = np.argwhere(t[..., 3] > 0)
    extent = ink.max(0) - ink.min(0) + 1
    assert extent.max() == 40  # longer side is `size`


def test_size_and_padding_are_configurable():
    assert load_target("lizard", size=20, padding=3).shape == (26, 26, 4)


def test_emoji_character_means_the_bundled_image():
    np.testing.assert_array_equal(load_target(EMOJI["lizard"]), load_target("lizard"))


def test_png_file_target(tmp_path):
    img = np.zeros((30, 60, 4), np.uint8)
    img[5:25, 10:50] = (255, 0, 0, 128)
    Image.fromarray(img).save(tmp_path / "t.png")
    t = load_target(str(tmp_path / "t.png"), size=20, padding=2)
    assert t.shape == (24, 24, 4)
    assert abs(t[12, 12, 0] - 128 / 255) < 0.01  # interior: red 1.0 premultiplied by alpha 0.5
    assert abs(t[12, 12, 3] - 128 / 255) < 0.01 and t[12, 12, 1] == 0


def test_unbundled_emoji_renders_from_the_font_or_says_what_to_install(monkeypatch):
    if find_emoji_font() is not None:
        t = load_target("\U0001F419")  # octopus, not bundled
        assert t.shape == (72, 72, 4) and t[..., 3].max() > 0.9
    monkeypatch.setenv("NCA_EMOJI_FONT", "/nonexistent/font.ttf")
    with pytest.raises(NCAError, match="fonts-noto-color-emoji"):
        load_target("\U0001F419")


def test_bad_targets_are_clear_errors(tmp_path):
    with pytest.raises(NCAError, match="not found"):
        load_target(str(tmp_path / "missing.png"))
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(NCAError, match="cannot read"):
        load_target(str(tmp_path / "corrupt.png"))
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(NCAError, match="empty alpha"):
        load_target(str(tmp_path / "empty.png"))
    with pytest.raises(NCAError, match="unknown target"):
        load_target("definitely-not-a-target")
    with pytest.raises(NCAError, match="size"):
        load_target("lizard", size=0)

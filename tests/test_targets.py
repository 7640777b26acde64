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


def _disc_on_white(path, transparent_corner=False):
    """Planted: a red disc with a white dot inside it, on an opaque white background."""
    yy, xx = np.mgrid[:40, :40]
    a = np.full((40, 40, 4), 255, np.uint8)
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 15 ** 2
    a[disc, 1:3] = 0  # red
    a[(yy - 20) ** 2 + (xx - 20) ** 2 <= 3 ** 2] = 255  # a white dot enclosed by red
    if transparent_corner:
        a[0, 0, 3] = 0
    Image.fromarray(a, "RGBA").save(path)
    return disc


def test_an_opaque_target_warns_and_white_background_makes_it_transparent(tmp_path):
    import warnings

    from nca.targets import OpaqueTargetWarning

    _disc_on_white(tmp_path / "w.png")
    with pytest.warns(OpaqueTargetWarning, match="--target-background white"):
        t = load_target(str(tmp_path / "w.png"), size=40, padding=0)
    assert t[..., 3].min() == 1.0  # as warned: the background would be learned
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning once the background is handled
        t = load_target(str(tmp_path / "w.png"), size=40, padding=0, background="white")
    assert t[0, 0, 3] == 0.0 and t[39, 39, 3] == 0.0 and t[5, 20, 3] == 1.0  # corners gone, the disc kept
    assert t[20, 20, 3] == 1.0 and t[20, 20, :3].min() == 1.0  # the white dot inside the body kept
    assert 0.15 < (t[..., 3] > 0.5).mean() < 0.6  # about the disc's area (pi 15^2 / 40^2 = 0.44)
    # negative controls: an image with any transparency does not warn; bundled targets neither
    _disc_on_white(tmp_path / "t.png", transparent_corner=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_target(str(tmp_path / "t.png"))
        load_target("lizard")
    with pytest.raises(NCAError, match="target_background must be one of none, white"):
        load_target("lizard", background="black")


def test_target_background_is_a_config_field_and_a_train_flag():
    from nca.config import Config, field_flag, preset

    assert preset("tiny", target_background="white").target_background == "white"
    assert Config.from_dict({k: v for k, v in Config().to_dict().items() if k != "target_background"}) == Config()
    with pytest.raises(NCAError, match="target_background"):
        preset("tiny", target_background="grey")
    assert field_flag("target_background") == "--target-background"

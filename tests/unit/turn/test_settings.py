"""TurnSettings: defaults, derived release, profiles, and ConfigError naming the dotted key."""

import dataclasses

import pytest

from sipbridge.errors import ConfigError
from sipbridge.turn.settings import PROFILES, TurnSettings, default_release, resolve


def test_defaults_match_the_documented_values():
    """An empty section gives Silero at 0.5 / 300 / 500 / 200 ms / -45 dBFS with # to commit and * to clear."""
    s = resolve({})
    assert (s.type, s.threshold, s.min_speech_ms, s.silence_threshold_ms, s.prefix_padding_ms) == (
        "silero", 0.5, 300, 500, 200)
    assert (s.silence_floor_dbfs, s.commit_digit, s.clear_digit) == (-45.0, "#", "*")
    assert s == TurnSettings() == resolve(None)


@pytest.mark.parametrize("threshold, release", [(0.5, 0.35), (0.7, 0.55), (0.15, 0.05), (0.1, 0.05), (0.04, 0.02)])
def test_release_defaults_to_threshold_minus_015_floored_at_005(threshold, release):
    """The derived release is threshold - 0.15, never under 0.05, and stays below a tiny threshold."""
    assert TurnSettings(threshold=threshold).release == pytest.approx(release)
    assert default_release(threshold) < threshold


def test_explicit_release_is_kept():
    """An explicit release_threshold wins over the derived one."""
    assert TurnSettings(threshold=0.6, release_threshold=0.2).release == 0.2


@pytest.mark.parametrize("name, threshold, prefix, silence", [
    ("fast", 0.6, 200, 300), ("balanced", 0.5, 300, 500), ("patient", 0.4, 400, 800), ("noisy", 0.7, 300, 600)])
def test_profiles_set_threshold_prefix_and_silence(name, threshold, prefix, silence):
    """Each profile sets threshold / prefix_padding_ms / silence_threshold_ms, and the release follows it."""
    s = resolve({"profile": name})
    assert (s.threshold, s.prefix_padding_ms, s.silence_threshold_ms) == (threshold, prefix, silence)
    assert s.release == pytest.approx(threshold - 0.15)
    assert set(PROFILES) == {"fast", "balanced", "patient", "noisy"}


def test_explicit_keys_override_the_profile():
    """Keys next to `profile` override the profile's values and leave its other values alone."""
    s = resolve({"profile": "patient", "silence_threshold_ms": 650, "commit_digit": 5})
    assert (s.threshold, s.prefix_padding_ms, s.silence_threshold_ms) == (0.4, 400, 650)
    assert s.commit_digit == "5"  # YAML reads a bare digit as an int


@pytest.mark.parametrize("mapping, key, words", [
    ({"treshold": 0.5}, "turn_detection.treshold", "unknown key"),
    ({"profile": "snappy"}, "turn_detection.profile", "unknown profile"),
    ({"profile": 3}, "turn_detection.profile", "unknown profile"),
    ({"type": "webrtc"}, "turn_detection.type", "one of"),
    ({"type": 1}, "turn_detection.type", "string"),
    ({"threshold": "0.5"}, "turn_detection.threshold", "number"),
    ({"threshold": True}, "turn_detection.threshold", "number"),
    ({"threshold": float("nan")}, "turn_detection.threshold", "finite"),
    ({"threshold": 1.0}, "turn_detection.threshold", "between 0 and 1"),
    ({"threshold": 0}, "turn_detection.threshold", "between 0 and 1"),
    ({"release_threshold": 0.5}, "turn_detection.release_threshold", "below threshold"),
    ({"profile": "noisy", "release_threshold": 0.8}, "turn_detection.release_threshold", "below threshold"),
    ({"release_threshold": 0.0}, "turn_detection.release_threshold", "above 0"),
    ({"min_speech_ms": -1}, "turn_detection.min_speech_ms", "between 0 and"),
    ({"min_speech_ms": 300.0}, "turn_detection.min_speech_ms", "integer"),
    ({"silence_threshold_ms": False}, "turn_detection.silence_threshold_ms", "integer"),
    ({"silence_threshold_ms": 60000}, "turn_detection.silence_threshold_ms", "between 0 and 10000"),
    ({"prefix_padding_ms": 5000}, "turn_detection.prefix_padding_ms", "between 0 and 2000"),
    ({"silence_floor_dbfs": 3}, "turn_detection.silence_floor_dbfs", "-120 and 0"),
    ({"silence_floor_dbfs": -121}, "turn_detection.silence_floor_dbfs", "-120 and 0"),
    ({"commit_digit": "X"}, "turn_detection.commit_digit", "DTMF"),
    ({"commit_digit": "##"}, "turn_detection.commit_digit", "DTMF"),
    ({"clear_digit": 12}, "turn_detection.clear_digit", "DTMF"),
    ({"clear_digit": "#"}, "turn_detection.clear_digit", "differ"),
])
def test_bad_values_raise_config_error_with_the_dotted_key(mapping, key, words):
    """Unknown keys, wrong types and out-of-range values name the dotted key and say why."""
    with pytest.raises(ConfigError) as info:
        resolve(mapping)
    assert info.value.key == key
    assert words in info.value.reason


def test_key_prefix_is_used_in_errors():
    """resolve() reports keys under the prefix it was given."""
    with pytest.raises(ConfigError) as info:
        resolve({"threshold": 2}, key_prefix="tenants.acme.turn")
    assert info.value.key == "tenants.acme.turn.threshold"


def test_a_section_that_is_not_a_mapping_names_the_section():
    """`turn_detection: fast` (a string, not a mapping) is rejected at the section key."""
    with pytest.raises(ConfigError) as info:
        resolve("fast")
    assert info.value.key == "turn_detection"


def test_direct_construction_is_validated_too():
    """TurnSettings(...) with a bad value raises the same ConfigError as resolve()."""
    with pytest.raises(ConfigError) as info:
        TurnSettings(threshold=1.5)
    assert info.value.key == "turn_detection.threshold"


def test_settings_are_frozen_and_with_changes_rederives_release():
    """Settings cannot be mutated; with_changes(threshold=...) re-derives an implicit release."""
    s = TurnSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.threshold = 0.9  # type: ignore[misc]
    t = s.with_changes(threshold=0.8)
    assert t.release == pytest.approx(0.65) and s.release == pytest.approx(0.35)


def test_a_null_profile_means_no_profile():
    """`profile: null`, as the README's defaults file writes it, resolves to the plain defaults."""
    assert resolve({"profile": None}) == resolve({})

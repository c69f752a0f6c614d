"""The crypto kernel: envelopes, the settings key provider, blind indexes, streamed files."""

from __future__ import annotations

import base64
import io
import os
import tracemalloc

import pytest
from django.core.exceptions import ImproperlyConfigured

from audits.crypto import envelope, streams
from audits.crypto.errors import DecryptionFailed, MalformedEnvelope, UnknownKey
from audits.crypto.providers import SettingsKeyProvider


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture
def keys(settings):
    settings.FIELD_ENCRYPTION_KEYS = [new_key()]
    return settings


def test_a_value_round_trips_and_names_its_algorithm_and_key(keys) -> None:
    text = envelope.encrypt("ana@example.com", context="t.contact")
    algorithm, key_id = text.split(":")[1:3]
    assert algorithm == "aes256gcm-v1"
    assert key_id == SettingsKeyProvider(keys.FIELD_ENCRYPTION_KEYS).key_ids()[0]
    assert "ana" not in text
    assert envelope.decrypt(text, context="t.contact") == "ana@example.com"
    assert envelope.encrypt("ana@example.com", context="t.contact") != text  # a new data key


def test_a_tampered_ciphertext_is_refused(keys) -> None:
    text = envelope.encrypt("secret", context="t.c")
    head, sealed = text.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4)))
    raw[-1] ^= 1
    forged = head + ":" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(DecryptionFailed):
        envelope.decrypt(forged, context="t.c")


def test_an_envelope_moved_to_another_field_is_refused(keys) -> None:
    text = envelope.encrypt("secret", context="t.email")
    with pytest.raises(DecryptionFailed):
        envelope.decrypt(text, context="t.name")


def test_a_wrong_key_is_refused(keys, settings) -> None:
    text = envelope.encrypt("secret", context="t.c")
    old_id = envelope.key_id_of(text)
    settings.FIELD_ENCRYPTION_KEYS = [new_key()]
    with pytest.raises(UnknownKey, match=old_id):
        envelope.decrypt(text, context="t.c")
    # The same key id with other key material (a forged id) does not authenticate either.
    forged = text.replace(old_id, envelope.key_id_of(envelope.encrypt("x", context="t.c")))
    with pytest.raises(DecryptionFailed):
        envelope.decrypt(forged, context="t.c")


def test_malformed_envelopes_and_keys_are_clear_errors(keys) -> None:
    with pytest.raises(MalformedEnvelope):
        envelope.decrypt("enc:aes256gcm-v1:abc", context="t.c")
    with pytest.raises(ImproperlyConfigured, match="32 are needed"):
        SettingsKeyProvider(["c2hvcnQ="])
    with pytest.raises(ImproperlyConfigured, match="repeated"):
        key = new_key()
        SettingsKeyProvider([key, key])


def test_the_dev_key_from_settings_and_dev_env_is_accepted() -> None:
    from tools.dev_env import DEV_FIELD_KEY

    assert len(SettingsKeyProvider([new_key(), DEV_FIELD_KEY]).key_ids()) == 2


def test_rotation_rewraps_the_data_key_and_keeps_the_ciphertext(keys, settings) -> None:
    text = envelope.encrypt("secret", context="t.c")
    settings.FIELD_ENCRYPTION_KEYS = [new_key(), *settings.FIELD_ENCRYPTION_KEYS]
    assert envelope.decrypt(text, context="t.c") == "secret"  # old values read meanwhile
    rotated = envelope.rotate(text, context="t.c")
    assert envelope.key_id_of(rotated) != envelope.key_id_of(text)
    assert rotated.rsplit(":", 1)[1] == text.rsplit(":", 1)[1]
    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]
    assert envelope.decrypt(rotated, context="t.c") == "secret"


def test_blind_index_is_keyed_and_finds_under_every_key(keys, settings) -> None:
    first = envelope.blind_index("ana@example.com")
    assert first == envelope.blind_index("ana@example.com")
    assert first != envelope.blind_index("bob@example.com")
    settings.FIELD_ENCRYPTION_KEYS = [new_key(), *settings.FIELD_ENCRYPTION_KEYS]
    candidates = envelope.blind_index_candidates("ana@example.com")
    assert first in candidates and len(candidates) == 2
    assert envelope.blind_index("ana@example.com") != first  # the newest key's index


def _encrypt_bytes(data: bytes) -> bytes:
    return b"".join(
        streams.encrypt_chunks(iter([data[i : i + 7000] for i in range(0, len(data), 7000)]))
    )


@pytest.mark.parametrize("size", [0, 1, streams.SEGMENT, streams.SEGMENT + 1, 3 * streams.SEGMENT])
def test_a_file_round_trips_in_segments(keys, size) -> None:
    data = os.urandom(size)
    sealed = _encrypt_bytes(data)
    assert size < 64 or data[:64] not in sealed
    assert streams.DecryptingReader(io.BytesIO(sealed)).read() == data


def test_a_tampered_or_truncated_file_is_refused(keys) -> None:
    data = os.urandom(2 * streams.SEGMENT + 10)
    sealed = bytearray(_encrypt_bytes(data))
    flipped = bytes(sealed[:-5]) + bytes([sealed[-5] ^ 1]) + bytes(sealed[-4:])
    with pytest.raises(DecryptionFailed):
        streams.DecryptingReader(io.BytesIO(flipped)).read()
    # Dropping the last segment: the one before it was not sealed as the last.
    truncated = bytes(sealed[: len(sealed) - (10 + streams.TAG)])
    with pytest.raises(DecryptionFailed):
        streams.DecryptingReader(io.BytesIO(truncated)).read()
    with pytest.raises(MalformedEnvelope):
        streams.DecryptingReader(io.BytesIO(b"%PDF-1.4 plain")).read()


def test_a_10_mb_file_encrypts_and_decrypts_in_bounded_memory(keys, tmp_path) -> None:
    size = 10 * 1024 * 1024
    chunk = os.urandom(64 * 1024)
    path = tmp_path / "sealed"
    tracemalloc.start()
    try:
        with open(path, "wb") as sink:
            for part in streams.encrypt_chunks(chunk for _ in range(size // len(chunk))):
                sink.write(part)
        _, encrypt_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0
        with open(path, "rb") as source:
            reader = streams.DecryptingReader(source)
            while block := reader.read(8192):
                total += len(block)
        _, decrypt_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size and path.stat().st_size > size
    # About a segment or two at a time, never the file.
    assert encrypt_peak < 1024 * 1024 and decrypt_peak < 1024 * 1024

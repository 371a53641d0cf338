"""Security filters: hashes, HMAC, encrypt/decrypt, JWS/JWE, secureid, uuid, create_uid."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final

from daemon.expr.filters.args import _binary, _bool_arg, _bytes, _int, _object, _text
from daemon.expr.filters.base import FilterContext
from daemon.expr.filters.compare import _fail, loose_equals
from daemon.expr.filters.convert import f_json_decode, f_json_encode

# --- security --------------------------------------------------------------------------------


def _hasher(name: str, algo: str) -> Callable[..., Any]:
    def impl(value: Any, raw: Any = False) -> str | bytes:
        digest = hashlib.new(algo, _bytes(name, value), usedforsecurity=False)
        return _binary(digest.digest()) if _bool_arg(raw) else digest.hexdigest()

    return impl


def _hmacer(name: str, algo: str) -> Callable[..., Any]:
    def impl(value: Any, key: Any, raw: Any = False) -> str | bytes:
        mac = hmac.new(_bytes(name, key), _bytes(name, value), algo)
        return _binary(mac.digest()) if _bool_arg(raw) else mac.hexdigest()

    return impl


_CIPHERS: Final = {
    f"aes-{bits}-{mode}": (bits // 8, mode) for bits in (128, 192, 256) for mode in ("cbc", "gcm")
}
_GCM_TAG: Final = 16


def _cipher_args(name: str, algorithm: Any, key: Any, iv: Any) -> tuple[str, bytes, bytes]:
    algo = _text(name, algorithm).strip().lower()
    if algo not in _CIPHERS:
        raise _fail(name, f'supports {", ".join(_CIPHERS)}, got "{algo[:30]}"')
    size, mode = _CIPHERS[algo]
    # As PHP's openssl_encrypt: the key is raw bytes, NUL-padded or cut to the key size;
    # a CBC IV likewise to 16 bytes. A GCM IV is used as given (12 bytes is standard).
    key_b = _bytes(name, key)[:size].ljust(size, b"\0")
    iv_b = _bytes(name, iv)
    if mode == "cbc":
        iv_b = iv_b[:16].ljust(16, b"\0")
    elif not iv_b:
        raise _fail(name, "needs a non-empty IV for GCM")
    return mode, key_b, iv_b


def f_encrypt(value: Any, algorithm: Any, key: Any, iv: Any) -> str | bytes:
    """AES-CBC (PKCS#7 padded) or AES-GCM; raw binary out. GCM output is ciphertext
    followed by its 16-byte tag, which `decrypt` expects."""
    from cryptography.hazmat.primitives import padding as sym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    mode, key_b, iv_b = _cipher_args("encrypt", algorithm, key, iv)
    data = _bytes("encrypt", value)
    if mode == "gcm":
        return _binary(AESGCM(key_b).encrypt(iv_b, data, None))
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    enc = Cipher(algorithms.AES(key_b), modes.CBC(iv_b)).encryptor()
    return _binary(enc.update(padded) + enc.finalize())


def f_decrypt(value: Any, algorithm: Any, key: Any, iv: Any) -> str | bytes:
    from cryptography.hazmat.primitives import padding as sym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    mode, key_b, iv_b = _cipher_args("decrypt", algorithm, key, iv)
    data = _bytes("decrypt", value)
    try:
        if mode == "gcm":
            return _binary(AESGCM(key_b).decrypt(iv_b, data, None))
        dec = Cipher(algorithms.AES(key_b), modes.CBC(iv_b)).decryptor()
        padded = dec.update(data) + dec.finalize()
        unpadder = sym_padding.PKCS7(128).unpadder()
        return _binary(unpadder.update(padded) + unpadder.finalize())
    except Exception:  # InvalidTag, bad padding, wrong length: one answer, no oracle detail
        raise _fail("decrypt", "failed: wrong key, IV or algorithm, or corrupted data") from None


# JWT: joserfc covers both JWS and JWE (pyjwt has no JWE), on top of `cryptography`.


def _jose_key(name: str, key: Any, alg: str) -> Any:
    from joserfc import jwk
    from joserfc.errors import SecurityWarning

    kind = "oct"
    if alg.startswith(("RS", "PS", "RSA")):
        kind = "RSA"
    elif alg.startswith(("ES", "ECDH")):
        kind = "EC"
    elif alg in ("EdDSA", "Ed25519", "Ed448"):
        kind = "OKP"
    # joserfc only warns about weak keys (an HS256 secret under 14 bytes); refuse them.
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        try:
            if isinstance(key, Mapping):
                return jwk.import_key(dict(key))
            return jwk.import_key(_bytes(name, key), kind)  # type: ignore[call-overload]
        except SecurityWarning as exc:
            raise _fail(name, f"refuses the key: {exc}") from None
        except Exception as exc:
            raise _fail(name, f"cannot use the key for {alg}: {exc}") from None


def _jose(name: str, fn: Callable[[], Any]) -> Any:
    from joserfc.errors import JoseError, SecurityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        try:
            return fn()
        except SecurityWarning as exc:
            raise _fail(name, f"refuses the key: {exc}") from None
        except (JoseError, ValueError, TypeError) as exc:
            raise _fail(name, f"failed: {exc.__class__.__name__}: {exc}") from None


def _claims(ctx: FilterContext, name: str, value: Any, ttl: Any) -> bytes:
    seconds = _int(name, ttl) if ttl is not None else 0
    payload = value
    if seconds > 0:
        if not isinstance(value, Mapping):
            raise _fail(name, "can only add an expiry (ttl) to an object of claims")
        now_s = ctx.now_ms() // 1000
        payload = {**value, "iat": value.get("iat", now_s), "exp": now_s + seconds}
    return f_json_encode(payload).encode()


def _verify_claims(ctx: FilterContext, name: str, payload: Any, check: Any, drift: Any) -> None:
    if not isinstance(payload, Mapping):
        return
    slack = _int(name, drift) if drift is not None else 0
    now_s = ctx.now_ms() // 1000
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if isinstance(exp, int | float) and now_s > exp + slack:
        raise _fail(name, "token has expired")
    if isinstance(nbf, int | float) and now_s + slack < nbf:
        raise _fail(name, "token is not valid yet")
    for claim, expected in _object(name, check).items():
        if not loose_equals(payload.get(claim), expected):
            raise _fail(name, f'claim "{claim}" does not match')


def f_jws_encode(
    ctx: FilterContext, value: Any, headers: Any, key: Any, alg: Any = "HS256", ttl: Any = 0
) -> str:
    from joserfc import jws

    algorithm = _text("jws_encode", alg if alg is not None else "HS256")
    if algorithm.lower() == "none":
        raise _fail("jws_encode", 'refuses the "none" algorithm')
    header = {"typ": "JWT", **_object("jws_encode", headers), "alg": algorithm}
    payload = _claims(ctx, "jws_encode", value, ttl)
    k = _jose_key("jws_encode", key, algorithm)
    out: str = _jose(
        "jws_encode", lambda: jws.serialize_compact(header, payload, k, algorithms=[algorithm])
    )
    return out


def f_jws_decode(
    ctx: FilterContext, value: Any, check: Any, key: Any, alg: Any = "HS256", drift: Any = 0
) -> Any:
    from joserfc import jws

    algorithm = _text("jws_decode", alg if alg is not None else "HS256")
    if algorithm.lower() == "none":
        raise _fail("jws_decode", 'refuses the "none" algorithm')
    token = _text("jws_decode", value)
    k = _jose_key("jws_decode", key, algorithm)
    obj = _jose("jws_decode", lambda: jws.deserialize_compact(token, k, algorithms=[algorithm]))
    payload = f_json_decode(obj.payload)
    _verify_claims(ctx, "jws_decode", payload, check, drift)
    return payload


def f_jwe_encode(
    ctx: FilterContext,
    value: Any,
    headers: Any,
    key: Any,
    key_alg: Any = "A256KW",
    content_alg: Any = "A256CBC-HS512",
    ttl: Any = 0,
) -> str:
    from joserfc import jwe

    ka = _text("jwe_encode", key_alg if key_alg is not None else "A256KW")
    ca = _text("jwe_encode", content_alg if content_alg is not None else "A256CBC-HS512")
    header = {**_object("jwe_encode", headers), "alg": ka, "enc": ca}
    payload = _claims(ctx, "jwe_encode", value, ttl)
    k = _jose_key("jwe_encode", key, ka)
    out: str = _jose(
        "jwe_encode", lambda: jwe.encrypt_compact(header, payload, k, algorithms=[ka, ca])
    )
    return out


def f_jwe_decode(
    ctx: FilterContext,
    value: Any,
    check: Any,
    key: Any,
    key_alg: Any = "A256KW",
    content_alg: Any = "A256CBC-HS512",
    drift: Any = 0,
) -> Any:
    from joserfc import jwe

    ka = _text("jwe_decode", key_alg if key_alg is not None else "A256KW")
    ca = _text("jwe_decode", content_alg if content_alg is not None else "A256CBC-HS512")
    token = _text("jwe_decode", value)
    k = _jose_key("jwe_decode", key, ka)
    obj = _jose("jwe_decode", lambda: jwe.decrypt_compact(token, k, algorithms=[ka, ca]))
    payload = f_json_decode(obj.plaintext)
    _verify_claims(ctx, "jwe_decode", payload, check, drift)
    return payload


# secureid: Xano's own format is undocumented, so this is ours: a 4-byte HMAC tag of the
# id, then the id XORed with a keystream derived from the tag (a deterministic, verifiable
# SIV-style construction), base64url. Decoding checks the tag, so typos and ids encoded
# with another salt are errors, not wrong ids.


def _secureid_key(name: str, salt: Any) -> bytes:
    return hashlib.sha256(b"cronstack-secureid\0" + _bytes(name, salt or "")).digest()


def f_secureid_encode(value: Any, salt: Any = "") -> str:
    n = _int("secureid_encode", value)
    if not -(2**63) <= n < 2**63:
        raise _fail("secureid_encode", "id must fit in 64 bits")
    key = _secureid_key("secureid_encode", salt)
    plain = n.to_bytes(8, "big", signed=True)
    tag = hmac.new(key, plain, "sha256").digest()[:4]
    stream = hmac.new(key, b"stream" + tag, "sha256").digest()[:8]
    cipher = bytes(a ^ b for a, b in zip(plain, stream, strict=True))
    return base64.urlsafe_b64encode(tag + cipher).decode("ascii").rstrip("=")


def f_secureid_decode(value: Any, salt: Any = "") -> int:
    text = _text("secureid_decode", value).strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 12:
        raise _fail("secureid_decode", "got text that is not a secure id")
    key = _secureid_key("secureid_decode", salt)
    tag, cipher = raw[:4], raw[4:]
    stream = hmac.new(key, b"stream" + tag, "sha256").digest()[:8]
    plain = bytes(a ^ b for a, b in zip(cipher, stream, strict=True))
    if not hmac.compare_digest(hmac.new(key, plain, "sha256").digest()[:4], tag):
        raise _fail("secureid_decode", "got an id encoded with another salt, or a damaged one")
    return int.from_bytes(plain, "big", signed=True)


def f_uuid(value: Any) -> str:
    return str(uuid.uuid4())


def f_create_uid(value: Any) -> int:
    """A unique positive 63-bit integer: milliseconds since the epoch shifted left 22 bits,
    plus 22 random bits (time-ordered, fits a BIGINT column)."""
    return ((time.time_ns() // 1_000_000) << 22 | secrets.randbits(22)) & (2**63 - 1)

"""Text to speech for <Say>: espeak-ng -> 22,050 Hz WAV -> soxr -> 8 kHz μ-law, cached.

Owns: the voice/language mapping (Twilio ``man``/``woman``/``alice``/``Polly.*`` and
BCP-47 languages -> espeak-ng voice names with a male/female variant), running espeak-ng
(``trio.run_process``, text on stdin so it is never parsed as options, WAV on stdout), an
in-memory LRU cache per (text, voice, language) bounded in bytes, an optional on-disk cache
(``cache_dir``), and single-flight (concurrent identical requests run espeak-ng once).

Rules: ``synthesize`` returns 8 kHz μ-law bytes; text is capped at ``MAX_TEXT`` chars.
Error handling: ``TtsError`` when espeak-ng is missing, fails, times out (``timeout``) or
writes no audio; no retries (the interpreter skips the <Say>). Disk-cache errors are
ignored (the cache is an optimisation).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import OrderedDict

import trio

from gateway.voice import audio

MAX_TEXT = 4096
ENGINE = "espeak-ng"

_LANGS = {
    "en-us": "en-us", "en-gb": "en-gb", "en-au": "en-gb", "en-ca": "en-us",
    "en-in": "en-gb", "en-ie": "en-gb", "en-nz": "en-gb", "en-za": "en-gb",
    "es-es": "es", "es-mx": "es-419", "es-us": "es-419", "fr-fr": "fr", "fr-ca": "fr",
    "de-de": "de", "it-it": "it", "pt-br": "pt-br", "pt-pt": "pt", "nl-nl": "nl",
    "ja-jp": "ja", "ko-kr": "ko", "zh-cn": "cmn", "zh-tw": "cmn", "zh-hk": "yue",
    "ru-ru": "ru", "pl-pl": "pl", "sv-se": "sv", "da-dk": "da", "nb-no": "nb",
    "fi-fi": "fi", "ca-es": "ca", "tr-tr": "tr", "ar-ae": "ar", "hi-in": "hi",
    "cy-gb": "cy", "is-is": "is", "ro-ro": "ro", "el-gr": "el", "cs-cz": "cs",
}
_FEMALE_POLLY = {"joanna", "salli", "kimberly", "kendra", "ivy", "amy", "emma", "nicole",
                 "olivia", "aria", "ruth", "danielle", "raveena", "aditi", "celine", "lea",
                 "marlene", "vicki", "conchita", "lucia", "penelope", "lupe", "camila",
                 "vitoria", "ines", "carla", "bianca", "mizuki", "takumi", "seoyeon",
                 "zhiyu", "tatyana", "ewa", "maja", "astrid", "naja", "liv", "filiz"}


class TtsError(RuntimeError):
    """espeak-ng missing, failed or produced no audio."""


def espeak_voice(voice: str = "man", language: str = "en-US") -> str:
    """Twilio voice + language -> an espeak-ng ``-v`` argument, e.g. ``en-us+f3``."""
    lang = (language or "en-US").strip().lower().replace("_", "-")
    base = _LANGS.get(lang) or lang.split("-")[0] or "en-us"
    v = (voice or "man").strip().lower()
    if v.startswith(("polly.", "google.")):
        name = v.split(".", 1)[1].split("-")[0]
        female = name in _FEMALE_POLLY or name.endswith("a")
    else:
        female = v in ("woman", "alice", "female")
    return f"{base}+{'f3' if female else 'm3'}"


class Tts:
    def __init__(self, *, executable: str | None = None, cache_bytes: int = 32 * 1024 * 1024,
                 cache_dir: str | None = None, timeout: float = 20.0, speed: int = 160) -> None:
        self.executable = executable or shutil.which(ENGINE) or ENGINE
        self.cache_bytes = cache_bytes
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.speed = speed
        self.runs = 0                                # subprocesses started (for tests/metrics)
        self.hits = 0
        self._size = 0
        self._cache: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._inflight: dict[tuple[str, str, str], trio.Event] = {}

    async def synthesize(self, text: str, voice: str = "man", language: str = "en-US") -> bytes:
        text = (text or "").strip()[:MAX_TEXT]
        if not text:
            return b""
        key = (text, espeak_voice(voice, language), str(self.speed))
        while True:
            hit = self._get(key)
            if hit is not None:
                self.hits += 1
                return hit
            ev = self._inflight.get(key)
            if ev is None:
                break
            await ev.wait()                          # someone else is making it
            if key not in self._cache:               # they failed: try ourselves
                break
        ev = self._inflight[key] = trio.Event()
        try:
            ulaw = await self._from_disk(key)
            if ulaw is None:
                ulaw = await self._run(key)
                await self._to_disk(key, ulaw)
            self._put(key, ulaw)
            return ulaw
        finally:
            del self._inflight[key]
            ev.set()

    # -- cache ----------------------------------------------------------------------

    def _get(self, key) -> bytes | None:
        v = self._cache.get(key)
        if v is not None:
            self._cache.move_to_end(key)
        return v

    def _put(self, key, ulaw: bytes) -> None:
        if len(ulaw) > self.cache_bytes:
            return
        self._cache[key] = ulaw
        self._size += len(ulaw)
        while self._size > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._size -= len(old)

    def _path(self, key) -> str | None:
        if not self.cache_dir:
            return None
        digest = hashlib.sha256("\x00".join((ENGINE, *key)).encode()).hexdigest()
        return os.path.join(self.cache_dir, digest[:2], digest + ".ulaw")

    async def _from_disk(self, key) -> bytes | None:
        path = self._path(key)
        if path is None:
            return None
        try:
            return await trio.Path(path).read_bytes()
        except OSError:
            return None

    async def _to_disk(self, key, ulaw: bytes) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            d = trio.Path(os.path.dirname(path))
            await d.mkdir(parents=True, exist_ok=True)
            tmp = trio.Path(f"{path}.{os.getpid()}.tmp")
            await tmp.write_bytes(ulaw)
            await tmp.replace(path)
        except OSError:
            pass

    # -- engine ---------------------------------------------------------------------

    async def _run(self, key) -> bytes:
        text, voice, speed = key
        argv = [self.executable, "--stdout", "-v", voice, "-s", speed, "--stdin"]
        self.runs += 1
        try:
            with trio.fail_after(self.timeout):
                proc = await trio.run_process(argv, stdin=text.encode("utf-8"),
                                              capture_stdout=True, capture_stderr=True,
                                              check=False)
        except FileNotFoundError as exc:
            raise TtsError(f"{ENGINE} is not installed (Debian package espeak-ng)") from exc
        except trio.TooSlowError as exc:
            raise TtsError(f"{ENGINE} took over {self.timeout} s") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[:200]
            raise TtsError(f"{ENGINE} exited {proc.returncode}: {err}")
        try:
            pcm, rate = audio.parse_wav(proc.stdout)
        except audio.AudioError as exc:
            raise TtsError(f"{ENGINE} wrote no usable WAV: {exc}") from exc
        if not pcm:
            raise TtsError(f"{ENGINE} produced no audio for voice {voice}")
        return audio.to_ulaw_8k(pcm, rate)


_default: Tts | None = None


def default() -> Tts:
    global _default
    if _default is None:
        _default = Tts()
    return _default


def configure(**kwargs) -> Tts:
    """Replace the process-wide synthesizer (e.g. ``configure(cache_dir=...)``)."""
    global _default
    _default = Tts(**kwargs)
    return _default


async def synthesize(text: str, voice: str = "man", language: str = "en-US") -> bytes:
    """8 kHz μ-law speech for ``text``, cached per (text, voice, language)."""
    return await default().synthesize(text, voice, language)


__all__ = ["Tts", "TtsError", "synthesize", "configure", "default", "espeak_voice"]

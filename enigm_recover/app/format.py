"""Small formatting helpers for the screens: sizes, ages, rates, and counts."""

from __future__ import annotations

import re

from rich.text import Text

from enigm_recover.inert import for_terminal
from enigm_recover.progress import Progress, RateMeter, Stage
from enigm_recover.render import human_age, human_size

KIND_LABELS = {"identity": "identities", "device": "devices", "setting": "settings", "role": "roles"}
KIND_SHORT = {"identity": "id", "device": "dev", "setting": "set", "role": "role"}
size = human_size  # the command line's formats, so both faces say the same
age = human_age


def plain(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """Text from outside (a record's key, a name, a runbook's words, a path) as a widget shows it: never
    markup, every control character shown escaped (``inert.for_terminal``)."""
    return Text(for_terminal(value, multiline=multiline), style=style)


def inert(value: object, *, multiline: bool = False) -> str:
    """The same as a string, to append to a ``Text`` (``Text.append`` never reads markup)."""
    return for_terminal(value, multiline=multiline)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def counts(values: dict[str, int]) -> str:
    """'60 id · 180 dev · 12 set · 4 role'."""
    return " · ".join(f"{n:,} {KIND_SHORT.get(k, k)}" for k, n in values.items())


def amount(progress: Progress, done: int | None = None) -> str:
    value = progress.done if done is None else done
    if progress.unit == "bytes":
        return size(value) + (f" of {size(progress.total)}" if progress.total else "")
    return f"{value:,}" + (f" of {progress.total:,}" if progress.total else "") + f" {progress.unit}"


def rate_and_eta(progress: Progress, elapsed: float, since: int = 0) -> str:
    """'12.0 MiB/s · about 3 s left' from the work done since ``since`` in ``elapsed`` seconds; '' when
    there is no basis for either yet (less than a second of work: a rate over milliseconds means nothing)."""
    done = progress.done - since
    if elapsed < RateMeter().min_span or done <= 0:
        return ""
    return describe_rate(progress, done / elapsed)


def describe_rate(progress: Progress, per_second: float | None) -> str:
    """'12.0 MiB/s · about 3 s left' for a measured rate; '' for None (not measured long enough yet)."""
    if per_second is None or per_second <= 0:
        return ""
    speed = f"{size(int(per_second))}/s" if progress.unit == "bytes" else f"{per_second:,.0f} {progress.unit}/s"
    if (left := RateMeter.seconds_left(per_second, progress.done, progress.total)) is not None:
        return f"{speed} · about {duration(left)} left"
    return speed


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def error_title(exc: BaseException) -> str:
    """'HostKeyUnknown' -> 'Host key unknown'."""
    words = _CAMEL.sub(" ", type(exc).__name__).split()
    text = " ".join(words).lower()
    return text[:1].upper() + text[1:]


_STAGE_WORDS = {
    Stage.SEAL: "Seal {}",
    Stage.FETCH: "Downloading {}",
    Stage.CACHED: "Payload already downloaded and checked",
    Stage.HASH: "Checking the payload's SHA-256",
    Stage.DECRYPT: "Decrypting the payload and comparing it with the target",
    Stage.RESTORE: "Restoring {}",
    Stage.VERIFY: "Verify {}",
}


def humanize_stage(progress: Progress) -> str:
    """The engine's progress as a short label (Stage.FETCH of X.payload.age -> 'Downloading X.payload.age')."""
    return _STAGE_WORDS[progress.stage].format(progress.subject).strip()


_LONG_RECIPIENT = re.compile(r'^(recipient = ")(age1pq1[a-z0-9]{12})([a-z0-9]+)([a-z0-9]{8})"$', re.M)


def folded_recipient(recipient: str) -> str:
    """A hybrid recipient (``age1pq1...``, 1,959 characters) folded to its ends; a short one as it is."""
    return recipient if len(recipient) <= 80 else f"{recipient[:20]}…{recipient[-8:]}"


def folded_manifest(text: str) -> str:
    """A manifest's text for the details pane, its hybrid recipient (``age1pq1...``) folded to its ends: at
    1,959 characters it would fill the pane, and the fingerprint on the next line names the key."""
    return _LONG_RECIPIENT.sub(lambda m: f'{m[1]}{m[2]}…{m[4]}"  # hybrid post-quantum key', text)

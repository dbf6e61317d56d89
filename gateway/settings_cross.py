"""Checks across sections of a built ``Settings`` tree (``CROSS_CHECKS``).

Owns: each check ``check(settings) -> iterable of (key, why)``: duplicates, references
between sections (routes → carriers, numbers/alpha senders/services → accounts),
number types, carrier links, ordering, simulator DLR states, the store's path/URL, SIP
TLS files. ``gateway.settings`` runs them all after building the tree.

Rules: a check never raises on bad input and reads no file except the PEM files it
validates; it yields every problem it finds so one run reports them all.
"""

from __future__ import annotations

from gateway.settings_check import DLR_STATES, SHORT_CODE_RE, writable_dir


def _duplicates(s, section: str, key: str):
    seen: set[str] = set()
    for i, item in enumerate(getattr(s, section)):
        v = getattr(item, key)
        if v in seen:
            yield f"{section}[{i}].{key}", f"{v!r} is defined twice"
        seen.add(v)


def _refs(s, section: str, key: str, target: str, target_key: str):
    known = {getattr(x, target_key) for x in getattr(s, target)}
    for i, item in enumerate(getattr(s, section)):
        values = getattr(item, key)
        for j, v in enumerate(values if isinstance(values, tuple) else (values,)):
            if v not in known:
                sub = f"[{j}]" if isinstance(values, tuple) else ""
                yield f"{section}[{i}].{key}{sub}", f"{v!r} is not in [[{target}]]"


def _service_numbers_owned(s):
    for i, svc in enumerate(s.messaging_services):
        for j, n in enumerate(svc.numbers):
            num = s.number(n)
            if num is not None and num.account != svc.account:
                yield f"messaging_services[{i}].numbers[{j}]", f"{n!r} belongs to another account"


def _number_types(s):
    for i, n in enumerate(s.numbers):
        short = bool(SHORT_CODE_RE.match(n.number))
        if n.type and (n.type == "short_code") != short:
            yield f"numbers[{i}].type", f"{n.type!r} does not fit number {n.number!r}"


def _alpha_senders(s):
    seen: set[tuple[str, str]] = set()
    for i, a in enumerate(s.alpha_senders):
        key = (a.account, a.sender_id.upper())
        if key in seen:
            yield f"alpha_senders[{i}].sender_id", f"{a.sender_id!r} is defined twice"
        seen.add(key)
    for i, svc in enumerate(s.messaging_services):
        if svc.alpha_sender and (svc.account, svc.alpha_sender.upper()) not in seen:
            yield (f"messaging_services[{i}].alpha_sender",
                   f"{svc.alpha_sender!r} is not in [[alpha_senders]] of account {svc.account}")


def _carriers_have_links(s):
    for i, c in enumerate(s.carriers):
        if c.smpp is None and c.sip is None:
            yield f"carriers[{i}]", "needs a [carriers.smpp] or [carriers.sip] table"


def _ordered(s):
    h = s.health
    pairs = (("health.close_above", h.close_above, "health.open_below", h.open_below),
             ("health.dlr_ok", h.dlr_ok, "health.dlr_bad", h.dlr_bad),
             ("health.latency_bad_ratio", h.latency_bad_ratio, "health.latency_ok_ratio", h.latency_ok_ratio),
             ("health.cooldown_max_s", h.cooldown_max_s, "health.cooldown_s", h.cooldown_s),
             ("sip.rtp_port_max", s.sip.rtp_port_max, "sip.rtp_port_min", s.sip.rtp_port_min),
             ("webhooks.backoff_max", s.webhooks.backoff_max, "webhooks.backoff_initial",
              s.webhooks.backoff_initial))
    for hi_key, hi, lo_key, lo in pairs:
        if hi < lo:
            yield hi_key, f"{hi} is below {lo_key} ({lo})"


def _dlr_states(s):
    for state, p in s.simulator.dlr_states.items():
        if state not in DLR_STATES:
            yield f"simulator.dlr_states.{state}", f"unknown DLR state (one of {', '.join(DLR_STATES)})"
        elif not 0.0 <= p <= 1.0:
            yield f"simulator.dlr_states.{state}", f"{p} is not a probability in [0, 1]"


def _store(s):
    if s.store.backend == "redis" and not s.store.url:
        yield "store.url", "required when backend = \"redis\""
    if s.store.backend == "sqlite" and s.store.path != ":memory:":
        why = writable_dir(s.store.path)
        if why:
            yield "store.path", why


def _pem_problem(path: str, what: str) -> str | None:
    """Why ``path`` is not a readable PEM ``what`` file, or None."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"cannot read {what} file {path!r}: {e.strerror or e}"
    if b"-----BEGIN " not in data:
        return f"{what} file {path!r} is not PEM"
    return None


def _sip_tls(s):
    """[sip] tls_listen needs a readable cert + key that belong together; [sip] tls_ca and
    a trunk's tls_ca must be readable; tls settings on a non-TLS trunk are a mistake."""
    sip = s.sip
    if sip.tls_listen:
        for key in ("tls_cert", "tls_key"):
            path = getattr(sip, key)
            why = _pem_problem(path, key[4:]) if path else "required when tls_listen is set"
            if why:
                yield f"sip.{key}", why
        if sip.tls_cert and sip.tls_key and not any(
                _pem_problem(p, "x") for p in (sip.tls_cert, sip.tls_key)):
            import ssl
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                    sip.tls_cert, sip.tls_key)
            except (ssl.SSLError, OSError) as e:
                yield "sip.tls_key", f"does not load with tls_cert: {e}"
    if sip.tls_ca and (why := _pem_problem(sip.tls_ca, "CA")):
        yield "sip.tls_ca", why
    for i, c in enumerate(s.carriers):
        trunk = c.sip
        if trunk is None:
            continue
        if trunk.tls_ca and (why := _pem_problem(trunk.tls_ca, "CA")):
            yield f"carriers[{i}].sip.tls_ca", why
        if trunk.transport != "tls" and (trunk.tls_ca or not trunk.tls_verify):
            yield f"carriers[{i}].sip.transport", "tls_ca/tls_verify need transport = \"tls\""


CROSS_CHECKS = (
    lambda s: _duplicates(s, "accounts", "sid"),
    lambda s: _duplicates(s, "carriers", "name"),
    lambda s: _duplicates(s, "numbers", "number"),
    lambda s: _duplicates(s, "messaging_services", "sid"),
    lambda s: _duplicates(s, "routes", "prefix"),
    lambda s: _refs(s, "routes", "carriers", "carriers", "name"),
    lambda s: _refs(s, "numbers", "account", "accounts", "sid"),
    lambda s: _refs(s, "alpha_senders", "account", "accounts", "sid"),
    _alpha_senders,
    lambda s: _refs(s, "messaging_services", "account", "accounts", "sid"),
    lambda s: _refs(s, "messaging_services", "numbers", "numbers", "number"),
    _service_numbers_owned,
    _number_types,
    _carriers_have_links,
    _ordered,
    _dlr_states,
    _store,
    _sip_tls,
)

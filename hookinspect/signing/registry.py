"""The providers, how a delivery is matched to one, and where secrets come from."""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hookinspect.errors import SigningError, UsageError, did_you_mean, one_line
from hookinspect.model import Delivery, Headers, SentRequest
from hookinspect.signing import (
    asymmetric,
    bodysigned,
    fhir,
    github,
    shopify,
    slack,
    standard,
    stripe,
    twilio,
)
from hookinspect.signing.base import NO_SECRET, UNSIGNED, VALID, Detection, SignedMessage, Verdict
from hookinspect.signing.providers import SCHEMES
from hookinspect.signing.scheme import Detect, Scheme, scheme_from_table


def _no_verify(message: SignedMessage, secret: str, now: float) -> Verdict:
    return Verdict(UNSIGNED, "this kind of sender defines no signature")


def _no_sign(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Provider:
    name: str
    detect: Callable[[SignedMessage], Detection | None]
    verify: Callable[..., Verdict]
    sign: Callable[..., dict[str, str]]
    signs_url: bool = False  # Twilio: the signature covers the URL, so a new target needs a new one
    has_signature: bool = True  # False: detected for its event type only (FHIR)
    # Where its signature travels: none of them present means "unsigned", secret or not.
    # Empty for signatures inside the body (Adyen, Mailgun): verify() says "unsigned" itself.
    signature_headers: tuple[str, ...] = ()
    # Rewrites what the provider signs inside the body (Adyen's and Mailgun's signature fields,
    # Linear's timestamp) before sign() computes the headers.
    sign_body: Callable[[SignedMessage, str, float], bytes] | None = None


def scheme_provider(scheme: Scheme) -> Provider:
    """A declarative scheme (built in, or from hookinspect.toml) behind the same interface."""
    return Provider(scheme.name, scheme.detect_message, scheme.verify, scheme.sign,
                    signs_url="{url}" in scheme.signed, signature_headers=scheme.signature_headers,
                    sign_body=scheme.sign_body if scheme.timestamp_json else None)


def svix_sender(name: str, detect: Detect) -> Provider:
    """A company that sends its webhooks through Svix (Clerk, Resend): Svix's signature, its own name."""
    def detect_it(message: SignedMessage) -> Detection | None:
        found = detect.matches(message) and standard.detect_svix(message)
        return Detection(name, found.event_type) if found else None
    return Provider(name, detect_it, standard.verify_svix, standard.sign_svix, signature_headers=("svix-signature",))


# Clerk's events say "object": "event"; Resend's types are email.*, contact.* and domain.*.
CLERK = svix_sender("clerk", Detect(header="svix-id", json="$.object=event"))
RESEND = svix_sender("resend", Detect(header="svix-id", json="$.type=email.*|contact.*|domain.*"))


# Order matters: the first provider whose detect() answers wins. The declarative ones go before
# GitHub, whose detection is the loosest (an X-Hub-Signature header alone).
PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    Provider(stripe.NAME, stripe.detect, stripe.verify, stripe.sign, signature_headers=(stripe.HEADER,)),
    Provider(asymmetric.DISCORD, asymmetric.detect_discord, asymmetric.verify_discord, asymmetric.sign_discord,
             signature_headers=(asymmetric.DISCORD_SIGNATURE,)),
    Provider(asymmetric.SENDGRID, asymmetric.detect_sendgrid, asymmetric.verify_sendgrid, asymmetric.sign_sendgrid,
             signature_headers=(asymmetric.SENDGRID_SIGNATURE,)),
    *(scheme_provider(scheme) for scheme in SCHEMES),
    Provider(github.NAME, github.detect, github.verify, github.sign,
             signature_headers=("X-Hub-Signature-256", "X-Hub-Signature")),
    CLERK,
    RESEND,
    Provider(standard.SVIX, standard.detect_svix, standard.verify_svix, standard.sign_svix,
             signature_headers=("svix-signature",)),
    Provider(standard.STANDARD, standard.detect_standard, standard.verify_standard, standard.sign_standard,
             signature_headers=("webhook-signature",)),
    Provider(shopify.NAME, shopify.detect, shopify.verify, shopify.sign, signature_headers=shopify.HEADERS),
    Provider(slack.NAME, slack.detect, slack.verify, slack.sign, signature_headers=("X-Slack-Signature",)),
    Provider(twilio.NAME, twilio.detect, twilio.verify, twilio.sign, signs_url=True, signature_headers=(twilio.HEADER,)),
    Provider(bodysigned.ADYEN, bodysigned.detect_adyen, bodysigned.verify_adyen, bodysigned.sign_adyen,
             sign_body=bodysigned.sign_adyen_body),
    Provider(bodysigned.MAILGUN, bodysigned.detect_mailgun, bodysigned.verify_mailgun, bodysigned.sign_mailgun,
             sign_body=bodysigned.sign_mailgun_body),
    Provider(fhir.NAME, fhir.detect, _no_verify, _no_sign, has_signature=False),
)}


def signed(provider: Provider, message: SignedMessage, secret: str, now: float) -> SignedMessage:
    """`message` as `provider` would send it at `now`: what it signs inside the body rewritten
    first, then its signature headers set (Content-Length follows a changed body). SigningError
    (one line, never the secret) if the secret cannot sign as this provider does."""
    try:
        if provider.sign_body is not None:
            body = provider.sign_body(message, secret, now)
            headers = message.headers
            if body != message.body and "content-length" in headers:
                headers = headers.with_set("Content-Length", str(len(body)))
            message = SignedMessage(message.method, message.url, headers, body)
        headers = message.headers
        for name, value in provider.sign(message, secret, now).items():
            headers = headers.with_set(name, value)
    except ValueError as exc:  # binascii.Error and the asymmetric key errors are ValueErrors too
        reason = one_line(exc, 1000)
        raise SigningError(f"cannot sign as {provider.name} with the secret given: {reason}",
                           f"give {provider.name}'s signing secret or key in the form its dashboard shows it"
                           ) from None
    return SignedMessage(message.method, message.url, headers, message.body)
def register_schemes(tables: Mapping[str, Any] | None) -> list[str]:
    """`[providers.NAME]` tables of hookinspect.toml, validated, tried before the built-in ones
    (a team's own provider wins over a guess). Returns their names."""
    if not tables:
        return []
    if not isinstance(tables, Mapping):
        raise UsageError("providers in the configuration must be [providers.NAME] tables")
    added = []
    for name, table in tables.items():
        scheme = scheme_from_table(str(name), table)
        PROVIDERS.pop(scheme.name, None)
        reordered = {scheme.name: scheme_provider(scheme), **PROVIDERS}
        PROVIDERS.clear()
        PROVIDERS.update(reordered)
        USER_SCHEMES[scheme.name] = scheme
        CUE_HEADERS.update(scheme.detect.cues() | {scheme.header.lower()})
        added.append(scheme.name)
    return added


USER_SCHEMES: dict[str, Scheme] = {}


def provider_named(name: str) -> Provider:
    try:
        return PROVIDERS[name.lower()]
    except KeyError:
        raise UsageError(f"unknown provider {name!r}{did_you_mean(name, PROVIDERS)}",
                         "`hookinspect providers` lists them") from None


def message_of(delivery: Delivery, url: str | None = None) -> SignedMessage:
    """The delivery as its sender signed it; the URL is rebuilt from Host unless given."""
    return SignedMessage(delivery.method, url or delivery.original_url(), delivery.headers, delivery.body)


# What every detector above needs before it can answer: one of these headers, a user agent
# or a content type of its kind, or (FHIR) a resourceType near the start of the body. A capture
# with none of them (most plain POSTs) skips the detectors, which costs the receiver more than
# its own work otherwise. A provider added above must add its signs here
# (tests/signing/test_registry.py runs every sample through both paths).
CUE_HEADERS = {
    stripe.HEADER.lower(), "x-github-event", "svix-id", "svix-signature", "webhook-id", "webhook-signature",
    "x-shopify-topic", "shopify-topic", *(name.lower() for name in shopify.HEADERS), "x-slack-signature",
    twilio.HEADER.lower(), *github.CUES,
    *(cue for scheme in SCHEMES for cue in scheme.detect.cues() | {h.lower() for h in scheme.signature_headers}),
    asymmetric.DISCORD_SIGNATURE.lower(), asymmetric.SENDGRID_SIGNATURE.lower(),
}


# Payloads that name their sender without any header: a Stripe event id, a Slack app, a FHIR resource.
BODY_CUES = (b'"resourceType"', b'"evt_', b'"api_app_id"', b'"notificationItems"', b'"event-data"')
_BODY_CUE = re.compile(b"|".join(map(re.escape, BODY_CUES)))  # one scan of the head, not one per cue
BODY_CUE_SPAN = 4096  # how far into a body its cues are looked for


def may_be_from_a_provider(headers: Headers, body: bytes) -> bool:
    if not CUE_HEADERS.isdisjoint(headers.names()):
        return True
    user_agent = headers.get("user-agent") or ""
    if user_agent.startswith(("Stripe/", "GitHub-Hookshot/", twilio.USER_AGENT)) or "Slackbot" in user_agent:
        return True
    content_type = (headers.get("content-type") or "").lower()
    if content_type.startswith("application/x-www-form-urlencoded") or "fhir" in content_type:
        return True
    return _BODY_CUE.search(body, 0, BODY_CUE_SPAN) is not None


def detect(message: SignedMessage) -> tuple[Provider, Detection] | None:
    if not may_be_from_a_provider(message.headers, message.body):
        return None
    for provider in PROVIDERS.values():
        found = provider.detect(message)
        if found is not None:
            return provider, found
    return None


@dataclass
class Secrets:
    """Signing secrets per provider, optionally per path glob. Never printed."""

    entries: dict[str, list[tuple[str | None, str, str]]] = field(default_factory=dict)  # (glob, secret, where)

    def add(self, provider: str, secret: str, path_glob: str | None = None, where: str | None = None) -> None:
        """`where` names the secret's source for verdicts (`--secret stripe`), never its value."""
        provider_named(provider)
        name = provider.lower() + (f":{path_glob}" if path_glob else "")
        self.entries.setdefault(provider.lower(), []).append((path_glob, secret, where or name))

    def for_(self, provider: str, path: str) -> str | None:
        """The most specific secret: a matching path glob first, then the provider-wide one."""
        found = self.named_for(provider, path)
        return found[0] if found else None

    def named_for(self, provider: str, path: str) -> tuple[str, str] | None:
        """(secret, where it came from) for `for_`'s choice."""
        general = None
        for glob, secret, where in self.entries.get(provider, []):
            if glob is None:
                general = general or (secret, where)
            elif fnmatch.fnmatchcase(path, glob):
                return secret, where
        return general

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __repr__(self) -> str:  # a secret must not leak through a debug print
        return f"Secrets({ {k: len(v) for k, v in self.entries.items()} })"

    @classmethod
    def gather(cls, flags: list[str], environ: Mapping[str, str], config: Any) -> Secrets:
        """Config `[secrets]`, then HOOKINSPECT_SECRET_<PROVIDER>, then `--secret` flags (first match wins)."""
        found = cls()
        for flag in flags:  # stripe=whsec_..., stripe:/shop/*=whsec_..., or stripe=@file (off the command line)
            name, eq, secret = flag.partition("=")
            if not eq or not secret:
                raise UsageError("--secret needs the provider it is for: PROVIDER=SECRET (stripe=whsec_…), "
                                 "PROVIDER=@FILE or PROVIDER:/path/glob=SECRET", "`hookinspect providers` lists them")
            provider, _, glob = name.partition(":")
            found.add(provider, read_secret_file(secret[1:]) if secret.startswith("@") else secret, glob or None,
                      where=f"--secret {name}")
        for name in PROVIDERS:
            value = environ.get(f"HOOKINSPECT_SECRET_{name.upper()}")
            if value:
                found.add(name, value, where=f"HOOKINSPECT_SECRET_{name.upper()}")
        if config:
            if not isinstance(config, dict):
                raise UsageError("config: [secrets] must be a table of provider = secret")
            for provider, value in config.items():
                if isinstance(value, dict):
                    for glob, secret in value.items():
                        found.add(provider, str(secret), glob, where=f"[secrets.{provider}] {glob}")
                else:
                    found.add(provider, str(value), where=f"[secrets] {provider}")
        return found


def read_secret_file(path: str) -> str:
    """A secret kept in a file (so it is not in `ps`): its first line."""
    try:
        with open(path, encoding="utf-8") as fh:
            secret = fh.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the secret file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not secret:
        raise UsageError(f"the secret file {path} is empty")
    return secret


@dataclass(frozen=True)
class Check:
    provider: str | None
    event_type: str | None
    verdict: Verdict | None


def check_delivery(delivery: Delivery, secrets: Secrets, now: float | None = None, url: str | None = None,
                   provider: str | None = None) -> Check:
    """Detect the provider and event type, and verify the signature when a secret is known."""
    if provider is None and not may_be_from_a_provider(delivery.headers, delivery.body):
        return Check(None, None, None)
    message = message_of(delivery, url)
    now = time.time() if now is None else now
    if provider is not None:
        chosen = provider_named(provider)
        detection = chosen.detect(message) or Detection(chosen.name, None)
    else:
        found = detect(message)
        if found is None:
            return Check(None, None, None)
        chosen, detection = found
        result = _judge(chosen, detection, message, delivery.path, secrets, now)
        if result.verdict is not None and result.verdict.status == VALID:
            return result
        # The shape said one provider; a signature that verifies under another's configured
        # secret says more (Svix signs for Resend-shaped events too).
        return _judged_elsewhere(chosen, message, delivery.path, secrets, now,
                                 has_secret=result.verdict is None or result.verdict.status != NO_SECRET) or result
    return _judge(chosen, detection, message, delivery.path, secrets, now)


def _judged_elsewhere(shaped: Provider, message: SignedMessage, path: str, secrets: Secrets,
                      now: float, *, has_secret: bool) -> Check | None:
    """Another provider with a configured secret that also claims the message: the first whose
    check says valid; when the shaped one had no secret to judge with, the first at all."""
    fallback = None
    for name in secrets.entries:
        other = PROVIDERS.get(name)
        if other is None or other is shaped or not other.has_signature:
            continue
        detection = other.detect(message)
        if detection is None:
            continue
        result = _judge(other, detection, message, path, secrets, now)
        if result.verdict is not None and result.verdict.status == VALID:
            return result
        fallback = fallback or result
    return None if has_secret else fallback


def _judge(chosen: Provider, detection: Detection, message: SignedMessage, path: str, secrets: Secrets,
           now: float) -> Check:
    """The verdict of `chosen` on the message: unsigned, no secret, or what its check says."""
    if not chosen.has_signature:
        return Check(chosen.name, detection.event_type, None)
    if chosen.signature_headers and not any(header in message.headers for header in chosen.signature_headers):
        return Check(chosen.name, detection.event_type,
                     Verdict(UNSIGNED, f"no {chosen.signature_headers[0]} header: the sender did not sign it"))
    named = secrets.named_for(chosen.name, path)
    if named is None:
        return Check(chosen.name, detection.event_type,
                     Verdict(NO_SECRET, f"no secret for {chosen.name}; pass --secret {chosen.name}=... "
                                        f"or set HOOKINSPECT_SECRET_{chosen.name.upper()}"))
    secret, where = named
    verdict = chosen.verify(message, secret, now)
    # Which secret judged it (by where it came from, never its value): with several, it matters.
    return Check(chosen.name, detection.event_type, replace(verdict, reason=f"{verdict.reason} (secret: {where})"))


@dataclass(frozen=True)
class SignatureReport:
    """What a signature view shows: provider, event type, verdict and why."""

    provider: str | None
    event_type: str | None
    status: str | None
    reason: str | None


def signature_report(delivery: Delivery, secrets: Secrets, url: str | None = None) -> SignatureReport:
    """A fresh check when a secret is known, else what was found when the delivery was recorded."""
    result = check_delivery(delivery, secrets, url=url) if secrets else None
    verdict = result.verdict if result is not None else None
    return SignatureReport(
        provider=(result.provider if result else None) or delivery.provider,
        event_type=(result.event_type if result else None) or delivery.event_type,
        status=verdict.status if verdict else delivery.verdict,
        reason=verdict.reason if verdict else delivery.verdict_reason,
    )


def missing_secrets(deliveries: list[Delivery], secrets: Secrets) -> dict[str, int]:
    """How many of `deliveries` each signing provider signed for which no secret is known: they
    would go out with their recorded (or redacted) signature, which a careful backend refuses."""
    missing: dict[str, int] = {}
    for delivery in deliveries:
        found = detect(message_of(delivery))
        if found is not None and found[0].has_signature and secrets.for_(found[0].name, delivery.path) is None:
            missing[found[0].name] = missing.get(found[0].name, 0) + 1
    return missing


def resigner_for(delivery: Delivery, secrets: Secrets, clock: Callable[[], float] = time.time
                 ) -> Callable[[SentRequest], SentRequest] | None:
    """A function giving the request freshly signed for a send of `delivery`, or None (no secret)."""
    found = detect(message_of(delivery))
    if found is None:
        return None
    provider = found[0]
    if not provider.has_signature:
        return None
    secret = secrets.for_(provider.name, delivery.path)
    if secret is None:
        return None

    def resign(request: SentRequest) -> SentRequest:
        message = signed(provider, SignedMessage(request.method, request.url, request.headers, request.body), secret, clock())
        request.headers, request.body = message.headers, message.body
        return request

    return resign


def annotate_delivery(delivery: Delivery, secrets: Secrets, verify: bool = True, now: float | None = None) -> None:
    """Set provider, event type and (when `verify`) the signature verdict on a delivery."""
    result = check_delivery(delivery, secrets, now)
    delivery.provider, delivery.event_type = result.provider, result.event_type
    if verify and result.verdict is not None:
        delivery.verdict, delivery.verdict_reason = result.verdict.status, result.verdict.reason


# What `hookinspect providers` says of the providers written as code (the schemes describe themselves).
CODE_DESCRIPTIONS: dict[str, tuple[str, str, int | None]] = {  # detection, secret, tolerance in seconds
    stripe.NAME: ("header Stripe-Signature", "whsec_… signing secret", 300),
    github.NAME: ("header X-GitHub-Event (or X-Hub-Signature*, GitHub-Hookshot/ user agent)", "webhook secret (text)", None),
    standard.SVIX: ("header svix-id", "whsec_… (base64 after the prefix)", 300),
    standard.STANDARD: ("header webhook-id", "whsec_… (base64 after the prefix)", 300),
    shopify.NAME: ("header X-Shopify-Topic or X-Shopify-Hmac-Sha256", "app secret (text)", None),
    slack.NAME: ("header X-Slack-Signature", "signing secret (text)", 300),
    twilio.NAME: ("header X-Twilio-Signature or TwilioProxy/ user agent", "auth token (text)", None),
    fhir.NAME: ("a FHIR resource in the body (resourceType)", "none: FHIR servers do not sign", None),
    asymmetric.DISCORD: ("header X-Signature-Ed25519", "the application's Ed25519 public key (hex); seed:<hex> to sign", None),
    "clerk": ("header svix-id and JSON $.object=event", "whsec_… (base64 after the prefix)", 300),
    "resend": ("header svix-id and JSON $.type email.*, contact.* or domain.*", "whsec_… (base64 after the prefix)", 300),
    bodysigned.ADYEN: ("JSON $.notificationItems; the signature is each item's additionalData.hmacSignature",
                       "HMAC key (hex)", None),
    bodysigned.MAILGUN: ("JSON signature + event-data, or form fields timestamp, token, signature",
                         "webhook signing key (text)", None),
    asymmetric.SENDGRID: ("header X-Twilio-Email-Event-Webhook-Signature",
                          "the Event Webhook's ECDSA public key (base64); pem:<file> to sign", None),
}


def describe_providers() -> list[dict[str, Any]]:
    """Every provider in detection order: how it is detected, its secret, its tolerance, its origin."""
    schemes = {scheme.name: scheme for scheme in (*SCHEMES, *USER_SCHEMES.values())}
    out = []
    for name, provider in PROVIDERS.items():
        scheme = schemes.get(name)
        if scheme is not None:
            detect = scheme.detect
            how = ", ".join(f"{kind} {value}" for kind, value in (("header", detect.header), ("user agent", detect.user_agent),
                                                                   ("path", detect.path), ("JSON", detect.json)) if value)
            secret = "shared token (text)" if scheme.algorithm == "token" else f"{scheme.algorithm} key ({scheme.secret_encoding})"
            tolerance = scheme.tolerance if scheme.algorithm != "token" and scheme.timestamped() else None
            signature = f"{scheme.header}: {scheme.prefix}<{scheme.encoding}> over {scheme.signed}" if scheme.algorithm != "token" \
                else f"{scheme.header}: the token"
        else:
            how, secret, tolerance = CODE_DESCRIPTIONS[name]
            signature = ", ".join(provider.signature_headers) or "none"
        out.append({"name": name, "detected_by": how, "secret": secret, "tolerance_seconds": tolerance,
                    "signature": signature, "defined_in": "hookinspect.toml" if name in USER_SCHEMES else "hookinspect"})
    return out

"""Providers whose signature is the common shape, each a Scheme (signing/scheme.py).

Sources: each provider's public documentation of its webhook signature. Order matters where
two could claim one delivery: the registry tries these before GitHub, whose detection is the
loosest (X-Hub-Signature alone), so Bitbucket, Meta and Intercom are told apart by their
own headers or payload first.
"""

from __future__ import annotations

from hookinspect.signing.scheme import ANY_FUTURE, Detect, Scheme

SCHEMES: tuple[Scheme, ...] = (
    # Shared tokens compared as they are.
    Scheme("gitlab", Detect(header="X-Gitlab-Event"), "X-Gitlab-Token", algorithm="token",
           event="header:X-Gitlab-Event", tolerance=None),
    Scheme("telegram", Detect(header="X-Telegram-Bot-Api-Secret-Token"), "X-Telegram-Bot-Api-Secret-Token",
           algorithm="token", tolerance=None),
    # HMAC over the body alone.
    Scheme("bitbucket", Detect(header="X-Event-Key"), "X-Hub-Signature", prefix="sha256=",
           event="header:X-Event-Key", tolerance=None),
    Scheme("meta", Detect(header="X-Hub-Signature-256", json="$.object"), "X-Hub-Signature-256", prefix="sha256=",
           event="$.object", tolerance=None),
    Scheme("intercom", Detect(header="X-Hub-Signature", json="$.type=notification_event"), "X-Hub-Signature",
           algorithm="hmac-sha1", prefix="sha1=", event="$.topic", tolerance=None),
    Scheme("typeform", Detect(header="Typeform-Signature"), "Typeform-Signature", encoding="base64", prefix="sha256=",
           event="$.event_type", tolerance=None),
    Scheme("vercel", Detect(header="x-vercel-signature"), "x-vercel-signature", algorithm="hmac-sha1",
           event="$.type", tolerance=None),
    Scheme("sentry", Detect(header="Sentry-Hook-Signature"), "Sentry-Hook-Signature",
           event="header:Sentry-Hook-Resource", tolerance=None),
    Scheme("pagerduty", Detect(header="X-PagerDuty-Signature"), "X-PagerDuty-Signature", prefix="v1=",
           event="$.event.event_type", tolerance=None),
    Scheme("paystack", Detect(header="x-paystack-signature"), "x-paystack-signature", algorithm="hmac-sha512",
           event="$.event", tolerance=None),
    Scheme("coinbase", Detect(header="X-CC-Webhook-Signature"), "X-CC-Webhook-Signature", event="$.event.type",
           tolerance=None),
    Scheme("lemonsqueezy", Detect(header="X-Event-Name"), "X-Signature", event="header:X-Event-Name", tolerance=None),
    Scheme("woocommerce", Detect(header="X-WC-Webhook-Signature"), "X-WC-Webhook-Signature", encoding="base64",
           event="header:X-WC-Webhook-Topic", tolerance=None),
    Scheme("xero", Detect(header="x-xero-signature"), "x-xero-signature", encoding="base64",
           event="$.events.0.eventType", tolerance=None),
    Scheme("asana", Detect(header="X-Hook-Signature"), "X-Hook-Signature", event="$.events.0.action", tolerance=None),
    Scheme("dropbox", Detect(header="X-Dropbox-Signature"), "X-Dropbox-Signature", tolerance=None),
    Scheme("razorpay", Detect(header="X-Razorpay-Signature"), "X-Razorpay-Signature", event="$.event", tolerance=None),
    # Linear signs the body alone, and its SDK also wants the body's own webhookTimestamp (ms) within a minute.
    Scheme("linear", Detect(header="Linear-Signature"), "Linear-Signature", event="$.type", timestamp_json="$.webhookTimestamp",
           timestamp_format="unix-ms", tolerance=60),
    # HMAC over the URL, or a timestamp (and an id) with the body.
    Scheme("square", Detect(header="x-square-hmacsha256-signature"), "x-square-hmacsha256-signature",
           encoding="base64", signed="{url}{body}", event="$.type", tolerance=None),
    Scheme("zoom", Detect(header="x-zm-signature"), "x-zm-signature", prefix="v0=", signed="v0:{timestamp}:{body}",
           timestamp_header="x-zm-request-timestamp", event="$.event"),
    Scheme("twitch", Detect(header="Twitch-Eventsub-Message-Id"), "Twitch-Eventsub-Message-Signature", prefix="sha256=",
           signed="{id}{timestamp}{body}", id_header="Twitch-Eventsub-Message-Id",
           timestamp_header="Twitch-Eventsub-Message-Timestamp", timestamp_format="rfc3339", tolerance=600,
           event="header:Twitch-Eventsub-Subscription-Type"),
    Scheme("calendly", Detect(header="Calendly-Webhook-Signature"), "Calendly-Webhook-Signature", list_separator=",",
           timestamp_key="t", signature_key="v1", signed="{timestamp}.{body}", event="$.event", tolerance=180),
    Scheme("paddle", Detect(header="Paddle-Signature"), "Paddle-Signature", list_separator=";", timestamp_key="ts",
           signature_key="h1", signed="{timestamp}:{body}", event="$.event_type", tolerance=5),
    Scheme("hubspot", Detect(header="X-HubSpot-Signature-v3"), "X-HubSpot-Signature-v3", encoding="base64",
           signed="{method}{url}{body}{timestamp}", timestamp_header="X-HubSpot-Request-Timestamp",
           timestamp_format="unix-ms", future_tolerance=ANY_FUTURE, event="$.0.subscriptionType"),
    Scheme("zendesk", Detect(header="X-Zendesk-Webhook-Signature"), "X-Zendesk-Webhook-Signature", encoding="base64",
           signed="{timestamp}{body}", timestamp_header="X-Zendesk-Webhook-Signature-Timestamp",
           timestamp_format="rfc3339", tolerance=None, event="$.type"),
    Scheme("box", Detect(header="box-signature-primary"), "box-signature-primary", encoding="base64",
           signed="{body}{timestamp}", timestamp_header="box-delivery-timestamp", timestamp_format="rfc3339",
           tolerance=600, future_tolerance=0, also_headers=("box-signature-secondary",), event="$.trigger",
           fixed_headers=(("box-signature-version", "1"), ("box-signature-algorithm", "HmacSHA256"))),
)

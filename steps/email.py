"""Send Email through an HTTP e-mail provider: Resend, SendGrid, Postmark or Mailgun.

The request goes through the shared HTTP client, so the private-network guard, timeouts and
the proxy apply as for External API Request. `[email]` in the config may point a provider at
another base URL (a regional endpoint, a relay, a test server). The API key is a secret: it is
masked wherever it could show. A provider answering outside 2xx fails the step (HttpError).
Xano's own `xano` provider has no API outside Xano and is refused at load time.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlencode

from daemon.core.errors import HttpError, StepError
from daemon.core.secrets import SECRETS
from daemon.core.text import did_you_mean
from daemon.resources.http.client import safe_url
from steps._values import to_text
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec

BASE_URLS: Final = {
    "resend": "https://api.resend.com",
    "sendgrid": "https://api.sendgrid.com",
    "postmark": "https://api.postmarkapp.com",
    "mailgun": "https://api.mailgun.net",
}

# provider -> (path, headers, JSON body or form data), from the message fields
Message = dict[str, Any]
Request = tuple[str, dict[str, str], Any, str | None]


def _addresses(value: Any, what: str) -> list[str]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, str) or "@" not in item:
            raise StepError(f"Send Email {what}: expected e-mail addresses, got {item!r:.80}")
        out.append(item)
    return out


def _resend(m: Message) -> Request:
    body: dict[str, Any] = {"from": m["from"], "to": m["to"], "subject": m["subject"]}
    body["html" if m["html"] else "text"] = m["message"]
    for key in ("cc", "bcc"):
        if m[key]:
            body[key] = m[key]
    if m["reply_to"]:
        body["reply_to"] = m["reply_to"]
    return "/emails", {"Authorization": f"Bearer {m['api_key']}"}, body, None


def _sendgrid(m: Message) -> Request:
    personal: dict[str, Any] = {"to": [{"email": a} for a in m["to"]]}
    for key in ("cc", "bcc"):
        if m[key]:
            personal[key] = [{"email": a} for a in m[key]]
    body: dict[str, Any] = {
        "personalizations": [personal],
        "from": {"email": m["from"]},
        "subject": m["subject"],
        "content": [{"type": "text/html" if m["html"] else "text/plain", "value": m["message"]}],
    }
    if m["reply_to"]:
        body["reply_to"] = {"email": m["reply_to"][0]}
    return "/v3/mail/send", {"Authorization": f"Bearer {m['api_key']}"}, body, None


def _postmark(m: Message) -> Request:
    body: dict[str, Any] = {"From": m["from"], "To": ", ".join(m["to"]), "Subject": m["subject"]}
    body["HtmlBody" if m["html"] else "TextBody"] = m["message"]
    if m["cc"]:
        body["Cc"] = ", ".join(m["cc"])
    if m["bcc"]:
        body["Bcc"] = ", ".join(m["bcc"])
    if m["reply_to"]:
        body["ReplyTo"] = ", ".join(m["reply_to"])
    headers = {"X-Postmark-Server-Token": m["api_key"], "Accept": "application/json"}
    return "/email", headers, body, None


def _mailgun(m: Message) -> Request:
    domain = m["domain"] or m["from"].rpartition("@")[2].strip("> ")
    if not domain:
        raise StepError("Send Email (mailgun): no sending domain (set domain)")
    form: list[tuple[str, str]] = [("from", m["from"]), ("subject", m["subject"])]
    form += [("to", a) for a in m["to"]]
    form += [("cc", a) for a in m["cc"]] + [("bcc", a) for a in m["bcc"]]
    form.append(("html" if m["html"] else "text", m["message"]))
    if m["reply_to"]:
        form.append(("h:Reply-To", ", ".join(m["reply_to"])))
    token = base64.b64encode(f"api:{m['api_key']}".encode()).decode()
    SECRETS.add(token)
    headers = {
        "Authorization": f"Basic {token}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return f"/v3/{domain}/messages", headers, None, urlencode(form)


PROVIDERS: Final[dict[str, Callable[[Message], Request]]] = {
    "resend": _resend,
    "sendgrid": _sendgrid,
    "postmark": _postmark,
    "mailgun": _mailgun,
}
_FIELDS = ("api_key", "from", "to", "subject", "message", "cc", "bcc", "reply_to", "domain")


class SendEmail(Step):
    """Send one e-mail; the result is the provider's answer `{status, result}`."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True, rename={"sender": "from"}):
        provider: str
        api_key: Any
        sender: Any
        to: Any
        subject: Any = ""
        message: Any = ""
        html: bool = False
        cc: Any = None
        bcc: Any = None
        reply_to: Any = None
        domain: Any = None  # Mailgun's sending domain (default: the from address's)

    function = "send_email"
    display_name = "Send Email"

    __slots__ = ("_build", "_fields", "_html", "_provider")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        provider = spec.provider.strip().lower()
        if provider == "xano":
            c.error(
                "provider",
                'the "xano" provider sends through Xano\'s own service, which exists only on'
                " Xano; use resend, sendgrid, postmark or mailgun",
            )
        elif provider not in PROVIDERS:
            c.error(
                "provider",
                f'unknown e-mail provider "{spec.provider}"'
                f"{did_you_mean(provider, PROVIDERS)} (resend, sendgrid, postmark, mailgun)",
            )
        self._provider = provider
        self._build = PROVIDERS.get(provider, _resend)
        values = {"from": spec.sender, **{k: getattr(spec, k) for k in _FIELDS if k != "from"}}
        self._fields: dict[str, Evaluator] = {k: c.template(v, k) for k, v in values.items()}
        self._html = spec.html
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        raw = {k: ev(ctx) for k, ev in self._fields.items()}
        key = raw["api_key"]
        if not isinstance(key, str) or not key:
            raise StepError("Send Email api_key must be a non-empty text")
        SECRETS.add(key)
        sender = raw["from"]
        if not isinstance(sender, str) or "@" not in sender:
            raise StepError(f"Send Email from: expected an e-mail address, got {sender!r:.80}")
        message: Message = {
            "api_key": key,
            "from": sender,
            "to": _addresses(raw["to"], "to"),
            "cc": _addresses(raw["cc"], "cc"),
            "bcc": _addresses(raw["bcc"], "bcc"),
            "reply_to": _addresses(raw["reply_to"], "reply_to"),
            "subject": to_text(raw["subject"] or ""),
            "message": to_text(raw["message"] or ""),
            "html": self._html,
            "domain": raw["domain"],
        }
        if not message["to"]:
            raise StepError("Send Email needs at least one address in to")
        path, headers, body, form = self._build(message)
        base = ctx.endpoint(f"email.{self._provider}") or BASE_URLS[self._provider]
        url = base.rstrip("/") + path
        resp = await ctx.http.request("POST", url, headers=headers, json_body=body, data=form)
        if not 200 <= resp.status < 300:
            detail = SECRETS.mask(to_text(resp.body))[:1024]
            raise HttpError(
                f"HTTP {resp.status} from {self._provider} ({safe_url(url)}): {detail}",
                status=resp.status,
            )
        return {"status": resp.status, "result": resp.body}


EMAIL_STEPS: tuple[type[Step], ...] = (SendEmail,)

"""The consent page: who asks, for which scopes and what each means, in zh-CN and en.

For a plugin's client the page names the plugin as its manifest does and shows, under each scope,
the reason the manifest gives for it (what reviewers approved and the customer is told to read: the
handler passes the newest approved release's manifest from the registry).

A customer signed in through the bank's identity provider (``POST /oauth/login``) is named on
the page; otherwise it carries the development login (pick a demo customer), shown only when the
host enables it and marked as such on the page. The form
carries a CSRF token (see :mod:`fulcrum_core.oauth.consent_csrf`) and the page refuses to be framed.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from importlib.resources import files
from string import Template
from typing import Final

from fulcrum_sdk.manifest import Manifest
from fulcrum_sdk.scopes import SCOPES

from fulcrum_core.oauth.authorize import CONSENTED_SCOPES, ConsentPrompt
from fulcrum_core.oauth.consent_csrf import FIELD

__all__ = [
    "CONSENT_PAGE_HEADERS", "render_consent_page", "render_expired_page", "render_refused_page",
    "render_sign_in_page",
]

CONSENT_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    # No framing (clickjacking), nothing loaded but the page's own inline style.
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
"""Response headers of the consent page."""


def _template(name: str = "consent.html") -> Template:
    return Template((files("fulcrum_core.oauth") / "templates" / name).read_text(encoding="utf-8"))


def render_expired_page(restart: str) -> str:
    """The page a browser gets for a consent form whose CSRF token is missing or stale (the cookie
    expired, another browser): nothing was decided, and ``restart`` (the authorization request's
    URL) opens the consent page again."""
    return _template("consent_expired.html").substitute(restart=escape(restart))


_REFUSALS: Final = {
    "invalid_client": (
        "这个应用未在本行登记，或已被停用，因此无法向它授权。",
        "This app is not registered with the bank, or has been switched off, so it cannot be given access.",
    ),
    "redirect": (
        "应用要求授权后把您带回一个未在本行登记的地址，为保护您的账户，我们不会带您前往该地址。",
        "The app asked to send you back to an address it has not registered with the bank; to protect "
        "your account you are not sent there.",
    ),
    "": (
        "打开此页面的链接有误，无法安全地返回应用。",
        "The link that opened this page is faulty, so you cannot safely be sent back to the app.",
    ),
}
"""What is wrong, in the customer's words: for a client refused, a redirect URI refused, anything else."""

_REDIRECT_REFUSED: Final = ("Redirect URI ", "Missing 'redirect_uri'")
"""How authlib's descriptions of an unregistered or missing redirect URI begin."""


def render_refused_page(error: str, description: str | None) -> str:
    """The page a browser gets for an authorization request refused without a redirect (RFC 6749
    section 4.1.2.1: an unknown or disabled client, a redirect URI missing or not registered): what is
    wrong in the customer's words, and the OAuth ``error`` and its description for the app's developer."""
    about = description or ""
    key = error if error in _REFUSALS else "redirect" if about.startswith(_REDIRECT_REFUSED) else ""
    what_zh, what_en = _REFUSALS[key]
    return _template("consent_refused.html").substitute(
        what_zh=escape(what_zh), what_en=escape(what_en), error=escape(error), description=escape(about)
    )


_SIGN_IN: Final = {
    True: (
        "只有在本行手机银行App中登录后才能授权，此页面不是从已登录的App中打开的，或登录已过期。",
        "Access can only be given after signing in to the bank's mobile app; this page was not opened "
        "from a signed-in app, or the sign-in has expired.",
    ),
    False: (
        "本行尚未开通客户登录，暂时无法授权。",
        "The bank has not switched customer sign-in on yet, so access cannot be given for now.",
    ),
}
"""Why no one can decide, in the customer's words: not signed in (or signed out), or no login configured."""


def render_sign_in_page(problem: str, detail: str, *, login_configured: bool) -> str:
    """The page a browser gets for the consent page or its form when no customer is signed in (the
    development login off): nothing was authorized, sign in through the app; ``problem`` and ``detail``
    (the problem an API client gets) for the app's developer."""
    what_zh, what_en = _SIGN_IN[login_configured]
    return _template("consent_signin.html").substitute(
        what_zh=escape(what_zh), what_en=escape(what_en), problem=escape(problem), detail=escape(detail)
    )


_DEV_LOGIN: Final = """<div class="dev">
<p><strong>开发登录（仅限演示环境）</strong> <span class="en">Development login — demo only, not a real
authentication. A bank signs its customers in with its own identity provider.</span></p>
<label>演示客户 <span class="en">Demo customer</span>
$customer_field</label>
</div>"""


def render_consent_page(
    prompt: ConsentPrompt,
    *,
    action: str,
    customers: Iterable[tuple[str, str]],
    csrf_token: str,
    signed_in: str | None = None,
    manifest: Manifest | None = None,
) -> str:
    """The HTML page for ``prompt``: for the ``signed_in`` customer, else with the development login,
    whose ``customers`` are (customer number, label) pairs to choose from.

    ``csrf_token`` is the form token for ``prompt.params`` (``consent_csrf.form_token``); ``manifest``
    is the asking plugin's, for its name and its reason for each scope.
    """
    reasons = {**manifest.scopes.required, **manifest.scopes.optional} if manifest is not None else {}
    items = []
    for name in prompt.scopes:
        scope = SCOPES[name]
        why = ""
        if name in reasons:
            why = f'<br><span class="why">用途 <span class="en">Why</span>: {escape(reasons[name])}</span>'
        items.append(
            f"<li><code>{escape(name)}</code> — {escape(scope.description.zh_CN)} "
            f'<span class="en">{escape(scope.description.en or "")}</span>{why}</li>'
        )
    partner_note = ""
    if prompt.client.is_partner and set(prompt.scopes) & CONSENTED_SCOPES:
        partner_note = (
            "<p>这是第三方合作方。同意后将创建一项授权，您可随时在“授权管理”中撤销。"
            '<span class="en">This is a third-party partner. Allowing creates a consent you can revoke '
            "at any time.</span></p>"
        )
    hidden = "\n".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
        for k, v in (*prompt.params.items(), (FIELD, csrf_token))
    )
    if signed_in is not None:
        login = (
            f"<p>已登录客户 <span class=\"en\">Signed in as</span> <code>{escape(signed_in)}</code></p>"
        )
    else:
        login = Template(_DEV_LOGIN).substitute(customer_field=_customer_field(customers))
    client_zh, client_en = prompt.client.shown_names()
    if manifest is not None:
        client_zh, client_en = manifest.name.zh_CN, manifest.name.en or prompt.client.client_id
    return _template().substitute(
        client_zh=escape(client_zh),
        client_en=escape(client_en),
        scope_items="\n".join(items),
        partner_note=partner_note,
        action=escape(action),
        hidden=hidden,
        login=login,
    )


def _customer_field(customers: Iterable[tuple[str, str]]) -> str:
    """The development login's customer choice: a list, or a text field when none can be listed."""
    options = "\n".join(f'<option value="{escape(ref)}">{escape(label)}</option>' for ref, label in customers)
    # Without a customer list (a data provider that cannot enumerate), the customer number is typed in.
    if not options:
        return '<input name="customer" required>'
    return f'<select name="customer">\n{options}\n</select>'


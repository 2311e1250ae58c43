"""Local-only guard: a server on 127.0.0.1 is still reachable from every web page.

- DNS rebinding (a page on evil.example whose name now resolves to 127.0.0.1): the browser
  sends `Host: evil.example`, so only loopback Hosts are accepted.
- Cross-origin calls: browsers send `Origin`; only the editor's own webviews may call.
  Clients that send no Origin (curl, Node, the editor extension host) are fine.
- Simple-request CSRF (a form posting text/plain to /restart): see body.check_json_content_type.
"""

from __future__ import annotations

import ipaddress

EDITOR_ORIGIN_SCHEMES = ("vscode-webview://", "vscode-file://")
LOOPBACK_NAMES = frozenset({"localhost"})


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether a bind address or Host name stays on this machine."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def split_host(header: str) -> str | None:
    """The host part of a Host header (`name`, `name:port`, `[v6]:port`); None if malformed."""
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return None
        host, rest = header[1:end], header[end + 1:]
        if _ip(host) is None:
            return None
    else:
        host, colon, port = header.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit() and len(rest) <= 6):
        return None
    return host.lower() or None


def host_allowed(header: str | None, *, allow_remote: bool) -> bool:
    """Loopback names only; with `allow_remote`, also any IP literal (a rebinding attack
    needs a domain name, so an address in Host is never one)."""
    host = split_host(header) if header else None
    if host is None:
        return False
    if is_loopback(host):
        return True
    return allow_remote and _ip(host) is not None


def origin_allowed(origin: str | None) -> bool:
    return origin is None or origin.startswith(EDITOR_ORIGIN_SCHEMES)


def cors_headers(origin: str) -> dict[str, str]:
    """What lets an editor webview read our answers (never credentials)."""
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
            "Access-Control-Expose-Headers": "Retry-After, X-Helios-Superseded"}


# The answer to a CORS preflight from an editor webview.
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Helios-Client",
    "Access-Control-Max-Age": "600",
}

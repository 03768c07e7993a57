#!/usr/bin/env python3
"""Side-by-side comparison of two servers of the legacy REST + WebSocket API.

Sends the same sequence of requests (and WebSocket frames) to server A and to
server B, normalises what legacy clients see (status, the headers that matter,
the JSON body with ids / tokens / timestamps replaced by placeholders after
their format has been checked) and diffs the two.

    python compare.py --a http://127.0.0.1:18080 --b http://127.0.0.1:8000
    python compare.py --a http://127.0.0.1:18080 --only-a     # print A's normalised answers

Output: one line per check, `SAME name`, `DIFF name` (followed by a unified
diff of the normalised answers) or `KNOWN name` (a deliberate difference, see
KNOWN_DIFFERENCES), then `N same, M different`. Exit code 1 on any DIFF,
2 when a server cannot be reached.

Needs Python 3.11 and the `websockets` package (the Django reference's venv
has it); everything else is the standard library.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import difflib
import fnmatch
import hashlib
import hmac
import http.client
import json
import re
import secrets
import sys
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

try:
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus
except ImportError:  # pragma: no cover
    sys.exit("compare.py needs the 'websockets' package (use the Django reference's .venv/bin/python)")

# --------------------------------------------------------------------------
# Deliberate differences: check name (fnmatch pattern) -> reason. A check that
# differs and matches one of these is reported as KNOWN, not DIFF.
# --------------------------------------------------------------------------
KNOWN_DIFFERENCES: dict[str, str] = {
    # Not exercised (the tool never stops a server); kept for a future shutdown check.
    "ws: close code on server shutdown": (
        "API.md wants 1001; uvicorn (Django reference) sends 1012 on SIGTERM before the app can act"
    ),
    "refresh: valid refresh token of a user that does not exist": (
        "SimpleJWT 5.5.1 bug: Django answers 500 {\"error\": \"Server Error (500)\"} "
        "(User.DoesNotExist escapes TokenRefreshSerializer); Agora need not copy a crash"
    ),
    "disallowed Host header": (
        "Agora does not validate Host (bearer tokens, no cookies; the reverse proxy owns virtual hosts); "
        "Django's ALLOWED_HOSTS answers 400 {\"error\": \"Bad Request (400)\"}"
    ),
    "refresh: refresh token with numeric user_id": (
        "SimpleJWT copies the numeric user_id into the new access token; Agora writes it as a string, "
        "as API.md specifies for the tokens it issues (both forms are accepted)"
    ),
}

# Headers legacy clients can see; everything else (Date, Server, Content-Length,
# Vary, security headers, ...) is ignored.
COMPARED_HEADERS = ("content-type", "www-authenticate", "allow", "retry-after")

TS_STRICT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
TS_LOOSE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
JWT_SHAPE = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
JTI_SHAPE = re.compile(r"^[0-9a-f]{32}$")
DIGITS = re.compile(r"^[0-9]+$")
LONG_STRING = 160  # longer strings are shown as length + hash


def b64e(raw: bytes | str) -> str:
    if isinstance(raw, str):
        raw = raw.encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_int(value) -> bool:
    return type(value) is int  # bool is not an int here


def compact(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def pairs_hook(pairs):
    out = {}
    for key, value in pairs:
        out[f"<DUPLICATE KEY {key}>" if key in out else key] = value
    return out


NOT_JSON = object()


def parse_json(raw: bytes):
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=pairs_hook)
    except (UnicodeDecodeError, ValueError):
        return NOT_JSON


# --------------------------------------------------------------------------
# Normalisation (one instance per server: ids map to ordinals per server).
# --------------------------------------------------------------------------
class Normaliser:
    def __init__(self, secret: str, access_lifetime: int, refresh_lifetime: int):
        self.secret = secret.encode()
        self.lifetime = {"access": access_lifetime, "refresh": refresh_lifetime}
        self.ids: dict[str, dict[int, int]] = {}

    def ident(self, kind: str, raw) -> str:
        if not is_int(raw):
            return f"<{kind} id of type {type(raw).__name__}: {raw!r}>"
        seen = self.ids.setdefault(kind, {})
        if raw not in seen:
            seen[raw] = len(seen) + 1
        return f"<{kind}{seen[raw]}>"

    def value(self, value, key: str | None = None):
        if isinstance(value, dict):
            return self.obj(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, str):
            return self.string(value, key)
        return value

    def obj(self, data: dict) -> dict:
        keys = set(data)
        if "members" in keys:
            kind = "room"
        elif "title" in keys or "created_at" in keys:
            kind = "post"
        elif "timestamp" in keys:
            kind = "message"
        elif "username" in keys:
            kind = "user"
        else:
            kind = "id"
        out = {}
        for key, value in data.items():
            if key == "id" and not isinstance(value, (dict, list)):
                out[key] = self.ident(kind, value)
            elif key == "members" and isinstance(value, list):
                out[key] = [self.ident("user", item) for item in value]
            else:
                out[key] = self.value(value, key)
        return out

    def string(self, text: str, key: str | None):
        if JWT_SHAPE.match(text):
            return self.jwt(text)
        if key in ("created_at", "timestamp") or TS_LOOSE.match(text):
            return self.timestamp(text)
        if len(text) > LONG_STRING:
            digest = hashlib.sha1(text.encode()).hexdigest()[:12]
            return f"<{len(text)} chars {text[:24]!r}... sha1 {digest}>"
        return text

    @staticmethod
    def timestamp(text: str) -> str:
        if not TS_STRICT.match(text):
            return f"<BAD TIMESTAMP FORMAT {text}>"
        when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        if abs(when - datetime.now(timezone.utc)) > timedelta(hours=1):
            return "<ts !! more than an hour away from this machine's clock (time zone?)>"
        return "<ts>"

    def jwt(self, token: str) -> str:
        """<jwt:TYPE <userN>>, plus ` !! problems` when it is not a SimpleJWT 5.5 token."""
        head64, body64, sig64 = token.split(".")
        try:
            header = json.loads(b64d(head64), object_pairs_hook=list)
            claims = json.loads(b64d(body64), object_pairs_hook=list)
        except (ValueError, UnicodeDecodeError):
            return "<jwt !! header or payload is not base64url JSON>"
        if not (isinstance(claims, list) and isinstance(header, list)):
            return "<jwt !! header or payload is not a JSON object>"
        problems = []
        header = [tuple(pair) for pair in header]
        good_header = header == [("alg", "HS256"), ("typ", "JWT")]
        if not good_header:
            problems.append(f"header {compact(dict(header))} (want {{\"alg\":\"HS256\",\"typ\":\"JWT\"}} in that order)")
        names = [name for name, _ in claims]
        if names != ["token_type", "exp", "iat", "jti", "user_id"]:
            problems.append(f"claims {names} (want token_type, exp, iat, jti, user_id in that order)")
        claim = dict(claims)
        kind = claim.get("token_type")
        if kind not in ("access", "refresh"):
            problems.append(f"token_type {kind!r}")
        exp, iat = claim.get("exp"), claim.get("iat")
        if not (is_int(exp) and is_int(iat)):
            problems.append(f"exp/iat not integers: {exp!r}/{iat!r}")
        else:
            want = self.lifetime.get(kind)
            if want is not None and exp - iat != want:
                problems.append(f"exp-iat = {exp - iat}, want {want}")
            if abs(iat - time.time()) > 120:
                problems.append("iat is not the current time")
        jti = claim.get("jti")
        if not (isinstance(jti, str) and JTI_SHAPE.match(jti)):
            problems.append(f"jti {jti!r} is not 32 lowercase hex digits")
        uid = claim.get("user_id")
        if isinstance(uid, str) and DIGITS.match(uid):
            who = self.ident("user", int(uid))
        elif is_int(uid):
            who = self.ident("user", uid)
            problems.append("user_id is a number, not a string")
        else:
            who = "?"
            problems.append(f"user_id {uid!r}")
        if good_header:
            mac = hmac.new(self.secret, f"{head64}.{body64}".encode(), hashlib.sha256).digest()
            try:
                ok = hmac.compare_digest(mac, b64d(sig64))
            except ValueError:
                ok = False
            if not ok:
                problems.append("signature does not verify with --secret")
        out = f"<jwt:{kind} {who}>"
        return out + (" !! " + "; ".join(problems) if problems else "")


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------
class Resp:
    def __init__(self, method, status, headers, body, error=None):
        self.method = method
        self.status = status
        self.headers = headers  # lower-case name -> value (repeats joined with ", ")
        self.body = body
        self.error = error
        self.data = parse_json(body) if body else NOT_JSON

    def get(self, key, default=None):
        """Safe lookup of one key of a JSON object body."""
        if isinstance(self.data, dict) and key in self.data:
            return self.data[key]
        return default


def media_type(value: str) -> str:
    return value.split(";")[0].strip().lower()


def json_body(obj) -> tuple[bytes, str]:
    return json.dumps(obj, ensure_ascii=False).encode(), "application/json"


def form_body(fields) -> tuple[bytes, str]:
    items = fields.items() if isinstance(fields, dict) else fields
    return urllib.parse.urlencode(list(items)).encode(), "application/x-www-form-urlencoded"


def multipart_body(fields) -> tuple[bytes, str]:
    """fields: dict or (name, value) pairs; value str, or (filename, bytes, content type) for a file part."""
    boundary = "----legacy-compare-" + secrets.token_hex(8)
    items = fields.items() if isinstance(fields, dict) else fields
    out = b""
    for name, value in items:
        if isinstance(value, tuple):
            filename, content, ctype = value
            head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: {ctype}\r\n'
        else:
            content = str(value).encode()
            head = f'Content-Disposition: form-data; name="{name}"\r\n'
        out += f"--{boundary}\r\n{head}\r\n".encode() + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def quote_path(segment: str) -> str:
    """Percent-encode a room name for a URL path; '+', '@', '.', '-', '_' stay literal."""
    return urllib.parse.quote(segment, safe="+@.-_~")


class Server:
    def __init__(self, base: str, timeout: float):
        url = urllib.parse.urlsplit(base.rstrip("/"))
        if url.scheme not in ("http", "https"):
            raise SystemExit(f"not an http(s) URL: {base}")
        self.https = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.https else 80)
        self.prefix = url.path
        self.timeout = timeout
        self.ws_base = ("wss://" if self.https else "ws://") + url.netloc + url.path

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Resp:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout)
        try:
            names = {name.lower() for name in headers}
            conn.putrequest(method, self.prefix + path, skip_host="host" in names, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            raw = conn.getresponse()
            payload = raw.read()
            merged: dict[str, str] = {}
            for name, value in raw.getheaders():
                name = name.lower()
                merged[name] = f"{merged[name]}, {value}" if name in merged else value
            return Resp(method, raw.status, merged, payload)
        except (OSError, http.client.HTTPException) as exc:
            return Resp(method, 0, {}, b"", error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()


# --------------------------------------------------------------------------
# One run of the scenario against one server
# --------------------------------------------------------------------------
class Session:
    def __init__(self, label: str, server: Server, args, suffix: str):
        self.label = label
        self.srv = server
        self.norm = Normaliser(args.secret, args.access_lifetime, args.refresh_lifetime)
        self.secret = args.secret.encode()
        self.quiet = args.ws_quiet
        self.s = suffix
        self.results: list[tuple[str, str]] = []
        self.statuses: list[int] = []

    # ---- recording ----
    def record(self, name: str, text: str) -> None:
        if any(name == seen for seen, _ in self.results):
            raise RuntimeError(f"duplicate check name: {name}")
        self.results.append((name, text))

    def note(self, name: str, obj) -> None:
        """A derived check: any JSON value computed from the answers."""
        self.record(name, json.dumps(obj, indent=2, ensure_ascii=False))

    def render_body(self, data, view=None, options=False) -> str:
        if view is not None:
            try:
                data = view(data)
            except Exception as exc:  # the shape was not what the view expected
                return f"<view failed: {type(exc).__name__}>\n" + self.render_body(data, None, options)
        data = self.norm.value(data)
        if options and isinstance(data, dict):
            # DRF's OPTIONS metadata carries the view's class name and docstring.
            for key in ("name", "description"):
                if isinstance(data.get(key), str):
                    data[key] = "<text>"
        return json.dumps(data, indent=2, ensure_ascii=False)

    def render(self, resp: Resp, view=None, options=False) -> str:
        if resp.error:
            return f"<no HTTP answer: {resp.error.split(':')[0]}>"
        lines = [f"HTTP {resp.status}"]
        for name in COMPARED_HEADERS:
            if name in resp.headers:
                value = resp.headers[name]
                lines.append(f"{name}: {media_type(value) if name == 'content-type' else value}")
        if not resp.body:
            lines.append("<empty body>")
        elif resp.data is NOT_JSON:
            lines.append(f"<body is not JSON: {resp.body[:300]!r}>")
        else:
            lines.append(self.render_body(resp.data, view, options))
        return "\n".join(lines)

    # ---- HTTP ----
    def http(self, name, method, path, *, token=None, auth=None, json=None, form=None, multipart=None,
             raw=None, ctype=None, headers=None, view=None, options=False, record=True) -> Resp:
        hdrs = {"Accept": "application/json"}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if auth is not None:
            hdrs["Authorization"] = auth
        body = None
        if json is not None:
            body, kind = json_body(json)
            hdrs["Content-Type"] = kind
        elif form is not None:
            body, kind = form_body(form)
            hdrs["Content-Type"] = kind
        elif multipart is not None:
            body, kind = multipart_body(multipart)
            hdrs["Content-Type"] = kind
        elif raw is not None:
            body = raw
        if ctype is not None:
            hdrs["Content-Type"] = ctype
        for key, value in (headers or {}).items():
            for existing in [k for k in hdrs if k.lower() == key.lower()]:
                del hdrs[existing]
            if value is not None:
                hdrs[key] = value
        resp = self.srv.request(method, path, hdrs, body)
        self.statuses.append(resp.status)
        if record:
            self.record(name, self.render(resp, view, options))
        return resp

    # ---- tokens ----
    def craft(self, claims: dict | None = None, *, alg: str = "HS256", key: bytes | None = None,
              drop: tuple[str, ...] = (), **changes) -> str:
        """A token signed like SimpleJWT's, with claims changed/dropped (changes override claims)."""
        now = int(time.time())
        payload = {"token_type": "access", "exp": now + 300, "iat": now, "jti": secrets.token_hex(16), "user_id": "0"}
        payload.update(claims or {})
        payload.update(changes)
        for claim in drop:
            payload.pop(claim, None)
        head = b64e(compact({"alg": alg, "typ": "JWT"}))
        body = b64e(compact(payload))
        if alg == "none":
            return f"{head}.{body}."
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        sig = hmac.new(key or self.secret, f"{head}.{body}".encode(), digest).digest()
        return f"{head}.{body}.{b64e(sig)}"

    # ---- WebSocket ----
    async def ws_open(self, name, path, *, headers=None, record=True):
        """Opens a socket; records ACCEPTED or the refusal (status, headers, JSON body)."""
        url = self.srv.ws_base + path
        try:
            ws = await ws_connect(url, additional_headers=headers or {}, open_timeout=10,
                                  max_size=None, user_agent_header=None)
        except InvalidStatus as exc:
            resp = exc.response
            hdrs = {k.lower(): v for k, v in resp.headers.raw_items()}
            fake = Resp("GET", resp.status_code, hdrs, resp.body or b"")
            if record:
                self.record(name, "WS REFUSED\n" + self.render(fake))
            return None
        except Exception as exc:  # noqa: BLE001 - anything else is an answer too
            if record:
                self.record(name, f"WS FAILED {type(exc).__name__}")
            return None
        if record:
            self.record(name, "WS ACCEPTED")
        return ws

    async def ws_recv(self, ws, timeout=5.0):
        """The next frame rendered (text/binary + normalised JSON), '<no frame>' or '<closed ...>'."""
        if ws is None:
            return "<no socket>", None
        try:
            frame = await asyncio.wait_for(ws.recv(), timeout)
        except asyncio.TimeoutError:
            return "<no frame>", None
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            return f"<closed, code {code}>", None
        kind = "binary" if isinstance(frame, bytes) else "text"
        raw = frame if isinstance(frame, bytes) else frame.encode()
        data = parse_json(raw)
        if data is NOT_JSON:
            return f"{kind} frame, not JSON: {raw[:200]!r}", None
        return f"{kind} frame " + self.render_body(data), data


# --------------------------------------------------------------------------
# The scenario. Every check name must be unique; the order of requests is
# the same for both servers.
# --------------------------------------------------------------------------
PW = "s3cret-pass"


async def scenario(S: Session) -> None:  # noqa: C901 - one long, linear script on purpose
    s = S.s
    users = "/accounts/api/users/"
    tok = "/accounts/api/token/"
    ref = "/accounts/api/token/refresh/"
    me = "/profiles/api/profile/"
    posts = "/profiles/api/posts/"
    rooms = "/messenger/api/chatrooms/"
    myrooms = "/messenger/api/user/chatrooms/"

    def msgs(room):
        return f"/messenger/api/chatrooms/{quote_path(room)}/messages/"

    def ws_path(room, slash=True):
        return f"/messenger/ws/ws/chat/{quote_path(room)}" + ("/" if slash else "")

    def mine(data):  # users of this run only (the server may hold others)
        return [u for u in data if s in str(u.get("username", ""))]

    def our_posts(data):
        return [p for p in data if s in str(p.get("title", ""))]

    uid: dict[str, object] = {}  # role -> raw id on this server
    name: dict[str, str] = {}  # role -> username as the server stored it

    def register(check, role, username, *, how="json", path=users, email=None, password=PW, extra=None):
        fields = {"username": username, "email": email or f"{role}{s}@example.com", "password": password}
        fields.update(extra or {})
        kwargs = {how: fields}
        r = S.http(check, "POST", path, **kwargs)
        uid[role] = r.get("id")
        name[role] = r.get("username", username)
        return r

    # ================= 1. register =================
    S.http("register: all fields missing ({})", "POST", users, json={})
    register("register: success (JSON, trailing slash)", "al", f"al{s}")
    register("register: success (form, no trailing slash)", "bo", f"bo{s}", how="form", path=users.rstrip("/"))
    register("register: success (multipart)", "ca", f"ca{s}", how="multipart")
    register("register: success (multipart, non-ASCII username)", "emile", f"émile{s}", how="multipart")
    S.http("register: JSON with charset, unknown and read-only fields ignored", "POST", users,
           raw=json.dumps({"username": f"da{s}", "email": f"da{s}@example.com", "password": PW, "id": 999999,
                           "is_staff": True, "profile": {"bio": "x"}}).encode(),
           ctype="application/json; charset=utf-8")
    register("register: success (uppercase username)", "zed", f"Zed{s}")
    register("register: success (username with + . @ -)", "plus", f"pl+u.s@{s}-")
    S.http("register: duplicate username (other case) and duplicate email (other case)", "POST", users,
           json={"username": f"AL{s.upper()}", "email": f"AL{s.upper()}@EXAMPLE.com", "password": PW})
    S.http("register: bad email, bad username characters", "POST", users,
           json={"username": f"bad name!{s}", "email": "not-an-email", "password": PW})
    S.http("register: short password", "POST", users,
           json={"username": f"shorty{s}", "email": f"shorty{s}@example.com", "password": "abc12"})
    S.http("register: short and entirely numeric password", "POST", users,
           json={"username": f"numeric{s}", "email": f"n{s}@example.com", "password": "1234567"})
    S.http("register: entirely numeric password (8+ chars)", "POST", users,
           json={"username": f"numeric{s}", "email": f"n{s}@example.com", "password": "12345678901"})
    S.http("register: password equal to the username", "POST", users,
           json={"username": f"margaret{s}", "email": f"m{s}@example.com", "password": f"margaret{s}"})
    S.http("register: password similar to the email", "POST", users,
           json={"username": f"zz{s}", "email": f"margaretha{s}@example.com", "password": f"margaretha{s}1"})
    S.http("register: password similar to the username, other case", "POST", users,
           json={"username": f"margaret{s}", "email": f"m{s}@example.com", "password": f"MARGARET{s.upper()}!"})
    S.http("register: blank fields", "POST", users, json={"username": "", "email": "", "password": ""})
    S.http("register: whitespace-only fields (form body)", "POST", users,
           form={"username": "  ", "email": " ", "password": "   "})
    S.http("register: null fields", "POST", users, json={"username": None, "email": None, "password": None})
    S.http("register: username of 151 characters, email of 255", "POST", users,
           json={"username": "u" * 151, "email": "e" * 243 + "@example.com", "password": PW})
    S.http("register: password of 129 characters", "POST", users,
           json={"username": f"longpw{s}", "email": f"l{s}@example.com", "password": "p" * 129})
    S.http("register: non-string JSON values", "POST", users,
           json={"username": ["x"], "email": {"a": 1}, "password": True})
    S.http("register: number as username", "POST", users,
           json={"username": int(str(int(s, 16)) + "7"), "email": f"num{s}@example.com", "password": PW})
    S.http("register: JSON body that is a list", "POST", users, json=[1, 2])
    S.http("register: JSON body that is null", "POST", users, raw=b"null", ctype="application/json")
    S.http("register: JSON body that is a string", "POST", users, raw=b'"x"', ctype="application/json")
    S.http("register: empty body with JSON content type", "POST", users, raw=b"", ctype="application/json")
    S.http("register: body without Content-Type", "POST", users,
           raw=json.dumps({"username": f"noct{s}"}).encode())
    S.http("register: errors in field order whatever the request order", "POST", users,
           json={"password": "1", "email": "bad", "username": ""})
    register("register: surrounding whitespace trimmed (password too)", "pad", f"  pad{s}  ",
             email=f"  pad{s}@example.com ", password=f"  {PW}  ")
    register("register: email domain lower-cased, local part kept", "mixed", f"mx{s}",
             email=f"Mixed{s}@EXAMPLE.COM")
    register("register: username NFKC-normalised (fullwidth letters)", "fw", f"ｆｗ{s}")
    register("register: email at localhost", "lh", f"lh{s}", email=f"lh{s}@localhost")
    S.http("register: email without a dot in the domain", "POST", users,
           json={"username": f"nodot{s}", "email": f"nodot{s}@example", "password": PW})
    register("register: email with an IP literal", "ip", f"ip{s}", email=f"ip{s}@[127.0.0.1]")
    S.http("register: email with a display name", "POST", users,
           json={"username": f"disp{s}", "email": f"Disp <disp{s}@example.com>", "password": PW})
    register("register: username of 150, email of 254, password of 128 characters", "long",
             "u" * (150 - len(s)) + s, email="e" * (242 - len(s)) + s + "@example.com", password="p" * 128)
    S.http("register: form with a repeated key (last value wins)", "POST", users,
           form=[("username", f"first{s}"), ("username", f"rk{s}"), ("email", f"rk{s}@example.com"),
                 ("password", PW)])
    S.http("register: open endpoint with a garbage Bearer token", "POST", users, auth="Bearer garbage",
           json={"username": f"gb{s}", "email": f"gb{s}@example.com", "password": PW})
    S.http("register: duplicate username after trimming", "POST", users,
           json={"username": f" al{s} ", "email": f"other{s}@example.com", "password": PW})

    # Users whose names collide when joined by "_" (room names get _2, _3).
    parts = [f"m{s}", "n", "o", f"p{s}"]
    trio = [("c1", "_".join(parts[:1]), "c2", "_".join(parts[1:])),
            ("c3", "_".join(parts[:2]), "c4", "_".join(parts[2:])),
            ("c5", "_".join(parts[:3]), "c6", "_".join(parts[3:]))]
    for a_role, a_name, b_role, b_name in trio:
        assert "_".join(sorted((a_name, b_name))) == "_".join(parts)
        register(f"register: {a_role} for name collisions", a_role, a_name)
        register(f"register: {b_role} for name collisions", b_role, b_name)

    # ================= 2. token =================
    access: dict[str, str] = {}
    refresh: dict[str, str] = {}

    def login(check, role, username=None, password=PW, how="json", path=tok):
        r = S.http(check, "POST", path, **{how: {"username": username or name.get(role, ""), "password": password}})
        access[role] = r.get("access", "missing-access-token")
        refresh[role] = r.get("refresh", "missing-refresh-token")
        return r

    S.http("token: wrong password", "POST", tok, json={"username": f"al{s}", "password": "wrong-pass"})
    S.http("token: unknown user", "POST", tok, json={"username": f"nobody{s}", "password": "wrong-pass"})
    S.http("token: missing fields", "POST", tok, json={})
    S.http("token: blank fields", "POST", tok, json={"username": "", "password": ""})
    S.http("token: null fields", "POST", tok, json={"username": None, "password": None})
    S.http("token: username in another case", "POST", tok, json={"username": f"AL{s.upper()}", "password": PW})
    t0 = time.time()
    login("token: success (JSON)", "al")
    login("token: success (form, no trailing slash)", "bo", how="form", path=tok.rstrip("/"))
    login("token: success (multipart)", "ca", how="multipart")
    login("token: surrounding whitespace trimmed", "pad", username=f"  pad{s} ", password=f" {PW}  ")
    login("token: NFKC-normalised username", "fw")
    S.http("token: username as typed before NFKC normalisation", "POST", tok,
           json={"username": f"ｆｗ{s}", "password": PW})
    S.http("token: ignores a garbage Bearer header", "POST", tok, auth="Bearer garbage",
           json={"username": f"al{s}", "password": "wrong-pass"})
    for role in ("emile", "zed", "plus", "c1", "c3", "c4", "c5"):
        login(f"token: success ({role})", role)
    al = access["al"]

    # ================= 3. refresh =================
    S.http("refresh: garbage token", "POST", ref, json={"refresh": "garbage"})
    S.http("refresh: access token given", "POST", ref, json={"refresh": al})
    S.http("refresh: missing field", "POST", ref, json={})
    S.http("refresh: blank field", "POST", ref, json={"refresh": ""})
    S.http("refresh: null field", "POST", ref, json={"refresh": None})
    now = int(time.time())
    old_refresh = {"token_type": "refresh", "exp": now - 10, "iat": now - 86410, "user_id": str(uid.get("al"))}
    S.http("refresh: expired refresh token", "POST", ref, json={"refresh": S.craft(old_refresh)})
    live_refresh = {"token_type": "refresh", "exp": now + 86400, "iat": now, "user_id": str(uid.get("al"))}
    S.http("refresh: HS512 refresh token", "POST", ref, json={"refresh": S.craft(live_refresh, alg="HS512")})
    S.http("refresh: alg none refresh token", "POST", ref, json={"refresh": S.craft(live_refresh, alg="none")})
    S.http("refresh: refresh token with a bad signature", "POST", ref,
           json={"refresh": S.craft(live_refresh, key=b"another-secret")})
    S.http("refresh: refresh token without jti", "POST", ref, json={"refresh": S.craft(live_refresh, drop=("jti",))})
    S.http("refresh: refresh token with numeric user_id", "POST", ref,
           json={"refresh": S.craft(live_refresh, user_id=uid.get("al"))})
    S.http("refresh: valid refresh token of a user that does not exist", "POST", ref,
           json={"refresh": S.craft(live_refresh, user_id="987654321")})
    # Wait so that an implementation copying iat from the refresh token shows up (exp-iat != lifetime).
    time.sleep(max(0.0, t0 + 1.1 - time.time()))
    r = S.http("refresh: success (JSON)", "POST", ref, json={"refresh": refresh["al"]})
    refreshed = r.get("access", "missing")
    S.http("refresh: success (form, no trailing slash)", "POST", ref.rstrip("/"), form={"refresh": refresh["bo"]})
    S.http("refresh: success (multipart)", "POST", ref, multipart={"refresh": refresh["ca"]})
    S.http("refresh: refreshed access token is accepted", "GET", me, token=refreshed)

    # ================= authentication failures (profile as the protected endpoint) =================
    who = str(uid.get("al"))
    S.http("protected: no credentials", "GET", me)
    S.http("protected: Authorization with another scheme (Token x)", "GET", me, auth="Token abc")
    S.http("protected: lowercase bearer scheme", "GET", me, auth=f"bearer {al}")
    S.http("protected: Bearer with no token", "GET", me, auth="Bearer")
    S.http("protected: Bearer with two values", "GET", me, auth="Bearer a b")
    S.http("protected: Bearer and token separated by two spaces", "GET", me, auth=f"Bearer  {al}")
    S.http("protected: token in the query string is not read by REST", "GET", f"{me}?token={al}")
    S.http("protected: garbage token", "GET", me, auth="Bearer not.a.jwt")
    head, body, sig = al.split(".") if al.count(".") == 2 else ("x", "y", "zzzzzzzzzz")
    bad_sig = sig[:5] + ("A" if sig[5:6] != "A" else "B") + sig[6:]
    S.http("protected: token with a bad signature", "GET", me, token=f"{head}.{body}.{bad_sig}")
    S.http("protected: token signed with another secret", "GET", me,
           token=S.craft(user_id=who, key=b"another-secret"))
    S.http("protected: refresh token used as access token", "GET", me, token=refresh["al"])
    S.http("protected: alg none token", "GET", me, token=S.craft(user_id=who, alg="none"))
    S.http("protected: HS512 token", "GET", me, token=S.craft(user_id=who, alg="HS512"))
    now = int(time.time())
    S.http("protected: expired access token", "GET", me, token=S.craft(user_id=who, exp=now - 10, iat=now - 310))
    S.http("protected: token without jti", "GET", me, token=S.craft(user_id=who, drop=("jti",)))
    S.http("protected: token without token_type", "GET", me, token=S.craft(user_id=who, drop=("token_type",)))
    S.http("protected: token without exp", "GET", me, token=S.craft(user_id=who, drop=("exp",)))
    S.http("protected: token without user_id", "GET", me, token=S.craft(drop=("user_id",)))
    S.http("protected: token of a user that does not exist", "GET", me, token=S.craft(user_id="987654321"))
    S.http("protected: numeric user_id is accepted", "GET", me, token=S.craft(user_id=uid.get("al")))
    S.http("protected: crafted access token is accepted", "GET", me, token=S.craft(user_id=who))

    # ================= 4-6. profile and posts =================
    S.http("profile: no posts yet", "GET", me, token=al)
    S.http("profile: no trailing slash", "GET", me.rstrip("/"), token=access["bo"])
    S.http("posts: create (JSON)", "POST", posts, token=al, json={"title": f"First {s}", "content": "Hello"})
    S.http("posts: create (form, no trailing slash, + and %2B)", "POST", posts.rstrip("/"), token=al,
           raw=f"title=Second+{s}+a%2Bb&content=caf%C3%A9+%26+more".encode(),
           ctype="application/x-www-form-urlencoded")
    S.http("posts: create (multipart, other author)", "POST", posts, token=access["bo"],
           multipart={"title": f"Bob {s}", "content": "Привет"})
    S.http("posts: trimmed, unknown and read-only fields ignored", "POST", posts, token=al,
           json={"title": f"  Third {s}  ", "content": "  body  ", "id": 1, "author": 2,
                 "created_at": "2000-01-01T00:00:00Z"})
    S.http("posts: title and content missing", "POST", posts, token=al, json={})
    S.http("posts: title of 256, content of 10001 characters", "POST", posts, token=al,
           json={"title": "t" * 256, "content": "c" * 10001})
    S.http("posts: null title, whitespace-only content", "POST", posts, token=al,
           json={"title": None, "content": "   "})
    S.http("posts: title of 255, content of 10000 characters", "POST", posts, token=access["ca"],
           json={"title": s + "T" * (255 - len(s)), "content": "c" * 10000})
    S.http("posts: content sent as a multipart file part", "POST", posts, token=al,
           multipart=[("title", f"File {s}"), ("content", ("c.txt", b"file content", "text/plain"))])
    S.http("posts: no credentials", "POST", posts, json={"title": "x", "content": "y"})
    S.http("profile: own posts newest first", "GET", me, token=al)
    r = S.http("posts: list, newest first (this run's posts)", "GET", posts, token=al, view=our_posts)
    S.http("posts: list without trailing slash (this run's posts)", "GET", posts.rstrip("/"), token=access["ca"],
           view=our_posts)
    if isinstance(r.data, list):
        keys = [(p.get("created_at"), p.get("id")) for p in r.data if isinstance(p, dict)]
        S.note("posts: whole list ordered by created_at desc, id desc", {"ordered": keys == sorted(keys, reverse=True)})
    else:
        S.note("posts: whole list ordered by created_at desc, id desc", {"ordered": "no list"})
    S.http("posts: GET ignores an unsupported request body type", "GET", posts, token=access["ca"],
           raw=b"hello", ctype="text/plain", view=our_posts)

    # ================= 1. user list =================
    S.http("users: list without credentials", "GET", users)
    r = S.http("users: list (this run's users)", "GET", users, token=al, view=mine)
    S.http("users: list without trailing slash (this run's users)", "GET", users.rstrip("/"), token=al, view=mine)
    if isinstance(r.data, list):
        ids = [u.get("id") for u in r.data if isinstance(u, dict)]
        ours = [u.get("username") for u in mine(r.data)]
        S.note("users: whole list ordered by id, each of this run's users once",
               {"ordered": ids == sorted(ids), "ours": len(ours), "distinct": len(set(ours))})
    else:
        S.note("users: whole list ordered by id, each of this run's users once", {"ordered": "no list"})

    # ================= 7. rooms =================
    S.http("chatrooms: recipient missing", "POST", rooms, token=al, json={})
    S.http("chatrooms: recipient blank", "POST", rooms, token=al, json={"recipient": ""})
    S.http("chatrooms: recipient null", "POST", rooms, token=al, json={"recipient": None})
    S.http("chatrooms: recipient unknown", "POST", rooms, token=al, json={"recipient": f"ghost{s}"})
    S.http("chatrooms: recipient in another case", "POST", rooms, token=al, json={"recipient": f"BO{s.upper()}"})
    S.http("chatrooms: recipient is a number", "POST", rooms, token=al, json={"recipient": 5})
    S.http("chatrooms: recipient is a list", "POST", rooms, token=al, json={"recipient": ["x"]})
    S.http("chatrooms: recipient is the caller", "POST", rooms, token=al, json={"recipient": name.get("al")})
    S.http("chatrooms: no credentials", "POST", rooms, json={"recipient": name.get("bo")})
    r1 = S.http("chatrooms: create (JSON) -> 201", "POST", rooms, token=al, json={"recipient": name.get("bo")})
    room1 = r1.get("name", f"missing-room-1-{s}")
    S.http("chatrooms: same pair from the other side (form) -> 200", "POST", rooms, token=access["bo"],
           form={"recipient": name.get("al")})
    S.http("chatrooms: same pair again (multipart, no slash) -> 200", "POST", rooms.rstrip("/"), token=al,
           multipart={"recipient": name.get("bo")})
    r2 = S.http("chatrooms: second room for alice (form)", "POST", rooms, token=al, form={"recipient": name.get("ca")})
    room2 = r2.get("name", f"missing-room-2-{s}")
    r3 = S.http("chatrooms: uppercase username sorts first (code points)", "POST", rooms, token=al,
                json={"recipient": name.get("zed")})
    room3 = r3.get("name", f"missing-room-3-{s}")
    r = S.http("chatrooms: non-ASCII username sorts by code point", "POST", rooms, token=access["emile"],
               json={"recipient": name.get("zed")})
    room_uni = r.get("name", f"missing-room-uni-{s}")
    r = S.http("chatrooms: username with + . @ -", "POST", rooms, token=access["plus"],
               json={"recipient": name.get("zed")})
    room_plus = r.get("name", f"missing-room-plus-{s}")
    S.http("chatrooms: name collision, first pair", "POST", rooms, token=access["c1"], json={"recipient": name.get("c2")})
    r = S.http("chatrooms: name collision, second pair gets _2", "POST", rooms, token=access["c3"],
               json={"recipient": name.get("c4")})
    room_c2 = r.get("name", f"missing-room-c2-{s}")
    S.http("chatrooms: name collision, third pair gets _3", "POST", rooms, token=access["c5"],
           json={"recipient": name.get("c6")})
    S.http("chatrooms: name collision, existing pair from the other side -> 200", "POST", rooms,
           token=access["c4"], json={"recipient": name.get("c3")})
    S.http("chatrooms: collision room is readable by its members", "GET", msgs(room_c2), token=access["c3"])
    S.http("chatrooms: collision base room is not readable by others", "GET", msgs("_".join(parts)),
           token=access["c3"])
    S.http("chatrooms: list 7 for alice (by id)", "GET", rooms, token=al)
    S.http("chatrooms: list 7 for bob, no trailing slash", "GET", rooms.rstrip("/"), token=access["bo"])
    S.http("chatrooms: list 7 for zed", "GET", rooms, token=access["zed"])
    S.http("chatrooms: list 9 for alice, no messages yet (newest room first)", "GET", myrooms, token=al)
    S.http("chatrooms: list 9 for zed, no trailing slash", "GET", myrooms.rstrip("/"), token=access["zed"])
    S.http("chatrooms: list 9 without credentials", "GET", myrooms)

    # ================= 8. messages =================
    S.http("messages: unknown room (GET)", "GET", msgs(f"nope{s}"), token=al)
    S.http("messages: unknown room (POST)", "POST", msgs(f"nope{s}"), token=al, form={"content": "x"})
    S.http("messages: room of others (GET)", "GET", msgs(room1), token=access["ca"])
    S.http("messages: room of others (POST)", "POST", msgs(room1), token=access["ca"], json={"content": "x"})
    S.http("messages: no credentials", "GET", msgs(room1))
    S.http("messages: no credentials, unknown room", "GET", msgs(f"nope{s}"))
    S.http("messages: empty history", "GET", msgs(room1), token=al)
    S.http("messages: content missing", "POST", msgs(room1), token=al, json={})
    S.http("messages: content whitespace only", "POST", msgs(room1), token=al, json={"content": "   "})
    S.http("messages: content null", "POST", msgs(room1), token=al, json={"content": None})
    S.http("messages: content of 4001 characters", "POST", msgs(room1), token=al, json={"content": "c" * 4001})
    S.http("messages: content is an object", "POST", msgs(room1), token=al, json={"content": {"a": 1}})
    m_ids = []
    for i, (check, kwargs) in enumerate([
        ("messages: post (JSON)", {"token": al, "json": {"content": "one"}}),
        ("messages: post (form, other member)", {"token": access["bo"], "form": {"content": "two+2 & more"}}),
        ("messages: post (multipart)", {"token": al, "multipart": {"content": "three"}}),
        ("messages: post trimmed", {"token": access["bo"], "json": {"content": "  four  "}}),
        ("messages: post non-ASCII", {"token": al, "json": {"content": "Привет, мир! 👋 ünïcödé"}}),
        ("messages: post a number (stored as text)", {"token": al, "json": {"content": 42}}),
        ("messages: post 4000 characters", {"token": access["bo"], "json": {"content": "c" * 4000}}),
    ]):
        path = msgs(room1) if i % 2 == 0 else msgs(room1).rstrip("/")
        r = S.http(check, "POST", path, **kwargs)
        m_ids.append(r.get("id"))
    S.http("chatrooms: list 9 for alice after a message in the first room", "GET", myrooms, token=al)
    S.http("messages: POST ignores bad paging parameters", "POST", f"{msgs(room2)}?limit=abc&before=0",
           token=access["ca"], json={"content": "hello alice"})
    S.http("chatrooms: list 9 for alice after a message in the second room", "GET", myrooms, token=al)
    S.http("chatrooms: list 7 for alice stays by id", "GET", rooms, token=al)
    S.http("messages: history oldest first", "GET", msgs(room1), token=al)
    S.http("messages: history, no trailing slash, other member", "GET", msgs(room1).rstrip("/"), token=access["bo"])
    known = [m for m in m_ids if is_int(m)]
    first_id = known[0] if known else 1
    mid_id = known[3] if len(known) > 3 else 1
    last_id = known[-1] if known else 1
    for check, query in [
        ("messages: limit=2", "limit=2"),
        ("messages: before=4th message", f"before={mid_id}"),
        ("messages: limit=2&before=4th message", f"limit=2&before={mid_id}"),
        ("messages: before=first message (empty page)", f"before={first_id}"),
        ("messages: before beyond the last message", f"before={last_id + 1000}"),
        ("messages: limit larger than the history", "limit=100"),
        ("messages: limit=1&limit=3 (last value wins)", "limit=1&limit=3"),
        ("messages: limit empty (ignored)", "limit="),
        ("messages: limit=2.0", "limit=2.0"),
        ("messages: limit=+2", "limit=%2B2"),
        ("messages: unknown query parameter ignored", "foo=bar&limit=1"),
        ("messages: limit=0", "limit=0"),
        ("messages: limit=-1", "limit=-1"),
        ("messages: limit=1.5", "limit=1.5"),
        ("messages: limit=abc", "limit=abc"),
        ("messages: before=abc", "before=abc"),
        ("messages: before=0", "before=0"),
        ("messages: bad limit/before", "limit=abc&before=0"),
    ]:
        S.http(check, "GET", f"{msgs(room1)}?{query}", token=al)
    S.http("messages: non-ASCII room name, percent-encoded", "POST", msgs(room_uni), token=access["emile"],
           json={"content": "salut"})
    S.http("messages: room name with a literal +", "GET", msgs(room_plus), token=access["plus"])
    S.http("messages: room name with %2B for +", "GET",
           f"/messenger/api/chatrooms/{urllib.parse.quote(room_plus, safe='')}/messages/", token=access["zed"])

    # ================= 405, HEAD, OPTIONS, Accept =================
    for check, method, path, token in [
        ("405: PUT on users (authenticated)", "PUT", users, al),
        ("405: PUT on users (no credentials)", "PUT", users, None),
        ("405: PATCH on users", "PATCH", users.rstrip("/"), al),
        ("405: DELETE on users (no credentials)", "DELETE", users, None),
        ("405: GET on token", "GET", tok, None),
        ("405: GET on token without trailing slash", "GET", tok.rstrip("/"), None),
        ("405: DELETE on token (with credentials)", "DELETE", tok, al),
        ("405: GET on token/refresh", "GET", ref, None),
        ("405: PUT on token/refresh", "PUT", ref, None),
        ("405: POST on profile", "POST", me, al),
        ("405: POST on profile (no credentials)", "POST", me, None),
        ("405: PUT on profile", "PUT", me.rstrip("/"), al),
        ("405: DELETE on posts", "DELETE", posts, al),
        ("405: PUT on chatrooms", "PUT", rooms, al),
        ("405: DELETE on messages", "DELETE", msgs(room1), al),
        ("405: DELETE on messages of an unknown room", "DELETE", msgs(f"nope{s}"), al),
        ("405: POST on user/chatrooms", "POST", myrooms, al),
        ("405: POST on user/chatrooms without trailing slash", "POST", myrooms.rstrip("/"), al),
        ("405: POST on user/chatrooms (no credentials)", "POST", myrooms, None),
    ]:
        S.http(check, method, path, token=token)
    for check, path, token in [
        ("HEAD: users", users, al),
        ("HEAD: users (no credentials)", users, None),
        ("HEAD: token", tok, None),
        ("HEAD: token/refresh", ref, None),
        ("HEAD: profile", me, al),
        ("HEAD: posts", posts.rstrip("/"), al),
        ("HEAD: chatrooms", rooms, al),
        ("HEAD: messages", msgs(room1), al),
        ("HEAD: messages of an unknown room", msgs(f"nope{s}"), al),
        ("HEAD: user/chatrooms", myrooms, al),
        ("HEAD: unknown path", "/nothing/here/", al),
    ]:
        S.http(check, "HEAD", path, token=token)
    for check, path, token in [
        ("OPTIONS: users (no credentials)", users, None),
        ("OPTIONS: users", users, al),
        ("OPTIONS: token", tok, None),
        ("OPTIONS: token/refresh", ref.rstrip("/"), None),
        ("OPTIONS: profile", me, al),
        ("OPTIONS: posts", posts, al),
        ("OPTIONS: chatrooms", rooms, al),
        ("OPTIONS: messages", msgs(room1), al),
        ("OPTIONS: user/chatrooms", myrooms, al),
        ("OPTIONS: unknown path", "/nothing/here/", al),
    ]:
        S.http(check, "OPTIONS", path, token=token, options=True)
    S.http("Accept: text/html only (authenticated)", "GET", users, token=al, headers={"Accept": "text/html"})
    S.http("Accept: text/html only (no credentials)", "GET", users, headers={"Accept": "text/html"})
    S.http("Accept: browser default", "GET", rooms, token=al,
           headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"})
    S.http("Accept: axios default", "GET", rooms, token=al, headers={"Accept": "application/json, text/plain, */*"})
    S.http("Accept: header absent", "GET", rooms, token=al, headers={"Accept": None})

    # ================= malformed bodies, 415 =================
    S.http("malformed JSON", "POST", tok, raw=b'{"username": "a",', ctype="application/json")
    S.http("malformed JSON on a protected endpoint", "POST", posts, token=al, raw=b"{bad", ctype="application/json")
    S.http("malformed JSON on a protected endpoint, no credentials", "POST", posts, raw=b"{bad",
           ctype="application/json")
    S.http("malformed JSON: trailing data", "POST", tok, raw=b"{} x", ctype="application/json")
    S.http("malformed JSON: unterminated string", "POST", users, raw=b'{"username": "ab', ctype="application/json")
    S.http("malformed JSON: single quotes", "POST", users, raw=b"{'username': 'a'}", ctype="application/json")
    S.http("malformed JSON: NaN", "POST", tok, raw=b'{"username": NaN}', ctype="application/json")
    S.http("malformed JSON: invalid UTF-8", "POST", tok, raw=b"\xff{}", ctype="application/json")
    S.http("malformed JSON: trailing comma", "POST", rooms, token=al, raw=b'{"recipient": "x",}',
           ctype="application/json")
    S.http("415 unsupported media type", "POST", tok, raw=b"hello", ctype="text/plain")
    S.http("415 on a protected endpoint", "POST", posts, token=al, raw=b"<a/>", ctype="application/xml")
    S.http("415 on a protected endpoint, no credentials", "POST", posts, raw=b"<a/>", ctype="application/xml")
    S.http("415 for application/vnd.api+json", "POST", tok, raw=b"{}", ctype="application/vnd.api+json")
    S.http("multipart without a boundary", "POST", tok, raw=b"x", ctype="multipart/form-data")

    # ================= unknown paths, Host =================
    for check, method, path, token in [
        ("not found: unknown path", "GET", "/nothing/here/", al),
        ("not found: unknown path, no credentials", "GET", "/nothing", None),
        ("not found: POST to an unknown path", "POST", "/nothing/here/", None),
        ("not found: root", "GET", "/", None),
        ("not found: double trailing slash", "GET", "/accounts/api/users//", al),
        ("not found: extra segment", "GET", "/accounts/api/users/extra/", al),
        ("not found: other case", "GET", "/Accounts/api/users/", al),
        ("not found: prefix only", "GET", "/accounts/api/", al),
        ("not found: post detail", "GET", "/profiles/api/posts/1/", al),
        ("not found: empty room name", "GET", "/messenger/api/chatrooms//messages/", al),
        ("not found: segment after messages", "GET", f"{msgs(room1)}extra/", al),
    ]:
        S.http(check, method, path, token=token)
    S.http("disallowed Host header", "GET", users, headers={"Host": "evil.example"})

    # ================= 10. WebSocket =================
    await websocket_checks(S, access, refresh, name, uid, room1, room_uni, room_plus, ws_path, msgs)

    S.http("chatrooms: list 9 for alice at the end", "GET", myrooms, token=al)
    S.http("chatrooms: list 9 for bob at the end", "GET", myrooms, token=access["bo"])
    S.http("profile: bob at the end", "GET", me, token=access["bo"])


async def websocket_checks(S, access, refresh, name, uid, room1, room_uni, room_plus, ws_path, msgs):
    al, bo = access["al"], access["bo"]
    bearer = {"Authorization": f"Bearer {bo}"}
    s1 = await S.ws_open("ws: alice connects with ?token= (trailing slash)", f"{ws_path(room1)}?token={al}")
    s2 = await S.ws_open("ws: bob connects with an Authorization header (no trailing slash)",
                         ws_path(room1, slash=False), headers=bearer)
    received = []  # (check, data) of broadcast messages seen by alice

    async def both(check):
        text1, data1 = await S.ws_recv(s1)
        text2, data2 = await S.ws_recv(s2)
        S.record(check, f"alice (?token=): {text1}\nbob (header): {text2}")
        if isinstance(data1, dict):
            received.append(data1)

    async def send(ws, frame):
        if ws is None:
            return
        try:
            await ws.send(frame)
        except ConnectionClosed:
            pass

    await send(s1, json.dumps({"message": "Привет!"}, ensure_ascii=False))
    await both("ws: frame from alice reaches both sockets, sender included")
    await send(s2, json.dumps({"message": "  hi alice  "}))
    await both("ws: frame from bob (trimmed) reaches both sockets")
    S.http("ws: message posted by REST while sockets are open", "POST", msgs(room1), token=bo,
           json={"content": "via REST"})
    await both("ws: REST-posted message reaches both sockets")
    for i in range(3):
        await send(s1, json.dumps({"message": f"burst {i}"}))
    for i in range(3):
        await both(f"ws: burst frame {i} arrives in order")

    for check, frame in [
        ("ws: bad frame, not JSON", "hello"),
        ("ws: bad frame, empty text", ""),
        ("ws: bad frame, JSON without message", json.dumps({"text": "x"})),
        ("ws: bad frame, JSON list", json.dumps(["message"])),
        ("ws: bad frame, JSON string", json.dumps("message")),
        ("ws: bad frame, blank message", json.dumps({"message": "   "})),
        ("ws: bad frame, empty message", json.dumps({"message": ""})),
        ("ws: bad frame, null message", json.dumps({"message": None})),
        ("ws: bad frame, boolean message", json.dumps({"message": True})),
        ("ws: bad frame, object message", json.dumps({"message": {"a": 1}})),
        ("ws: bad frame, 4001 characters", json.dumps({"message": "x" * 4001})),
        ("ws: bad frame, binary non-UTF-8", b"\x80abc"),
    ]:
        await send(s1, frame)
        text, _ = await S.ws_recv(s1)
        S.record(check, text)
    text, _ = await S.ws_recv(s2, timeout=S.quiet)
    S.record("ws: bad-frame answers went to the sender only", text)

    await send(s1, json.dumps({"message": "bin"}).encode())
    await both("ws: binary frame holding JSON is accepted")
    await send(s1, json.dumps({"message": 7}))
    await both("ws: number as message is stored as text")
    await send(s2, json.dumps({"message": "x" * 4000, "extra": True}))
    await both("ws: 4000 characters and an extra key are accepted")
    await send(s1, json.dumps({"message": "still open"}))
    await both("ws: socket still open after the bad frames")

    r = S.http("ws: history after the WebSocket traffic", "GET", msgs(room1), token=al)
    history = {m.get("id"): m for m in r.data} if isinstance(r.data, list) and all(
        isinstance(m, dict) for m in r.data) else {}
    S.note("ws: every broadcast equals its REST history entry",
           {"all equal": bool(received) and all(history.get(m.get("id")) == m for m in received),
            "broadcasts": len(received)})
    for ws in (s1, s2):
        if ws is not None:
            await ws.close()

    # Other ways in.
    ws = await S.ws_open("ws: non-ASCII room name, percent-encoded path", f"{ws_path(room_uni)}?token={access['emile']}")
    if ws is not None:
        await ws.send(json.dumps({"message": "é"}))
        text, _ = await S.ws_recv(ws)
        S.record("ws: frame in the non-ASCII room", text)
        await ws.close()
    ws = await S.ws_open("ws: room name with a literal + in the path", f"{ws_path(room_plus)}?token={access['plus']}")
    if ws is not None:
        await ws.close()
    ws = await S.ws_open("ws: browser-style Origin header from another site is accepted",
                         f"{ws_path(room1)}?token={al}", headers={"Origin": "https://app.example"})
    if ws is not None:
        await ws.close()
    ws = await S.ws_open("ws: empty ?token= falls back to the Authorization header", f"{ws_path(room1)}?token=",
                         headers=bearer)
    if ws is not None:
        await ws.close()

    # Refused handshakes.
    now = int(time.time())
    who = str(uid.get("al"))
    for check, path, headers in [
        ("ws: no token", ws_path(room1), None),
        ("ws: Authorization with another scheme (Token abc)", ws_path(room1), {"Authorization": "Token abc"}),
        ("ws: Authorization Bearer with two values", ws_path(room1), {"Authorization": "Bearer a b"}),
        ("ws: garbage ?token=", f"{ws_path(room1)}?token=garbage", None),
        ("ws: garbage ?token= wins over a good Authorization header", f"{ws_path(room1)}?token=garbage", bearer),
        ("ws: refresh token as ?token=", f"{ws_path(room1)}?token={refresh['al']}", None),
        ("ws: expired ?token=", f"{ws_path(room1)}?token={S.craft(user_id=who, exp=now - 10, iat=now - 310)}", None),
        ("ws: alg none ?token=", f"{ws_path(room1)}?token={S.craft(user_id=who, alg='none')}", None),
        ("ws: ?token= of a user that does not exist", f"{ws_path(room1)}?token={S.craft(user_id='987654321')}", None),
        ("ws: unknown room", f"{ws_path('no_such_room_' + S.s)}?token={al}", None),
        ("ws: unknown room without a token (401 first)", ws_path("no_such_room_" + S.s), None),
        ("ws: room of other users", f"{ws_path(room1)}?token={access['ca']}", None),
        ("ws: unknown WebSocket path", f"/messenger/ws/nothing/?token={al}", None),
        ("ws: unknown WebSocket path without a token", "/messenger/ws/nothing/", None),
        ("ws: REST path used for a WebSocket", f"{msgs(room1)}?token={al}", None),
    ]:
        ws = await S.ws_open(check, path, headers=headers)
        if ws is not None:
            await ws.close()


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------
def reachable(server: Server) -> str | None:
    resp = server.request("GET", "/accounts/api/users/", {"Accept": "application/json"}, None)
    return resp.error


def known_reason(check: str) -> str | None:
    for pattern, reason in KNOWN_DIFFERENCES.items():
        if fnmatch.fnmatchcase(check, pattern):
            return reason
    return None


async def run(label, base, args, suffix) -> Session:
    session = Session(label, Server(base, args.timeout), args, suffix)
    try:
        await scenario(session)
    except Exception as exc:  # record and stop: the rest of the checks show up as missing
        import traceback

        traceback.print_exc(file=sys.stderr)
        session.record(f"<scenario aborted on {label}>", f"{type(exc).__name__}: {exc}")
    return session


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="base URL of server A (e.g. the Django reference)")
    ap.add_argument("--b", help="base URL of server B (e.g. Agora)")
    ap.add_argument("--only-a", action="store_true", help="only print server A's normalised answers")
    ap.add_argument("--secret", default="peer-django-insecure-fixed-secret-key-for-side-by-side-runs",
                    help="HS256 key of both servers (crafted tokens, signature checks)")
    ap.add_argument("--access-lifetime", type=int, default=300, help="expected exp-iat of access tokens")
    ap.add_argument("--refresh-lifetime", type=int, default=86400, help="expected exp-iat of refresh tokens")
    ap.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    ap.add_argument("--ws-quiet", type=float, default=1.0,
                    help="seconds to wait before deciding that a socket received nothing")
    ap.add_argument("--suffix", help="username suffix (default: random; must be new on both servers)")
    args = ap.parse_args()
    if not args.only_a and not args.b:
        ap.error("--b is required unless --only-a is given")
    if args.b and args.a.rstrip("/") == args.b.rstrip("/"):
        ap.error("--a and --b must be two different servers (the scenario registers the same users on both)")
    suffix = args.suffix or secrets.token_hex(3)
    if not re.fullmatch(r"[0-9a-z]{3,12}", suffix):
        ap.error("--suffix: 3-12 lowercase letters or digits")

    targets = [("A", args.a)] + ([] if args.only_a else [("B", args.b)])
    for label, base in targets:
        error = reachable(Server(base, args.timeout))
        if error:
            print(f"server {label} ({base}) does not answer: {error}", file=sys.stderr)
            return 2
    print(f"# A = {args.a}" + ("" if args.only_a else f"   B = {args.b}") + f"   run suffix = {suffix}")

    a = asyncio.run(run("A", args.a, args, suffix))
    if args.only_a:
        for check, text in a.results:
            print(f"=== {check}\n{text}\n")
        print(f"{len(a.results)} checks")
        return 0
    b = asyncio.run(run("B", args.b, args, suffix))

    ra, rb = dict(a.results), dict(b.results)
    order = [c for c, _ in a.results] + [c for c, _ in b.results if c not in ra]
    same = diff = known = 0
    for check in order:
        ta = ra.get(check, "<check missing: the scenario stopped before it>")
        tb = rb.get(check, "<check missing: the scenario stopped before it>")
        if ta == tb:
            same += 1
            print(f"SAME {check}")
            continue
        reason = known_reason(check)
        if reason:
            known += 1
            print(f"KNOWN {check}  [{reason}]")
        else:
            diff += 1
            print(f"DIFF {check}")
        for line in difflib.unified_diff(ta.splitlines(), tb.splitlines(), "A", "B", lineterm=""):
            print(f"    {line}")
    if 429 in b.statuses or 429 in a.statuses:
        print("# note: a server answered 429 (throttled); run it with throttling off "
              "(Agora: AGORA_AUTH_RATE_PER_MINUTE=0)")
    print(f"{same} same, {diff} different" + (f" ({known} known differences)" if known else ""))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Generate the Bruno and Postman collections of Steward from one description.

    python3 http-collections/generate.py

writes http-collections/bruno/** and http-collections/postman/*.json.  Both
collections cover the same requests; only the object-name prefix differs
(`bru-` for Bruno, `pm-` for Postman) so that both can run against one server.

The checks of every request are written once, in a small neutral JavaScript
dialect that both tools understand after a tool-specific preamble:

    S          the response status (number)
    B          the response body: parsed JSON, or the raw text ("" when empty)
    H(name)    a response header (undefined when absent)
    setv(k, v) set a run variable, used later as {{k}}
    test(name, fn), expect(...)   chai, as in both tools
    getv(k)    read a run variable

A request uses the collection's Basic credentials ({{user}} / {{password}})
unless it gives `auth=NOAUTH` (no Authorization header) or
`auth=(user, password)` (request-level Basic auth in both tools).

The generated files are committed; edit this file and re-run it rather than
editing the generated files by hand.
"""

import json
import os
import re
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------
# Request description helpers


class Req:
    def __init__(self, name, method, path, body=None, text=None, headers=None,
                 status=None, checks=(), pre=(), var_body=None, auth=None):
        self.name = name
        self.method = method
        self.path = path
        self.body = body          # JSON value sent as application/json
        self.text = text          # raw text sent as text/plain (server parses it as JSON)
        self.var_body = var_body  # name of a run variable holding the raw body
        self.headers = dict(headers or {})
        self.status = status      # int, or list of acceptable ints
        self.checks = list(checks)
        self.pre = list(pre)
        # None: the collection's Basic credentials ({{user}} / {{password}});
        # NOAUTH: no Authorization header; (user, password): these instead.
        self.auth = auth


NOAUTH = "none"


def js(v):
    """A JavaScript literal for a JSON value."""
    return json.dumps(v, ensure_ascii=False)


def t(name, expr):
    return f"test({js(name)}, function () {{ {expr}; }});"


def body_is(obj):
    return t("body is exactly the expected object", f"expect(B).to.deep.equal({js(obj)})")


def field(key, value):
    return t(f"{key} is {json.dumps(value)}", f"expect(B[{js(key)}]).to.deep.equal({js(value)})")


def absent(*keys):
    return [t(f"{k} is absent", f"expect(B).to.be.an('object').that.not.has.property({js(k)})") for k in keys]


def is_null(key):
    return t(f"{key} is null", f"expect(B).to.have.property({js(key)}); expect(B[{js(key)}]).to.equal(null)")


def has_error():
    return t("body is {error: string}", "expect(B).to.be.an('object'); expect(B.error).to.be.a('string').and.not.empty")


def error_is(msg):
    return t("error is exact", f"expect(B).to.deep.equal({js({'error': msg})})")


def error_starts(prefix):
    return t(f"error starts with {prefix}", f"expect(B.error).to.be.a('string'); expect(B.error.startsWith({js(prefix)})).to.equal(true)")


def error_contains(s):
    return t(f"error names {s}", f"expect(B.error).to.be.a('string').that.includes({js(s)})")


def empty_body():
    return t("body is empty", "expect(B).to.equal('')")


def etag_present():
    return t("ETag header is a quoted string", "expect(H('etag')).to.be.a('string').that.matches(/^(W\\/)?\"[^\"]*\"$/)")


def save_etag(var="etag"):
    return t(f"remember ETag as {var}", f"expect(H('etag')).to.be.a('string'); setv({js(var)}, H('etag'))")


def etag_changed(var="etag"):
    return t(f"ETag differs from {var}", f"expect(H('etag')).to.be.a('string').that.not.equals(getv({js(var)}))")


def etag_same(var="etag"):
    return t(f"ETag equals {var}", f"expect(H('etag')).to.equal(getv({js(var)}))")


def location(path):
    return t(f"Location is {path}", f"expect(H('location')).to.equal({js(path)})")


def names(lst):
    return t("object names in order", f"expect(B.objects.map(function (o) {{ return o.object_name; }})).to.deep.equal({js(lst)})")


def json_ct():
    return t("Content-Type is application/json", "expect(H('content-type')).to.match(/^application\\/json/)")


def status_any(codes):
    return codes


# --------------------------------------------------------------------------
# The requests


def cleanup(kind, name):
    return Req(f"cleanup {kind} {name} if left over", "DELETE", f"/director/{kind}?name={name}",
               status=[200, 404], checks=[])


def scenario():
    b1 = {"object_name": "apitest", "object_type": "object", "address": "127.0.0.1",
          "vars": {"location": "Berlin"}}
    b4 = {"address": "127.0.0.2", "vars.event": "Icinga CAMP"}
    b6 = {"address": "127.0.0.2", "vars": {"event": ["Icinga", "Camp"]}}
    b7 = {"vars": {"event": ["Icinga", "Camp"]}}
    o4 = {"object_name": "apitest", "object_type": "object", "address": "127.0.0.2",
          "vars": {"location": "Berlin", "event": "Icinga CAMP"}}
    o6 = {"object_name": "apitest", "object_type": "object", "address": "127.0.0.2",
          "vars": {"event": ["Icinga", "Camp"]}}
    o7 = {"object_name": "apitest", "object_type": "object", "vars": {"event": ["Icinga", "Camp"]}}
    o9 = {"object_name": "apitest", "object_type": "object"}
    u = "/director/host?name=apitest"
    return [
        Req("01 create apitest", "POST", "/director/host", body=b1, status=201,
            checks=[body_is(b1), location(u), json_ct(), etag_present()]),
        Req("02 create again", "POST", "/director/host", body=b1, status=422,
            checks=[error_is('Trying to recreate host "apitest"')]),
        Req("03 same body by name", "POST", u, body=b1, status=304, checks=[empty_body()]),
        Req("04 change address, set vars.event", "POST", u, body=b4, status=200, checks=[body_is(o4)]),
        Req("05 the same again", "POST", u, body=b4, status=304, checks=[empty_body()]),
        Req("06 replace vars", "POST", u, body=b6, status=200, checks=[body_is(o6)]),
        Req("07 PUT vars only", "PUT", u, body=b7, status=200, checks=[body_is(o7)]),
        Req("08 the same again", "PUT", u, body=b7, status=304, checks=[empty_body()]),
        Req("09 PUT empty object", "PUT", u, body={}, status=200, checks=[body_is(o9)]),
        Req("10 KILL", "KILL", u, status=400, checks=[error_is("Unsupported method KILL")]),
        Req("11 DELETE", "DELETE", u, status=200, checks=[body_is(o9)]),
        Req("12 GET after delete", "GET", u, status=404, checks=[has_error()]),
    ]


def hosts(P):
    h1, h1r, h2, missing = f"{P}hosts-h1", f"{P}hosts-h1-renamed", f"{P}hosts-h2", f"{P}hosts-missing"
    h3, h3r = f"{P}hosts-h3", f"{P}hosts-h3-renamed"
    u3, u3r = f"/director/host?name={h3}", f"/director/host?name={h3r}"
    u1, u1r, u2 = f"/director/host?name={h1}", f"/director/host?name={h1r}", f"/director/host?name={h2}"
    create = {"object_name": h1, "object_type": "object", "address": "127.0.2.10",
              "display_name": "Host One", "groups": ["web", "db"], "vars": {"os": "linux"},
              "has_agent": True, "agent_port": 7447}
    mp = {"Content-Type": "application/merge-patch+json"}
    jp = {"Content-Type": "application/json-patch+json"}
    return [
        cleanup("host", h1), cleanup("host", h1r), cleanup("host", h2), cleanup("host", h3), cleanup("host", h3r),
        Req("create h1", "POST", "/director/host", body=create, status=201,
            checks=[body_is(create), location(u1), etag_present(), save_etag()]),
        Req("create h1 again", "POST", "/director/host", body=create, status=422,
            checks=[error_is(f'Trying to recreate host "{h1}"')]),
        Req("GET h1", "GET", u1, status=200, checks=[body_is(create), etag_same()]),
        Req("GET h1 If-None-Match current ETag", "GET", u1, headers={"If-None-Match": "{{etag}}"},
            status=304, checks=[empty_body()]),
        Req("GET h1 If-None-Match other ETag", "GET", u1, headers={"If-None-Match": '"something-else"'},
            status=200, checks=[field("object_name", h1)]),
        Req("HEAD h1", "HEAD", u1, status=200, checks=[etag_present()]),
        Req("POST the created body by name", "POST", u1, body=create, status=304, checks=[empty_body()]),
        Req("POST normalised equal values (y, numeric string, null, empty)", "POST", u1,
            body={"has_agent": "y", "agent_port": "7447", "address6": None, "notes": "", "disabled": "n",
                  "imports": [], "vars.nonexistent": None, "groups": ["web", "db", "web"]},
            status=304, checks=[empty_body()]),
        Req("POST vars.role sets one variable", "POST", u1, body={"vars.role": "frontend"}, status=200,
            checks=[field("vars", {"os": "linux", "role": "frontend"}), field("address", "127.0.2.10"),
                    etag_present(), etag_changed(), save_etag()]),
        Req("POST vars.os null removes it", "POST", u1, body={"vars.os": None}, status=200,
            checks=[field("vars", {"role": "frontend"}), save_etag()]),
        Req("POST vars and vars.x: vars first", "POST", u1,
            body={"vars": {"a": "1", "e": ""}, "vars.b": "2"}, status=200,
            checks=[field("vars", {"a": "1", "b": "2", "e": ""}), save_etag()]),
        Req("POST If-Match wrong gives 412", "POST", u1, headers={"If-Match": '"wrong"'},
            body={"address": "127.0.2.11"}, status=412, checks=[has_error()]),
        Req("POST If-Match wrong on unchanged body still 412", "POST", u1, headers={"If-Match": '"wrong"'},
            body={"vars.b": "2"}, status=412, checks=[has_error()]),
        Req("POST If-Match current ETag", "POST", u1, headers={"If-Match": "{{etag}}"},
            body={"address": "127.0.2.11", "display_name": ""}, status=200,
            checks=[field("address", "127.0.2.11"), *absent("display_name"), etag_changed(), save_etag()]),
        Req("GET h1 withNull", "GET", u1 + "&withNull=1", status=200,
            checks=[field("object_name", h1), field("address", "127.0.2.11"), is_null("address6"),
                    is_null("display_name"), is_null("disabled"), is_null("zone"),
                    field("imports", []), field("scripts", []), field("groups", ["web", "db"]),
                    field("has_agent", True), field("agent_port", 7447), etag_same()]),
        Req("GET h1 properties=address,vars", "GET", u1 + "&properties=address,vars", status=200,
            checks=[body_is({"address": "127.0.2.11", "vars": {"a": "1", "b": "2", "e": ""}})]),
        Req("GET h1 withNull with an empty value means true", "GET", u1 + "&withNull", status=200,
            checks=[is_null("address6")]),
        Req("GET h1 withNull=y", "GET", u1 + "&withNull=y", status=200, checks=[is_null("address6")]),
        Req("GET h1 withNull=n", "GET", u1 + "&withNull=n", status=200, checks=[*absent("address6", "imports")]),
        Req("HEAD h1 with a query", "HEAD", u1 + "&resolved=1", status=200, checks=[etag_present()]),
        Req("GET h1 resolved", "GET", u1 + "&resolved=1", status=200,
            checks=[field("address", "127.0.2.11"), *absent("imports")]),
        Req("GET h1 bad flag value", "GET", u1 + "&withNull=maybe", status=400, checks=[has_error()]),
        Req("PUT replaces", "PUT", u1, body={"address": "127.0.2.12", "vars": {"a": "b"}}, status=200,
            checks=[body_is({"object_name": h1, "object_type": "object", "address": "127.0.2.12",
                             "vars": {"a": "b"}}), etag_changed(), save_etag()]),
        Req("PUT the same again", "PUT", u1, body={"address": "127.0.2.12", "vars": {"a": "b"}}, status=304,
            checks=[empty_body()]),
        Req("PUT If-Match wrong", "PUT", u1, headers={"If-Match": '"wrong"'}, body={"address": "127.0.2.99"},
            status=412, checks=[has_error()]),
        Req("PATCH merge-patch", "PATCH", u1, headers=mp,
            body={"display_name": "Patched", "vars": {"c": "d"}}, status=200,
            checks=[field("display_name", "Patched"), field("vars", {"a": "b", "c": "d"}),
                    field("address", "127.0.2.12"), etag_changed(), save_etag()]),
        Req("PATCH merge-patch the same again", "PATCH", u1, headers=mp,
            body={"display_name": "Patched", "vars": {"c": "d"}}, status=304, checks=[empty_body()]),
        Req("PATCH merge-patch null removes", "PATCH", u1, headers=mp,
            body={"display_name": None, "vars": {"c": None}}, status=200,
            checks=[*absent("display_name"), field("vars", {"a": "b"}), save_etag()]),
        Req("PATCH json-patch test and replace", "PATCH", u1, headers=jp,
            body=[{"op": "test", "path": "/address", "value": "127.0.2.12"},
                  {"op": "replace", "path": "/address", "value": "127.0.2.13"}], status=200,
            checks=[field("address", "127.0.2.13"), field("vars", {"a": "b"}), save_etag()]),
        Req("PATCH json-patch failed test gives 409", "PATCH", u1, headers=jp,
            body=[{"op": "test", "path": "/address", "value": "127.9.9.9"},
                  {"op": "replace", "path": "/address", "value": "127.10.0.1"}], status=409,
            checks=[has_error()]),
        Req("PATCH json-patch add to unset list (withNull view)", "PATCH", u1, headers=jp,
            body=[{"op": "add", "path": "/groups/-", "value": "x"}], status=200,
            checks=[field("groups", ["x"]), field("address", "127.0.2.13"), save_etag()]),
        Req("PATCH json-patch invalid op gives 422", "PATCH", u1, headers=jp,
            body=[{"op": "bogus", "path": "/address", "value": "x"}], status=422, checks=[has_error()]),
        Req("PATCH other content type gives 415", "PATCH", u1, text='{"address": "127.10.0.1"}',
            headers={"Content-Type": "text/plain"}, status=415, checks=[has_error()]),
        Req("PATCH If-Match wrong gives 412", "PATCH", u1, headers={**mp, "If-Match": '"wrong"'},
            body={"address": "127.10.0.1"}, status=412, checks=[has_error()]),
        Req("GET h1 after the refused writes", "GET", u1, status=200,
            checks=[field("address", "127.0.2.13"), field("groups", ["x"]), etag_same()]),
        Req("POST cannot change object_type", "POST", u1, body={"object_type": "template"}, status=422,
            checks=[has_error()]),
        Req("PUT h2 by name creates", "PUT", u2, body={"address": "127.0.2.20"}, status=201,
            checks=[body_is({"object_name": h2, "object_type": "object", "address": "127.0.2.20"}),
                    etag_present()]),
        Req("PUT without name on existing gives 422", "PUT", "/director/host",
            body={"object_name": h2, "address": "127.0.2.21"}, status=422, checks=[has_error()]),
        Req("PUT If-None-Match * on existing gives 412", "PUT", u2, headers={"If-None-Match": "*"},
            body={"address": "127.0.2.22"}, status=412, checks=[has_error()]),
        Req("rename h1 onto h2 gives 422", "POST", u1, body={"object_name": h2}, status=422,
            checks=[has_error()]),
        Req("rename h1 by POST", "POST", u1, body={"object_name": h1r}, status=200,
            checks=[field("object_name", h1r), field("address", "127.0.2.13"), etag_present()]),
        Req("GET old name gives 404", "GET", u1, status=404, checks=[has_error()]),
        Req("GET new name", "GET", u1r, status=200, checks=[field("object_name", h1r), save_etag()]),
        Req("POST by name on a missing object gives 404", "POST", f"/director/host?name={missing}",
            body={"address": "127.0.2.1"}, status=404, checks=[has_error()]),
        Req("GET missing gives 404", "GET", f"/director/host?name={missing}", status=404, checks=[has_error()]),
        Req("PATCH missing gives 404", "PATCH", f"/director/host?name={missing}", headers=mp,
            body={"address": "127.0.2.1"}, status=404, checks=[has_error()]),
        Req("DELETE missing gives 404", "DELETE", f"/director/host?name={missing}", status=404,
            checks=[has_error()]),
        Req("DELETE If-Match wrong gives 412", "DELETE", u1r, headers={"If-Match": '"wrong"'}, status=412,
            checks=[has_error()]),
        Req("DELETE renamed h1 answers the deleted object", "DELETE", u1r, headers={"If-Match": "{{etag}}"},
            status=200, checks=[body_is({"object_name": h1r, "object_type": "object", "address": "127.0.2.13",
                                         "groups": ["x"], "vars": {"a": "b"}})]),
        Req("DELETE h2", "DELETE", u2, status=200, checks=[field("object_name", h2)]),
        Req("GET h2 after delete", "GET", u2, status=404, checks=[has_error()]),
        Req("PUT If-None-Match * on a missing object creates", "PUT", u2, headers={"If-None-Match": "*"},
            body={"groups": ["b", "a", "b"]}, status=201,
            checks=[body_is({"object_name": h2, "object_type": "object", "groups": ["b", "a"]})]),
        Req("PUT without name creates h3", "PUT", "/director/host", body={"object_name": h3, "address": "127.0.2.30"},
            status=201, checks=[body_is({"object_name": h3, "object_type": "object", "address": "127.0.2.30"}),
                                etag_present()]),
        Req("PUT with another object_name renames", "PUT", u3, body={"object_name": h3r, "address": "127.0.2.31"},
            status=200, checks=[body_is({"object_name": h3r, "object_type": "object", "address": "127.0.2.31"})]),
        Req("GET h3 old name gives 404", "GET", u3, status=404, checks=[has_error()]),
        Req("DELETE renamed h3", "DELETE", u3r, status=200, checks=[field("object_name", h3r)]),
        Req("DELETE h2 again", "DELETE", u2, status=200, checks=[field("groups", ["b", "a"])]),
    ]


def scripts(P):
    s1, s1r, s2, host, host2 = (f"{P}scripts-s1", f"{P}scripts-s1-renamed", f"{P}scripts-s2",
                                f"{P}scripts-host", f"{P}scripts-host2")
    u1, u1r, u2 = f"/director/script?name={s1}", f"/director/script?name={s1r}", f"/director/script?name={s2}"
    create = {"object_name": s1, "object_type": "object", "command": "/usr/local/bin/backup",
              "arguments": ["--full"], "timeout": 60, "description": "Backup"}
    mp = {"Content-Type": "application/merge-patch+json"}
    jp = {"Content-Type": "application/json-patch+json"}
    return [
        cleanup("host", host), cleanup("host", host2),
        cleanup("script", s1), cleanup("script", s1r), cleanup("script", s2),
        Req("create s1", "POST", "/director/script", body=create, status=201,
            checks=[body_is(create), location(u1), etag_present(), save_etag()]),
        Req("create s1 again", "POST", "/director/script", body=create, status=422,
            checks=[error_is(f'Trying to recreate script "{s1}"')]),
        Req("GET s1", "GET", u1, status=200, checks=[body_is(create), etag_same()]),
        Req("GET s1 If-None-Match", "GET", u1, headers={"If-None-Match": "{{etag}}"}, status=304,
            checks=[empty_body()]),
        Req("POST numeric string timeout is unchanged", "POST", u1, body={"timeout": "60"}, status=304,
            checks=[empty_body()]),
        Req("POST vars.owner", "POST", u1, body={"vars.owner": "ops"}, status=200,
            checks=[field("vars", {"owner": "ops"}), field("command", "/usr/local/bin/backup"),
                    etag_changed(), save_etag()]),
        Req("POST If-Match wrong", "POST", u1, headers={"If-Match": '"wrong"'}, body={"timeout": 5},
            status=412, checks=[has_error()]),
        Req("PUT replaces", "PUT", u1, body={"command": "/usr/local/bin/backup", "timeout": 30}, status=200,
            checks=[body_is({"object_name": s1, "object_type": "object", "command": "/usr/local/bin/backup",
                             "timeout": 30}), save_etag()]),
        Req("PUT the same again", "PUT", u1, body={"command": "/usr/local/bin/backup", "timeout": 30},
            status=304, checks=[empty_body()]),
        Req("PATCH merge-patch arguments", "PATCH", u1, headers=mp, body={"arguments": ["--quick"]},
            status=200, checks=[field("arguments", ["--quick"]), field("timeout", 30), save_etag()]),
        Req("PATCH json-patch replace timeout", "PATCH", u1, headers=jp,
            body=[{"op": "test", "path": "/timeout", "value": 30}, {"op": "replace", "path": "/timeout", "value": 45}],
            status=200, checks=[field("timeout", 45), save_etag()]),
        Req("PATCH json-patch failed test gives 409", "PATCH", u1, headers=jp,
            body=[{"op": "test", "path": "/timeout", "value": 1}], status=409, checks=[has_error()]),
        Req("PATCH other content type gives 415", "PATCH", u1, text='{"timeout": 1}',
            headers={"Content-Type": "text/plain"}, status=415, checks=[has_error()]),
        Req("GET s1 withNull", "GET", u1 + "&withNull=1", status=200,
            checks=[field("command", "/usr/local/bin/backup"), field("arguments", ["--quick"]),
                    field("timeout", 45), is_null("description"), is_null("disabled"),
                    field("vars", {}), field("imports", []), etag_same()]),
        Req("GET s1 properties=command,timeout", "GET", u1 + "&properties=command,timeout", status=200,
            checks=[body_is({"command": "/usr/local/bin/backup", "timeout": 45})]),
        Req("relative command gives 422", "POST", "/director/script",
            body={"object_name": s2, "command": "bin/x"}, status=422, checks=[has_error()]),
        Req("command with .. gives 422", "POST", "/director/script",
            body={"object_name": s2, "command": "/usr/bin/../x"}, status=422, checks=[has_error()]),
        Req("command with a space gives 422", "POST", "/director/script",
            body={"object_name": s2, "command": "/usr/bin/my script"}, status=422, checks=[has_error()]),
        Req("script name with a dot gives 422", "POST", "/director/script",
            body={"object_name": f"{s2}.sh", "command": "/bin/true"}, status=422, checks=[has_error()]),
        Req("script name over 64 characters gives 422", "POST", "/director/script",
            body={"object_name": "s" * 65, "command": "/bin/true"}, status=422, checks=[has_error()]),
        Req("timeout not a number gives 422", "POST", "/director/script",
            body={"object_name": s2, "command": "/bin/true", "timeout": "soon"}, status=422, checks=[has_error()]),
        Req("GET s2 was not created", "GET", u2, status=404, checks=[has_error()]),
        Req("host listing s1", "POST", "/director/host", body={"object_name": host, "scripts": [s1]},
            status=201, checks=[field("scripts", [s1])]),
        Req("host listing an unknown script gives 422", "POST", "/director/host",
            body={"object_name": host2, "scripts": [f"{P}scripts-nope"]}, status=422, checks=[has_error()]),
        Req("host2 was not created", "GET", f"/director/host?name={host2}", status=404, checks=[has_error()]),
        Req("DELETE s1 still listed by a host gives 409", "DELETE", u1, status=409,
            checks=[has_error(), error_contains(host)]),
        Req("remember the host ETag", "GET", f"/director/host?name={host}", status=200,
            checks=[save_etag("hostEtag")]),
        Req("rename s1", "POST", u1, body={"object_name": s1r}, status=200,
            checks=[field("object_name", s1r), field("timeout", 45)]),
        Req("host script list follows the rename", "GET", f"/director/host?name={host}", status=200,
            checks=[field("scripts", [s1r]), etag_changed("hostEtag")]),
        Req("host drops its scripts", "POST", f"/director/host?name={host}", body={"scripts": []}, status=200,
            checks=[*absent("scripts")]),
        Req("DELETE renamed s1", "DELETE", u1r, status=200,
            checks=[field("object_name", s1r), field("command", "/usr/local/bin/backup")]),
        Req("GET renamed s1 after delete", "GET", u1r, status=404, checks=[has_error()]),
        Req("PUT s2 by name creates", "PUT", u2, body={"command": "/bin/true"}, status=201,
            checks=[body_is({"object_name": s2, "object_type": "object", "command": "/bin/true"}),
                    etag_present()]),
        Req("DELETE s2", "DELETE", u2, status=200, checks=[field("object_name", s2)]),
        Req("DELETE host", "DELETE", f"/director/host?name={host}", status=200, checks=[field("object_name", host)]),
    ]


def templates(P):
    sb, sw, so, st, sc = (f"{P}tpl-s-base", f"{P}tpl-s-web", f"{P}tpl-s-own", f"{P}tpl-st", f"{P}tpl-s-child")
    base, web, web2, host = f"{P}tpl-base", f"{P}tpl-web", f"{P}tpl-web2", f"{P}tpl-host"
    ta, tb, tc, dia = f"{P}tpl-a", f"{P}tpl-b", f"{P}tpl-c", f"{P}tpl-diamond"
    bad = f"{P}tpl-bad"
    H = lambda n: f"/director/host?name={n}"
    S = lambda n: f"/director/script?name={n}"
    return [
        cleanup("host", host), cleanup("host", dia), cleanup("host", bad),
        cleanup("host", web), cleanup("host", web2), cleanup("host", base),
        cleanup("host", tb), cleanup("host", tc), cleanup("host", ta),
        cleanup("script", sc), cleanup("script", st),
        cleanup("script", sb), cleanup("script", sw), cleanup("script", so),
        Req("script base", "POST", "/director/script", body={"object_name": sb, "command": "/usr/bin/uptime"},
            status=201, checks=[field("object_name", sb)]),
        Req("script web", "POST", "/director/script", body={"object_name": sw, "command": "/usr/bin/curl"},
            status=201, checks=[field("object_name", sw)]),
        Req("script own", "POST", "/director/script", body={"object_name": so, "command": "/usr/bin/id"},
            status=201, checks=[field("object_name", so)]),
        Req("host template base", "POST", "/director/host",
            body={"object_name": base, "object_type": "template", "has_agent": True, "agent_port": 7450,
                  "vars": {"os": "linux", "tier": "base"}, "scripts": [sb], "disabled": True,
                  "groups": ["linux"]},
            status=201, checks=[field("object_type", "template"), field("disabled", True), location(H(base))]),
        Req("host template web imports base", "POST", "/director/host",
            body={"object_name": web, "object_type": "template", "imports": [base],
                  "vars": {"tier": "web", "http": True}, "scripts": [sw]},
            status=201, checks=[field("imports", [base])]),
        Req("host imports web", "POST", "/director/host",
            body={"object_name": host, "object_type": "object", "imports": [web], "address": "127.0.2.30",
                  "vars": {"tier": "host"}, "scripts": [sw, so], "groups": []},
            status=201, checks=[field("imports", [web]), field("vars", {"tier": "host"})]),
        Req("GET template by the object endpoint", "GET", H(web), status=200,
            checks=[field("object_type", "template"), field("object_name", web)]),
        Req("GET host unresolved", "GET", H(host), status=200,
            checks=[body_is({"object_name": host, "object_type": "object", "imports": [web],
                             "address": "127.0.2.30", "vars": {"tier": "host"}, "scripts": [sw, so]})]),
        Req("GET host resolved", "GET", H(host) + "&resolved=1", status=200,
            checks=[*absent("imports", "disabled"), field("object_name", host), field("object_type", "object"),
                    field("vars", {"os": "linux", "tier": "host", "http": True}),
                    field("scripts", [sb, sw, so]), field("has_agent", True), field("agent_port", 7450),
                    field("groups", ["linux"]), field("address", "127.0.2.30"),
                    etag_present(), save_etag("resolvedEtag")]),
        Req("GET host resolved If-None-Match", "GET", H(host) + "&resolved=1",
            headers={"If-None-Match": "{{resolvedEtag}}"}, status=304, checks=[empty_body()]),
        Req("change an ancestor", "POST", H(base), body={"vars.os": "bsd"}, status=200,
            checks=[field("vars", {"os": "bsd", "tier": "base"})]),
        Req("resolved ETag covers the ancestors", "GET", H(host) + "&resolved=1",
            headers={"If-None-Match": "{{resolvedEtag}}"}, status=200,
            checks=[field("vars", {"os": "bsd", "tier": "host", "http": True}), etag_changed("resolvedEtag")]),
        Req("empty strings in imports are ignored", "POST", H(host), body={"imports": [web, ""]}, status=304,
            checks=[empty_body()]),
        Req("unknown template import gives 422", "POST", "/director/host",
            body={"object_name": bad, "imports": [f"{P}tpl-nope"]}, status=422, checks=[has_error()]),
        Req("importing an object (not a template) gives 422", "POST", "/director/host",
            body={"object_name": bad, "imports": [host]}, status=422, checks=[has_error()]),
        Req("importing a script template into a host gives 422", "POST", "/director/host",
            body={"object_name": bad, "imports": [st]}, status=422, checks=[has_error()]),
        Req("import loop gives 422", "POST", H(base), body={"imports": [web]}, status=422, checks=[has_error()]),
        Req("self import gives 422", "POST", H(base), body={"imports": [base]}, status=422, checks=[has_error()]),
        Req("template listing an unknown script gives 422", "POST", H(web),
            body={"scripts": [f"{P}tpl-s-nope"]}, status=422, checks=[has_error()]),
        Req("DELETE template still imported by a template gives 409", "DELETE", H(base), status=409,
            checks=[has_error(), error_contains(web)]),
        Req("DELETE template still imported by a host gives 409", "DELETE", H(web), status=409,
            checks=[has_error(), error_contains(host)]),
        Req("DELETE script still listed by a template gives 409", "DELETE", S(sb), status=409,
            checks=[has_error(), error_contains(base)]),
        Req("rename template web", "POST", H(web), body={"object_name": web2}, status=200,
            checks=[field("object_name", web2), field("object_type", "template")]),
        Req("host imports follow the rename", "GET", H(host), status=200, checks=[field("imports", [web2])]),
        Req("object_type of a template cannot change", "PUT", H(web2), body={"object_type": "object"},
            status=422, checks=[has_error()]),
        # Diamond: host imports [b, c], both import a. Linearised: b, a, c (a keeps its last position).
        Req("template a", "POST", "/director/host",
            body={"object_name": ta, "object_type": "template", "vars": {"x": "a", "y": "a"}}, status=201,
            checks=[field("object_name", ta)]),
        Req("template b imports a", "POST", "/director/host",
            body={"object_name": tb, "object_type": "template", "imports": [ta], "vars": {"x": "b"}},
            status=201, checks=[field("object_name", tb)]),
        Req("template c imports a", "POST", "/director/host",
            body={"object_name": tc, "object_type": "template", "imports": [ta], "display_name": "from c"},
            status=201, checks=[field("object_name", tc)]),
        Req("host imports b and c", "POST", "/director/host",
            body={"object_name": dia, "imports": [tb, tc]}, status=201, checks=[field("imports", [tb, tc])]),
        Req("diamond: a reached twice keeps its last position", "GET", H(dia) + "&resolved=1", status=200,
            checks=[field("vars", {"x": "a", "y": "a"}), field("display_name", "from c"), *absent("imports")]),
        Req("script template", "POST", "/director/script",
            body={"object_name": st, "object_type": "template", "timeout": 10, "description": "from template"},
            status=201, checks=[field("object_type", "template")]),
        Req("script importing the template", "POST", "/director/script",
            body={"object_name": sc, "imports": [st], "command": "/bin/true"}, status=201,
            checks=[field("imports", [st]), *absent("timeout")]),
        Req("script resolved", "GET", S(sc) + "&resolved=1", status=200,
            checks=[field("timeout", 10), field("description", "from template"), field("command", "/bin/true"),
                    *absent("imports")]),
        Req("script importing a host template gives 422", "POST", "/director/script",
            body={"object_name": f"{P}tpl-s-bad", "imports": [base], "command": "/bin/true"}, status=422,
            checks=[has_error()]),
        Req("DELETE script template still imported gives 409", "DELETE", S(st), status=409,
            checks=[has_error(), error_contains(sc)]),
        Req("DELETE diamond host", "DELETE", H(dia), status=200, checks=[field("object_name", dia)]),
        Req("DELETE template b", "DELETE", H(tb), status=200, checks=[field("object_name", tb)]),
        Req("DELETE template c", "DELETE", H(tc), status=200, checks=[field("object_name", tc)]),
        Req("DELETE template a", "DELETE", H(ta), status=200, checks=[field("object_name", ta)]),
        Req("DELETE host", "DELETE", H(host), status=200, checks=[field("object_name", host)]),
        Req("DELETE template web2", "DELETE", H(web2), status=200, checks=[field("object_type", "template")]),
        Req("DELETE template base", "DELETE", H(base), status=200,
            checks=[field("object_name", base), field("scripts", [sb])]),
        Req("DELETE script child", "DELETE", S(sc), status=200, checks=[field("object_name", sc)]),
        Req("DELETE script template", "DELETE", S(st), status=200, checks=[field("object_name", st)]),
        Req("DELETE script base", "DELETE", S(sb), status=200, checks=[field("object_name", sb)]),
        Req("DELETE script web", "DELETE", S(sw), status=200, checks=[field("object_name", sw)]),
        Req("DELETE script own", "DELETE", S(so), status=200, checks=[field("object_name", so)]),
    ]


def lists(P):
    q = f"{P}list-"
    tpl, tpl2 = f"{P}list-tpl", f"{P}list-tpl2"
    a, b, c, z = f"{P}list-a", f"{P}list-b", f"{P}list-c", f"{P}list-Z"
    s1, s2, st = f"{P}list-s1", f"{P}list-s2", f"{P}list-st"
    H = lambda n: f"/director/host?name={n}"
    S = lambda n: f"/director/script?name={n}"
    hl = f"/director/hosts?q={q}"
    return [
        cleanup("host", a), cleanup("host", b), cleanup("host", c), cleanup("host", z),
        cleanup("host", tpl2), cleanup("host", tpl),
        cleanup("script", s1), cleanup("script", s2), cleanup("script", st),
        Req("template tpl", "POST", "/director/host",
            body={"object_name": tpl, "object_type": "template", "has_agent": True, "vars": {"tier": "gold"}},
            status=201, checks=[field("object_name", tpl)]),
        Req("template tpl2 imports tpl", "POST", "/director/host",
            body={"object_name": tpl2, "object_type": "template", "imports": [tpl]},
            status=201, checks=[field("object_name", tpl2)]),
        Req("host c", "POST", "/director/host",
            body={"object_name": c, "imports": [tpl2], "vars": {"env": "prod"}}, status=201,
            checks=[field("object_name", c)]),
        Req("host a", "POST", "/director/host",
            body={"object_name": a, "imports": [tpl], "display_name": f"Alpha Display {P}list", "vars": {"env": "prod"}},
            status=201, checks=[field("object_name", a)]),
        Req("host Z", "POST", "/director/host", body={"object_name": z, "address": "127.0.2.90"}, status=201,
            checks=[field("object_name", z)]),
        Req("host b", "POST", "/director/host",
            body={"object_name": b, "disabled": True, "vars": {"env": "dev"}}, status=201,
            checks=[field("object_name", b)]),
        Req("script s2", "POST", "/director/script", body={"object_name": s2, "command": "/bin/false"},
            status=201, checks=[field("object_name", s2)]),
        Req("script s1", "POST", "/director/script", body={"object_name": s1, "command": "/bin/true"},
            status=201, checks=[field("object_name", s1)]),
        Req("script template st", "POST", "/director/script",
            body={"object_name": st, "object_type": "template", "timeout": 5}, status=201,
            checks=[field("object_name", st)]),
        Req("hosts: objects only, by name in byte order", "GET", hl, status=200,
            checks=[names([z, a, b, c]), t("only objects and no next", "expect(B).to.not.have.property('next')"),
                    json_ct()]),
        Req("HEAD on a list", "HEAD", hl, status=200, checks=[]),
        Req("hosts/templates", "GET", f"/director/hosts/templates?q={q}", status=200,
            checks=[names([tpl, tpl2]), t("all are templates",
                    "B.objects.forEach(function (o) { expect(o.object_type).to.equal('template'); })")]),
        Req("scripts", "GET", f"/director/scripts?q={q}", status=200, checks=[names([s1, s2])]),
        Req("scripts/templates", "GET", f"/director/scripts/templates?q={q}", status=200, checks=[names([st])]),
        Req("q matches the display name, case-insensitive", "GET", f"/director/hosts?q=ALPHA%20DISPLAY%20{P.upper()}LIST", status=200,
            checks=[names([a])]),
        Req("q matches the name, case-insensitive", "GET", f"/director/hosts?q={q.upper()}Z", status=200,
            checks=[names([z])]),
        Req("has_agent=1 matches resolved values", "GET", hl + "&has_agent=1", status=200, checks=[names([a, c])]),
        Req("has_agent=0", "GET", hl + "&has_agent=0", status=200, checks=[names([z, b])]),
        Req("disabled=1", "GET", hl + "&disabled=1", status=200, checks=[names([b])]),
        Req("imports=tpl anywhere in the chain", "GET", hl + f"&imports={tpl}", status=200, checks=[names([a, c])]),
        Req("imports=tpl2", "GET", hl + f"&imports={tpl2}", status=200, checks=[names([c])]),
        Req("vars.env=prod", "GET", hl + "&vars.env=prod", status=200, checks=[names([a, c])]),
        Req("vars.tier=gold matches resolved vars", "GET", hl + "&vars.tier=gold", status=200,
            checks=[names([a, c])]),
        Req("filters combine", "GET", hl + "&vars.env=prod&imports=" + tpl2, status=200, checks=[names([c])]),
        Req("count=1 adds total", "GET", hl + "&count=1", status=200,
            checks=[names([z, a, b, c]), field("total", 4)]),
        Req("limit=2 first page", "GET", hl + "&limit=2&count=1", status=200,
            checks=[names([z, a]), field("total", 4),
                    t("next is a cursor", "expect(B.next).to.be.a('string').and.not.empty; setv('next', encodeURIComponent(B.next))")]),
        Req("limit=2 second page is the last", "GET", hl + "&limit=2&cursor={{next}}", status=200,
            checks=[names([b, c]), t("no next on the last page", "expect(B).to.not.have.property('next')")]),
        Req("limit=3 then limit=3 with the cursor", "GET", hl + "&limit=3", status=200,
            checks=[names([z, a, b]),
                    t("next is a cursor", "expect(B.next).to.be.a('string'); setv('next3', encodeURIComponent(B.next))")]),
        Req("cursor page 2 of 2", "GET", hl + "&limit=3&cursor={{next3}}", status=200,
            checks=[names([c]), t("no next on the last page", "expect(B).to.not.have.property('next')")]),
        Req("resolved list", "GET", f"/director/hosts?q={a}&resolved=1", status=200,
            checks=[names([a]), t("resolved element", "var o = B.objects[0]; expect(o).to.not.have.property('imports'); "
                                  "expect(o.vars).to.deep.equal({env: 'prod', tier: 'gold'}); expect(o.has_agent).to.equal(true)")]),
        Req("withNull list", "GET", f"/director/hosts?q={b}&withNull=1", status=200,
            checks=[names([b]), t("nulls shown", "var o = B.objects[0]; expect(o).to.have.property('address6'); "
                                  "expect(o.address6).to.equal(null); expect(o.imports).to.deep.equal([])")]),
        Req("properties on a list", "GET", hl + "&properties=object_name", status=200,
            checks=[t("only object_name", "expect(B.objects).to.deep.equal(" +
                      js([{"object_name": n} for n in (z, a, b, c)]) + ")")]),
        Req("unknown parameters are ignored", "GET", hl + "&showStacktrace=1&withServices=1", status=200,
            checks=[names([z, a, b, c])]),
        Req("limit=-1 gives 400", "GET", hl + "&limit=-1", status=400, checks=[has_error()]),
        Req("limit=0 gives 400", "GET", hl + "&limit=0", status=400, checks=[has_error()]),
        Req("limit=1001 gives 400", "GET", hl + "&limit=1001", status=400, checks=[has_error()]),
        Req("limit=abc gives 400", "GET", hl + "&limit=abc", status=400, checks=[has_error()]),
        Req("cursor=garbage with limit gives 400", "GET", hl + "&limit=2&cursor=garbage", status=400,
            checks=[has_error()]),
        Req("cursor without limit gives the rest of the list", "GET", hl + "&cursor={{next}}", status=200,
            checks=[names([b, c]), t("no next without limit", "expect(B).to.not.have.property('next')")]),
        Req("count=maybe gives 400", "GET", hl + "&count=maybe", status=400, checks=[has_error()]),
        Req("has_agent=maybe gives 400", "GET", hl + "&has_agent=maybe", status=400, checks=[has_error()]),
        Req("POST on a list gives 405 with Allow", "POST", "/director/hosts", body={"object_name": f"{P}list-x"},
            status=405, checks=[has_error(), t("Allow names GET", "expect(H('allow')).to.be.a('string').that.includes('GET')")]),
        Req("DELETE host a", "DELETE", H(a), status=200, checks=[field("object_name", a)]),
        Req("DELETE host b", "DELETE", H(b), status=200, checks=[field("object_name", b)]),
        Req("DELETE host c", "DELETE", H(c), status=200, checks=[field("object_name", c)]),
        Req("DELETE host Z", "DELETE", H(z), status=200, checks=[field("object_name", z)]),
        Req("DELETE template tpl2", "DELETE", H(tpl2), status=200, checks=[field("object_name", tpl2)]),
        Req("DELETE template tpl", "DELETE", H(tpl), status=200, checks=[field("object_name", tpl)]),
        Req("DELETE script s1", "DELETE", S(s1), status=200, checks=[field("object_name", s1)]),
        Req("DELETE script s2", "DELETE", S(s2), status=200, checks=[field("object_name", s2)]),
        Req("DELETE script template st", "DELETE", S(st), status=200, checks=[field("object_name", st)]),
        Req("lists are empty again", "GET", hl + "&count=1", status=200, checks=[names([]), field("total", 0)]),
    ]


def errors(P):
    ok, x, nul = f"{P}err-ok", f"{P}err-x", f"{P}err-null"
    Hx = f"/director/host?name={x}"
    deep = 5000
    return [
        cleanup("host", ok), cleanup("host", x), cleanup("host", nul),
        Req("fixture host", "POST", "/director/host", body={"object_name": ok}, status=201,
            checks=[field("object_name", ok)]),
        Req("truncated JSON gives 400 Invalid JSON", "POST", "/director/host",
            text='{"object_name": "' + x + '",', status=400, checks=[error_starts("Invalid JSON")]),
        Req("not JSON at all gives 400 Invalid JSON", "POST", "/director/host", text="object_name=" + x,
            status=400, checks=[error_starts("Invalid JSON")]),
        Req("JSON array body gives 400", "POST", "/director/host", body=[{"object_name": x}], status=400,
            checks=[has_error()]),
        Req("JSON string body gives 400", "POST", "/director/host", text='"' + x + '"', status=400,
            checks=[has_error()]),
        Req("duplicate keys give 400", "POST", "/director/host",
            text='{"object_name": "' + x + '", "object_name": "' + x + '-2"}', status=400, checks=[has_error()]),
        Req("JSON nested thousands deep gives 4xx", "POST", "/director/host", var_body="deepBody",
            pre=[f"setv('deepBody', '{{\"object_name\": \"{x}\", \"vars\": {{\"a\": ' + '['.repeat({deep}) + ']'.repeat({deep}) + '}}}}')"],
            status=list(range(400, 500)), checks=[has_error()]),
        Req("body over 1 MiB gives 413", "POST", "/director/host", var_body="bigBody",
            pre=[f"setv('bigBody', JSON.stringify({{object_name: {js(x)}, vars: {{big: 'x'.repeat(1100000)}}}}))"],
            status=413, checks=[has_error()]),
        Req("unknown key gives 422", "POST", "/director/host", body={"object_name": x, "foo": 1}, status=422,
            checks=[error_is('Trying to set invalid key "foo"')]),
        Req("unknown key on update gives 422", "POST", f"/director/host?name={ok}", body={"foo": "bar"},
            status=422, checks=[error_is('Trying to set invalid key "foo"')]),
        Req("unknown key with null value is ignored", "POST", "/director/host",
            body={"object_name": nul, "foo": None, "address": "127.0.2.50"}, status=201,
            checks=[body_is({"object_name": nul, "object_type": "object", "address": "127.0.2.50"})]),
        Req("Director extras are stored", "POST", f"/director/host?name={nul}",
            body={"check_command": "hostalive", "zone": "master", "max_check_attempts": "3"}, status=200,
            checks=[field("check_command", "hostalive"), field("zone", "master"), field("max_check_attempts", 3)]),
        Req("Director extras unchanged give 304", "POST", f"/director/host?name={nul}",
            body={"check_command": "hostalive", "max_check_attempts": 3}, status=304, checks=[empty_body()]),
        Req("Director's other host properties are stored, intervals as parseInterval reads them", "POST",
            f"/director/host?name={nul}",
            body={"action_url": "http://127.0.0.1/act", "custom_endpoint_name": f"{nul}-endpoint",
                  "template_choice": "linux", "uuid": "2a1c2b94-4d51-4c3a-9d40-2f1fcd1b7a11",
                  "check_interval": "1m 30s", "retry_interval": "1h 5m"}, status=200,
            checks=[field("action_url", "http://127.0.0.1/act"), field("custom_endpoint_name", f"{nul}-endpoint"),
                    field("template_choice", "linux"), field("check_interval", 90), field("retry_interval", 3900)]),
        Req("the interval in seconds is the same value: 304", "POST", f"/director/host?name={nul}",
            body={"check_interval": 90, "action_url": "http://127.0.0.1/act"}, status=304, checks=[empty_body()]),
        Req("an interval Director refuses gives 422", "POST", f"/director/host?name={nul}",
            body={"check_interval": "1m30s"}, status=422, checks=[has_error()]),
        Req("api_key gives 422 naming the key endpoint", "POST", f"/director/host?name={nul}",
            body={"api_key": "0123456789abcdef"}, status=422,
            checks=[error_contains("/director/host/api-key"),
                    t("the value is not echoed", "expect(JSON.stringify(B)).to.not.include('0123456789abcdef')")]),
        Req("a number no 64-bit integer holds gives 422", "POST", f"/director/host?name={nul}",
            text='{"vars.big": 123456789012345678901234567890}', status=422,
            checks=[error_contains("cannot be kept exactly")]),
        Req("a 64-bit integer is accepted", "POST", f"/director/host?name={nul}",
            text='{"vars.big": 12345678901234567890}', status=200, checks=[field("object_name", nul)]),
        Req("DELETE null fixture", "DELETE", f"/director/host?name={nul}", status=200,
            checks=[field("object_name", nul)]),
        Req("agent_port 70000 gives 422", "POST", "/director/host", body={"object_name": x, "agent_port": 70000},
            status=422, checks=[has_error()]),
        Req("agent_port 0 gives 422", "POST", "/director/host", body={"object_name": x, "agent_port": 0},
            status=422, checks=[has_error()]),
        Req("agent_port not a number gives 422", "POST", "/director/host",
            body={"object_name": x, "agent_port": "seven"}, status=422, checks=[has_error()]),
        Req("has_agent not a boolean gives 422", "POST", "/director/host",
            body={"object_name": x, "has_agent": "maybe"}, status=422, checks=[has_error()]),
        Req("vars not an object gives 422", "POST", "/director/host", body={"object_name": x, "vars": "x"},
            status=422, checks=[has_error()]),
        Req("groups not a list gives 422", "POST", "/director/host", body={"object_name": x, "groups": 5},
            status=422, checks=[has_error()]),
        Req("unknown object_type gives 422", "POST", "/director/host",
            body={"object_name": x, "object_type": "bogus"}, status=422, checks=[has_error()]),
        Req("missing object_name gives 422", "POST", "/director/host", body={"address": "127.0.2.1"},
            status=422, checks=[has_error()]),
        Req("host name with a space gives 422", "POST", "/director/host", body={"object_name": f"{P}err x"},
            status=422, checks=[has_error()]),
        Req("host name with a slash gives 422", "POST", "/director/host", body={"object_name": f"{P}err/x"},
            status=422, checks=[has_error()]),
        Req("host name with a control character gives 422", "POST", "/director/host",
            body={"object_name": f"{P}err\u0001x"}, status=422, checks=[has_error()]),
        Req("host name over 255 characters gives 422", "POST", "/director/host", body={"object_name": "h" * 256},
            status=422, checks=[has_error()]),
        Req("empty host name gives 422", "POST", "/director/host", body={"object_name": ""},
            status=422, checks=[has_error()]),
        Req("nothing was created", "GET", Hx, status=404, checks=[has_error()]),
        Req("Accept text/html gives 406", "GET", f"/director/host?name={ok}", headers={"Accept": "text/html"},
            status=406, checks=[has_error()]),
        Req("Accept list containing JSON", "GET", f"/director/host?name={ok}",
            headers={"Accept": "text/html, application/json;q=0.9"}, status=200, checks=[field("object_name", ok)]),
        Req("Accept application/*", "GET", f"/director/host?name={ok}", headers={"Accept": "application/*"},
            status=200, checks=[field("object_name", ok)]),
        Req("Accept */*", "GET", f"/director/host?name={ok}", headers={"Accept": "*/*"},
            status=200, checks=[field("object_name", ok)]),
        Req("Accept application/json with parameters", "GET", f"/director/host?name={ok}",
            headers={"Accept": "application/json; charset=utf-8"}, status=200, checks=[field("object_name", ok)]),
        Req("Accept application/json;q=0 still gets JSON", "GET", f"/director/host?name={ok}",
            headers={"Accept": "application/json;q=0"}, status=200, checks=[field("object_name", ok), json_ct()]),
        Req("bad flag value on one object gives 400", "GET", f"/director/host?name={ok}&resolved=maybe",
            status=400, checks=[has_error()]),
        Req("cross-site request gives 403", "GET", f"/director/host?name={ok}",
            headers={"Sec-Fetch-Site": "cross-site"}, status=403, checks=[has_error()]),
        Req("foreign Origin gives 403", "POST", f"/director/host?name={ok}",
            headers={"Origin": "http://evil.example"}, body={"address": "127.0.2.66"}, status=403,
            checks=[has_error()]),
        Req("the refused write changed nothing", "GET", f"/director/host?name={ok}", status=200,
            checks=[*absent("address")]),
        Req("KILL on an object gives 400", "KILL", f"/director/host?name={ok}", status=400,
            checks=[error_is("Unsupported method KILL")]),
        Req("POST with X-HTTP-Method-Override KILL gives 400", "POST", f"/director/host?name={ok}",
            headers={"X-HTTP-Method-Override": "KILL"}, body={"address": "127.0.2.67"}, status=400,
            checks=[error_is("Unsupported method KILL")]),
        Req("POST with X-HTTP-Method-Override DELETE deletes", "POST", f"/director/host?name={ok}",
            headers={"X-HTTP-Method-Override": "DELETE"}, status=200,
            checks=[body_is({"object_name": ok, "object_type": "object"})]),
        Req("fixture is gone", "GET", f"/director/host?name={ok}", status=404, checks=[has_error()]),
    ]


def health(P):
    rid = f"{P}health-request-1"
    return [
        Req("GET /health", "GET", "/health", status=200, checks=[json_ct()]),
        Req("GET /ready", "GET", "/ready", status=200, checks=[json_ct()]),
        Req("HEAD /health", "HEAD", "/health", status=200, checks=[]),
        Req("X-Request-Id is echoed", "GET", "/health", headers={"X-Request-Id": rid}, status=200,
            checks=[t("X-Request-Id echoed", f"expect(H('x-request-id')).to.equal({js(rid)})")]),
        Req("X-Request-Id is generated", "GET", "/ready", status=200,
            checks=[t("X-Request-Id present", "expect(H('x-request-id')).to.be.a('string').and.not.empty")]),
        Req("X-Request-Id on an error", "GET", f"/director/host?name={P}health-missing", status=404,
            checks=[has_error(), t("X-Request-Id present", "expect(H('x-request-id')).to.be.a('string').and.not.empty")]),
        Req("/metrics answers a scraper asking for text/plain", "GET", "/metrics",
            headers={"Accept": "text/plain;version=0.0.4"}, status=200,
            checks=[text_ct(), t("Prometheus text", "expect(B).to.be.a('string').and.include('steward_http_requests_total')")]),
        Req("/metrics answers an OpenMetrics scraper", "GET", "/metrics",
            headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"},
            status=200, checks=[text_ct()]),
        Req("/metrics with Accept text/html gives 406", "GET", "/metrics", headers={"Accept": "text/html"},
            status=406, checks=[has_error()]),
        Req("/openapi.json describes every endpoint", "GET", "/openapi.json", status=200,
            checks=[json_ct(),
                    t("OpenAPI 3.1", "expect(B.openapi).to.match(/^3\\.1\\./)"),
                    t("every endpoint is a path",
                      f"expect(Object.keys(B.paths)).to.include.members({js(ENDPOINTS)})")]),
    ]


# Every endpoint the server has (its router and its document come from one
# registration): the document must name each.
ENDPOINTS = [
    "/director/activity", "/director/activity/revert", "/director/config/deploy",
    "/director/config/deployment",
    "/director/config/deployment-status", "/director/config/deployments", "/director/config/pending",
    "/director/host", "/director/host/allowlist", "/director/host/api-key", "/director/host/ticket",
    "/director/hosts", "/director/hosts/templates", "/director/script", "/director/scripts",
    "/director/scripts/templates", "/director/self-service/agent-config",
    "/director/self-service/allowlist", "/director/self-service/register-host",
    "/director/self-service/ticket", "/director/user", "/director/users",
    "/health", "/metrics", "/openapi.json", "/ready",
]


# --------------------------------------------------------------------------
# Authentication, users, permissions, host restrictions, activity
#
# Wrong credentials are throttled per client address (CONTRACT section 2):
# each tool sends 5 of them per run (2 in 08-auth, 3 in 09-users), well below
# the server's allowance, and every user that gets one logs in right after.


def U(name):
    return f"/director/user?name={name}"


def user_cleanup(name):
    return Req(f"cleanup user {name} if left over", "DELETE", U(name), status=[200, 404], checks=[])


def challenge():
    return t("WWW-Authenticate is Basic with realm steward",
             "expect(H('www-authenticate')).to.be.a('string').that.matches(/^Basic realm=\"steward\"(,|$)/)")


def unauthorized(msg):
    return [error_is(msg), challenge()]


def forbidden(permission):
    return error_is(f"Permission {permission} is required")


def no_secrets(*secrets):
    """No password, hash or password key anywhere in the body."""
    lits = "".join(f" expect(j).to.not.include({js(s)});" for s in secrets)
    return t("no password or hash in the body",
             "var j = JSON.stringify(B); expect(j).to.not.match(/\"(password|password_hash|hash)\":/);"
             " expect(j).to.not.include('$argon2');" + lits)


def objects_are(objs):
    return t("objects are exactly", f"expect(B.objects).to.deep.equal({js(objs)})")


def auth(P):
    hl = f"/director/hosts?q={P}auth-"
    no = unauthorized("Authentication required")
    return [
        Req("no credentials gives 401 with a Basic challenge", "GET", hl, auth=NOAUTH, status=401,
            checks=[*no, json_ct()]),
        Req("no credentials on one object gives 401, not 404", "GET", f"/director/host?name={P}auth-missing",
            auth=NOAUTH, status=401, checks=no),
        Req("no credentials on a write gives 401 before the body is read", "POST", "/director/host",
            text='{"object_name": ', auth=NOAUTH, status=401, checks=no),
        Req("no credentials and Accept text/html gives 401, not 406", "GET", hl, auth=NOAUTH,
            headers={"Accept": "text/html"}, status=401, checks=[challenge()]),
        Req("no credentials and KILL gives 401 before 400", "KILL", f"/director/host?name={P}auth-missing",
            auth=NOAUTH, status=401, checks=no),
        Req("no credentials on the users gives 401", "GET", "/director/users", auth=NOAUTH, status=401, checks=no),
        Req("no credentials on the activity log gives 401", "GET", "/director/activity?limit=1", auth=NOAUTH,
            status=401, checks=no),
        Req("HEAD without credentials gives 401", "HEAD", hl, auth=NOAUTH, status=401, checks=[challenge()]),
        Req("a Bearer token is no Basic credential", "GET", hl, auth=NOAUTH,
            headers={"Authorization": "Bearer abcdef"}, status=401, checks=[has_error(), challenge()]),
        Req("wrong password gives 401 Invalid credentials", "GET", hl, auth=("{{user}}", f"{P}wrong-password"),
            status=401, checks=unauthorized("Invalid credentials")),
        Req("unknown user gives 401 Invalid credentials", "GET", hl,
            auth=(f"{P}auth-nobody", "some-long-password"), status=401, checks=unauthorized("Invalid credentials")),
        Req("the right credentials are accepted", "GET", hl, status=200,
            checks=[names([]), t("no challenge on success", "expect(H('www-authenticate')).to.equal(undefined)")]),
        Req("/health needs no credentials", "GET", "/health", auth=NOAUTH, status=200, checks=[json_ct()]),
        Req("/ready needs no credentials", "GET", "/ready", auth=NOAUTH, status=200, checks=[json_ct()]),
    ]


def users(P):
    op, rd, pu, adm2, bad = (f"{P}users-op", f"{P}users-reader", f"{P}users-put", f"{P}users-admin2",
                             f"{P}users-bad")
    op1, op2, rdp, pup = f"{P}op-password-1", f"{P}op-password-2", f"{P}reader-password", f"{P}put-password"
    probe = f"/director/hosts?q={P}users-none"
    op_body = {"object_name": op, "role": "operator"}
    web = f"{P}users-web-*"
    sole = "{{soleAdmin}}"
    return [
        user_cleanup(op), user_cleanup(rd), user_cleanup(pu), user_cleanup(adm2), user_cleanup(bad),
        Req("create an operator", "POST", "/director/user",
            body={"object_name": op, "password": op1, "role": "operator"}, status=201,
            checks=[body_is(op_body), location(U(op)), json_ct(), no_secrets(op1)]),
        Req("create it again gives 422", "POST", "/director/user",
            body={"object_name": op, "password": op1, "role": "operator"}, status=422,
            checks=[error_is(f'Trying to recreate user "{op}"')]),
        Req("GET the operator", "GET", U(op), status=200, checks=[body_is(op_body), no_secrets(op1)]),
        Req("the new user can log in", "GET", probe, auth=(op, op1), status=200, checks=[names([])]),
        Req("POST the same role gives 304", "POST", U(op), body={"role": "operator"}, status=304,
            checks=[empty_body()]),
        Req("POST the same password again gives 304", "POST", U(op), body={"password": op1}, status=304,
            checks=[empty_body()]),
        Req("POST extra permissions and restrictions", "POST", U(op),
            body={"permissions": ["deploy"], "restrictions": [web]}, status=200,
            checks=[body_is({**op_body, "permissions": ["deploy"], "restrictions": [web]})]),
        Req("the same again gives 304", "POST", U(op), body={"permissions": ["deploy"], "restrictions": [web]},
            status=304, checks=[empty_body()]),
        Req("empty lists remove them", "POST", U(op), body={"permissions": [], "restrictions": []}, status=200,
            checks=[body_is(op_body)]),
        Req("create a reader", "POST", "/director/user",
            body={"object_name": rd, "password": rdp, "role": "reader"}, status=201,
            checks=[body_is({"object_name": rd, "role": "reader"}), location(U(rd))]),
        Req("GET /director/users sorted by name", "GET", "/director/users", status=200,
            checks=[t("sorted by name, with the new users",
                      "var n = B.objects.map(function (o) { return o.object_name; }); "
                      "expect(n).to.deep.equal(n.slice().sort()); "
                      f"expect(n).to.include.members([{js(op)}, {js(rd)}])"),
                    t("every user has a name and a role",
                      "B.objects.forEach(function (o) { expect(o.object_name).to.be.a('string'); "
                      "expect(['admin', 'operator', 'reader']).to.include(o.role); })"),
                    no_secrets(op1, rdp)]),
        Req("PUT by name creates", "PUT", U(pu),
            body={"password": pup, "role": "operator", "restrictions": ["a-*"]}, status=201,
            checks=[body_is({"object_name": pu, "role": "operator", "restrictions": ["a-*"]}),
                    location(U(pu)), no_secrets(pup)]),
        Req("PUT the same again gives 304", "PUT", U(pu),
            body={"password": pup, "role": "operator", "restrictions": ["a-*"]}, status=304,
            checks=[empty_body()]),
        Req("PUT replaces: role back to reader, restrictions gone", "PUT", U(pu),
            body={"permissions": ["deploy"]}, status=200,
            checks=[body_is({"object_name": pu, "role": "reader", "permissions": ["deploy"]})]),
        Req("PUT kept the password", "GET", probe, auth=(pu, pup), status=200, checks=[names([])]),
        Req("PUT without name on an existing user gives 422", "PUT", "/director/user",
            body={"object_name": pu, "password": pup}, status=422,
            checks=[error_is(f'Trying to recreate user "{pu}"')]),
        Req("password of 7 characters gives 422", "POST", "/director/user",
            body={"object_name": bad, "password": "1234567", "role": "reader"}, status=422, checks=[has_error()]),
        Req("short password on an update gives 422", "POST", U(rd), body={"password": "short"}, status=422,
            checks=[has_error()]),
        Req("missing password gives 422", "POST", "/director/user", body={"object_name": bad, "role": "reader"},
            status=422, checks=[has_error()]),
        Req("PUT creating without password gives 422", "PUT", U(bad), body={"role": "reader"}, status=422,
            checks=[has_error()]),
        Req("unknown role gives 422", "POST", "/director/user",
            body={"object_name": bad, "password": "long-enough-1", "role": "root"}, status=422,
            checks=[has_error()]),
        Req("unknown permission gives 422", "POST", U(rd), body={"permissions": ["everything"]}, status=422,
            checks=[has_error()]),
        Req("unknown key gives 422", "POST", "/director/user",
            body={"object_name": bad, "password": "long-enough-1", "foo": 1}, status=422,
            checks=[error_contains("foo")]),
        Req("a password hash is no settable key", "POST", U(rd), body={"password_hash": "x"}, status=422,
            checks=[has_error()]),
        Req("invalid restriction gives 422", "POST", U(rd), body={"restrictions": ["web/*"]}, status=422,
            checks=[has_error()]),
        Req("user name with a space gives 422", "POST", "/director/user",
            body={"object_name": f"{P}users bad", "password": "long-enough-1"}, status=422, checks=[has_error()]),
        Req("disabled not a boolean gives 422", "POST", U(rd), body={"disabled": "maybe"}, status=422,
            checks=[has_error()]),
        Req("nothing bad was created", "GET", U(bad), status=404, checks=[has_error()]),
        Req("the refused updates changed nothing", "GET", U(rd), status=200,
            checks=[body_is({"object_name": rd, "role": "reader"})]),
        Req("the reader still logs in", "GET", probe, auth=(rd, rdp), status=200, checks=[names([])]),
        Req("change the password", "POST", U(op), body={"password": op2}, status=200,
            checks=[body_is(op_body), no_secrets(op1, op2)]),
        Req("the old password is refused at once", "GET", probe, auth=(op, op1), status=401,
            checks=unauthorized("Invalid credentials")),
        Req("the new password works", "GET", probe, auth=(op, op2), status=200, checks=[names([])]),
        Req("disable the operator", "POST", U(op), body={"disabled": True}, status=200,
            checks=[body_is({**op_body, "disabled": True})]),
        Req("a disabled user is refused at once", "GET", probe, auth=(op, op2), status=401,
            checks=[has_error(), challenge()]),
        Req("GET shows disabled", "GET", U(op), status=200, checks=[body_is({**op_body, "disabled": True})]),
        Req("enable the operator again", "POST", U(op), body={"disabled": False}, status=200,
            checks=[body_is(op_body)]),
        Req("the enabled user logs in again", "GET", probe, auth=(op, op2), status=200, checks=[names([])]),
        Req("a disabled admin", "POST", "/director/user",
            body={"object_name": adm2, "password": "admin2-password", "role": "admin", "disabled": True},
            status=201, checks=[body_is({"object_name": adm2, "role": "admin", "disabled": True})]),
        Req("find the only enabled user holding users", "GET", "/director/users", status=200,
            checks=[t("exactly one enabled user holds the users permission",
                      "var h = B.objects.filter(function (o) { return !o.disabled && (o.role === 'admin' || "
                      "(o.permissions || []).indexOf('users') >= 0); }).map(function (o) { return o.object_name; }); "
                      f"setv('soleAdmin', h.length === 1 ? h[0] : {js(P + 'users-not-the-sole-admin')}); "
                      "expect(h.length).to.equal(1)")]),
        Req("disabling the last user holding users gives 409", "POST", U(sole), body={"disabled": True},
            status=409, checks=[has_error()]),
        Req("demoting the last user holding users gives 409", "POST", U(sole), body={"role": "operator"},
            status=409, checks=[has_error()]),
        Req("PUT replacing the last user holding users with a reader gives 409", "PUT", U(sole), body={},
            status=409, checks=[has_error()]),
        Req("deleting the last user holding users gives 409", "DELETE", U(sole), status=409,
            checks=[has_error()]),
        Req("the last user holding users is unchanged", "GET", U(sole), status=200,
            checks=[field("role", "admin"), *absent("disabled")]),
        Req("DELETE the disabled admin", "DELETE", U(adm2), status=200,
            checks=[body_is({"object_name": adm2, "role": "admin", "disabled": True})]),
        Req("DELETE the operator answers the deleted user", "DELETE", U(op), status=200,
            checks=[body_is(op_body), no_secrets(op2)]),
        Req("a deleted user is refused at once", "GET", probe, auth=(op, op2), status=401,
            checks=unauthorized("Invalid credentials")),
        Req("GET the deleted user gives 404", "GET", U(op), status=404, checks=[has_error()]),
        Req("DELETE it again gives 404", "DELETE", U(op), status=404, checks=[has_error()]),
        Req("POST by name on a missing user gives 404", "POST", U(op), body={"role": "reader"}, status=404,
            checks=[has_error()]),
        Req("DELETE the reader", "DELETE", U(rd), status=200, checks=[body_is({"object_name": rd, "role": "reader"})]),
        Req("DELETE the PUT user", "DELETE", U(pu), status=200, checks=[field("object_name", pu)]),
        Req("no user of this folder is left", "GET", "/director/users", status=200,
            checks=[t("none left", "B.objects.forEach(function (o) { "
                      f"expect(o.object_name.indexOf({js(P + 'users-')})).to.not.equal(0); }})")]),
    ]


def permissions(P):
    rd, op, wr = f"{P}perm-reader", f"{P}perm-op", f"{P}perm-writer"
    RD, OP, WR = (rd, f"{P}perm-reader-pw"), (op, f"{P}perm-op-pw"), (wr, f"{P}perm-writer-pw")
    h1, h2, h3, s1, s2 = (f"{P}perm-h1", f"{P}perm-h2", f"{P}perm-h3", f"{P}perm-s1", f"{P}perm-s2")
    H = lambda n: f"/director/host?name={n}"
    S = lambda n: f"/director/script?name={n}"
    mp = {"Content-Type": "application/merge-patch+json"}
    hw, sw, us = forbidden("hosts.write"), forbidden("scripts.write"), forbidden("users")
    return [
        cleanup("host", h1), cleanup("host", h2), cleanup("host", h3), cleanup("script", s1), cleanup("script", s2),
        user_cleanup(rd), user_cleanup(op), user_cleanup(wr),
        Req("user with role reader", "POST", "/director/user",
            body={"object_name": rd, "password": RD[1], "role": "reader"}, status=201,
            checks=[field("role", "reader")]),
        Req("user with role operator", "POST", "/director/user",
            body={"object_name": op, "password": OP[1], "role": "operator"}, status=201,
            checks=[field("role", "operator")]),
        Req("reader with the extra permission hosts.write", "POST", "/director/user",
            body={"object_name": wr, "password": WR[1], "role": "reader", "permissions": ["hosts.write"]},
            status=201, checks=[body_is({"object_name": wr, "role": "reader", "permissions": ["hosts.write"]})]),
        Req("fixture host", "POST", "/director/host", body={"object_name": h1, "address": "127.0.2.70"},
            status=201, checks=[field("object_name", h1)]),
        Req("fixture script", "POST", "/director/script", body={"object_name": s1, "command": "/bin/true"},
            status=201, checks=[field("object_name", s1)]),
        # reader: reads everything, writes nothing
        Req("reader GETs a host", "GET", H(h1), auth=RD, status=200,
            checks=[body_is({"object_name": h1, "object_type": "object", "address": "127.0.2.70"})]),
        Req("reader lists hosts", "GET", f"/director/hosts?q={P}perm-", auth=RD, status=200, checks=[names([h1])]),
        Req("reader lists host templates", "GET", f"/director/hosts/templates?q={P}perm-", auth=RD, status=200,
            checks=[names([])]),
        Req("reader GETs a script", "GET", S(s1), auth=RD, status=200, checks=[field("command", "/bin/true")]),
        Req("reader lists scripts", "GET", f"/director/scripts?q={P}perm-", auth=RD, status=200,
            checks=[names([s1])]),
        Req("reader reads the activity log", "GET", "/director/activity?limit=1", auth=RD, status=200,
            checks=[t("objects is a list", "expect(B.objects).to.be.an('array')")]),
        Req("reader POST host gives 403", "POST", "/director/host", auth=RD, body={"object_name": h2},
            status=403, checks=[hw]),
        Req("reader POST by name gives 403", "POST", H(h1), auth=RD, body={"address": "127.0.2.71"},
            status=403, checks=[hw]),
        Req("reader PUT gives 403", "PUT", H(h1), auth=RD, body={"address": "127.0.2.71"}, status=403,
            checks=[hw]),
        Req("reader PATCH gives 403", "PATCH", H(h1), auth=RD, headers=mp, body={"address": "127.0.2.71"},
            status=403, checks=[hw]),
        Req("reader DELETE host gives 403", "DELETE", H(h1), auth=RD, status=403, checks=[hw]),
        Req("reader POST script gives 403", "POST", "/director/script", auth=RD,
            body={"object_name": s2, "command": "/bin/true"}, status=403, checks=[sw]),
        Req("reader DELETE script gives 403", "DELETE", S(s1), auth=RD, status=403, checks=[sw]),
        Req("reader GET /director/users gives 403", "GET", "/director/users", auth=RD, status=403, checks=[us]),
        Req("reader GET itself gives 403", "GET", U(rd), auth=RD, status=403, checks=[us]),
        Req("reader cannot make itself admin", "POST", U(rd), auth=RD, body={"role": "admin"}, status=403,
            checks=[us]),
        Req("the refused writes changed nothing", "GET", H(h1), status=200,
            checks=[body_is({"object_name": h1, "object_type": "object", "address": "127.0.2.70"})]),
        Req("the reader is still a reader", "GET", U(rd), status=200,
            checks=[body_is({"object_name": rd, "role": "reader"})]),
        Req("the refused host was not created", "GET", H(h2), status=404, checks=[has_error()]),
        Req("the refused script was not created", "GET", S(s2), status=404, checks=[has_error()]),
        # operator: everything but users
        Req("operator GET /director/users gives 403", "GET", "/director/users", auth=OP, status=403,
            checks=[us]),
        Req("operator GET a user gives 403", "GET", U(op), auth=OP, status=403, checks=[us]),
        Req("operator creating a user gives 403", "POST", "/director/user", auth=OP,
            body={"object_name": f"{P}perm-new", "password": "long-enough-1", "role": "admin"}, status=403,
            checks=[us]),
        Req("operator deleting a user gives 403", "DELETE", U(rd), auth=OP, status=403, checks=[us]),
        Req("operator creates a host", "POST", "/director/host", auth=OP, body={"object_name": h3}, status=201,
            checks=[field("object_name", h3)]),
        Req("operator changes it", "POST", H(h3), auth=OP, body={"address": "127.0.2.72"}, status=200,
            checks=[field("address", "127.0.2.72")]),
        Req("operator creates a script", "POST", "/director/script", auth=OP,
            body={"object_name": s2, "command": "/bin/false"}, status=201, checks=[field("object_name", s2)]),
        Req("operator deletes the script", "DELETE", S(s2), auth=OP, status=200, checks=[field("object_name", s2)]),
        Req("operator deletes the host", "DELETE", H(h3), auth=OP, status=200, checks=[field("object_name", h3)]),
        Req("the log names the operator as author", "GET", "/director/activity?limit=1", auth=OP, status=200,
            checks=[t("newest entry is the operator's delete",
                      "var e = B.objects[0]; "
                      f"expect([e.author, e.action, e.object_type, e.object_name]).to.deep.equal({js([op, 'delete', 'host', h3])})")]),
        # reader with hosts.write
        Req("reader with hosts.write creates a host", "POST", "/director/host", auth=WR,
            body={"object_name": h2, "address": "127.0.2.73"}, status=201, checks=[field("object_name", h2)]),
        Req("reader with hosts.write POST script gives 403", "POST", "/director/script", auth=WR,
            body={"object_name": s2, "command": "/bin/true"}, status=403, checks=[sw]),
        Req("reader with hosts.write GET /director/users gives 403", "GET", "/director/users", auth=WR,
            status=403, checks=[us]),
        Req("reader with hosts.write deletes its host", "DELETE", H(h2), auth=WR, status=200,
            checks=[field("object_name", h2)]),
        Req("DELETE fixture host", "DELETE", H(h1), status=200, checks=[field("object_name", h1)]),
        Req("DELETE fixture script", "DELETE", S(s1), status=200, checks=[field("object_name", s1)]),
        Req("DELETE the reader", "DELETE", U(rd), status=200, checks=[field("object_name", rd)]),
        Req("DELETE the operator", "DELETE", U(op), status=200, checks=[field("object_name", op)]),
        Req("DELETE the writer", "DELETE", U(wr), status=200, checks=[field("object_name", wr)]),
    ]


def restrictions(P):
    ro = f"{P}rst-op"
    RO = (ro, f"{P}rst-op-password")
    glob = f"{P}rst-web-*"
    web1, web2, web3, web4 = f"{P}rst-web-1", f"{P}rst-web-2", f"{P}rst-web-3", f"{P}rst-web-4"
    db1, db2, db3 = f"{P}rst-db-1", f"{P}rst-db-2", f"{P}rst-db-3"
    tpl, tpl2, s1 = f"{P}rst-tpl", f"{P}rst-web-tpl", f"{P}rst-s1"
    H = lambda n: f"/director/host?name={n}"
    hl = f"/director/hosts?q={P}rst-"
    mp = {"Content-Type": "application/merge-patch+json"}
    tpl_body = {"object_name": tpl, "object_type": "template", "vars": {"tier": "gold"}}
    return [
        cleanup("host", web1), cleanup("host", web2), cleanup("host", web3), cleanup("host", web4),
        cleanup("host", db1), cleanup("host", db2), cleanup("host", db3), cleanup("host", tpl2),
        cleanup("host", tpl), cleanup("script", s1), user_cleanup(ro),
        Req("operator restricted to the web hosts", "POST", "/director/user",
            body={"object_name": ro, "password": RO[1], "role": "operator", "restrictions": [glob]}, status=201,
            checks=[body_is({"object_name": ro, "role": "operator", "restrictions": [glob]})]),
        Req("template", "POST", "/director/host", body=tpl_body, status=201, checks=[body_is(tpl_body)]),
        Req("web host importing the template", "POST", "/director/host",
            body={"object_name": web1, "imports": [tpl]}, status=201, checks=[field("object_name", web1)]),
        Req("db host", "POST", "/director/host", body={"object_name": db1, "address": "127.0.2.80"}, status=201,
            checks=[field("object_name", db1)]),
        Req("an unrestricted user sees both", "GET", hl + "&count=1", status=200,
            checks=[names([db1, web1]), field("total", 2)]),
        Req("restricted: the list has only the web host", "GET", hl + "&count=1", auth=RO, status=200,
            checks=[names([web1]), field("total", 1)]),
        Req("restricted: a page counts only visible hosts", "GET", hl + "&limit=1&count=1", auth=RO, status=200,
            checks=[names([web1]), field("total", 1), t("no next", "expect(B).to.not.have.property('next')")]),
        Req("restricted: GET the web host", "GET", H(web1), auth=RO, status=200,
            checks=[body_is({"object_name": web1, "object_type": "object", "imports": [tpl]})]),
        Req("restricted: the resolved view reads the template", "GET", H(web1) + "&resolved=1", auth=RO,
            status=200, checks=[field("vars", {"tier": "gold"})]),
        Req("restricted: GET the db host gives 404", "GET", H(db1), auth=RO, status=404, checks=[has_error()]),
        Req("restricted: HEAD the db host gives 404", "HEAD", H(db1), auth=RO, status=404, checks=[]),
        Req("restricted: the templates list", "GET", f"/director/hosts/templates?q={P}rst-", auth=RO,
            status=200, checks=[names([tpl])]),
        Req("restricted: GET the template", "GET", H(tpl), auth=RO, status=200, checks=[body_is(tpl_body)]),
        Req("restricted: create a web host", "POST", "/director/host", auth=RO,
            body={"object_name": web2, "imports": [tpl]}, status=201,
            checks=[field("object_name", web2), location(H(web2))]),
        Req("restricted: create a db host gives 403", "POST", "/director/host", auth=RO,
            body={"object_name": db2}, status=403, checks=[has_error()]),
        Req("restricted: PUT a new db host gives 403", "PUT", H(db2), auth=RO, body={}, status=403,
            checks=[has_error()]),
        Req("restricted: PUT onto the hidden db host gives 403", "PUT", H(db1), auth=RO,
            body={"address": "127.0.2.81"}, status=403, checks=[has_error()]),
        Req("restricted: POST by name on the hidden db host gives 404", "POST", H(db1), auth=RO,
            body={"address": "127.0.2.81"}, status=404, checks=[has_error()]),
        Req("restricted: PATCH the hidden db host gives 404", "PATCH", H(db1), auth=RO, headers=mp,
            body={"address": "127.0.2.81"}, status=404, checks=[has_error()]),
        Req("restricted: DELETE the hidden db host gives 404", "DELETE", H(db1), auth=RO, status=404,
            checks=[has_error()]),
        Req("the db host is unchanged", "GET", H(db1), status=200,
            checks=[body_is({"object_name": db1, "object_type": "object", "address": "127.0.2.80"})]),
        Req("the refused db host was not created", "GET", H(db2), status=404, checks=[has_error()]),
        Req("restricted: rename out of the restrictions gives 403", "POST", H(web2), auth=RO,
            body={"object_name": db3}, status=403, checks=[has_error()]),
        Req("the refused rename changed nothing", "GET", H(web2), auth=RO, status=200,
            checks=[field("object_name", web2)]),
        Req("no host under the refused name", "GET", H(db3), status=404, checks=[has_error()]),
        Req("restricted: rename within the restrictions", "POST", H(web2), auth=RO, body={"object_name": web3},
            status=200, checks=[field("object_name", web3), field("imports", [tpl])]),
        Req("restricted: create a host template gives 403", "POST", "/director/host", auth=RO,
            body={"object_name": tpl2, "object_type": "template"}, status=403, checks=[has_error()]),
        Req("restricted: PUT a new host template gives 403", "PUT", H(tpl2), auth=RO,
            body={"object_type": "template"}, status=403, checks=[has_error()]),
        Req("restricted: change a host template gives 403", "POST", H(tpl), auth=RO, body={"vars.tier": "tin"},
            status=403, checks=[has_error()]),
        Req("restricted: PATCH a host template gives 403", "PATCH", H(tpl), auth=RO, headers=mp,
            body={"vars": {"tier": "tin"}}, status=403, checks=[has_error()]),
        Req("restricted: DELETE a host template gives 403", "DELETE", H(tpl), auth=RO, status=403,
            checks=[has_error()]),
        Req("the template is unchanged", "GET", H(tpl), status=200, checks=[body_is(tpl_body)]),
        Req("the refused template was not created", "GET", H(tpl2), status=404, checks=[has_error()]),
        Req("restricted: scripts are not restricted", "POST", "/director/script", auth=RO,
            body={"object_name": s1, "command": "/bin/true"}, status=201, checks=[field("object_name", s1)]),
        Req("restricted: list scripts", "GET", f"/director/scripts?q={P}rst-", auth=RO, status=200,
            checks=[names([s1])]),
        Req("restricted: DELETE the script", "DELETE", f"/director/script?name={s1}", auth=RO, status=200,
            checks=[field("object_name", s1)]),
        Req("restricted: the log hides the db host", "GET", f"/director/activity?name={db1}&limit=10", auth=RO,
            status=200, checks=[objects_are([])]),
        Req("unrestricted: the log shows the db host", "GET", f"/director/activity?name={db1}&limit=1",
            status=200, checks=[t("newest db entry", "expect(B.objects[0].object_name).to.equal(" + js(db1) + ")")]),
        Req("restricted: the log shows the web host", "GET", f"/director/activity?name={web3}&limit=1", auth=RO,
            status=200, checks=[t("the rename", "var e = B.objects[0]; "
                                  f"expect([e.action, e.author]).to.deep.equal({js(['rename', ro])})")]),
        Req("restricted: DELETE web host 3", "DELETE", H(web3), auth=RO, status=200,
            checks=[field("object_name", web3)]),
        Req("restricted: DELETE web host 1", "DELETE", H(web1), auth=RO, status=200,
            checks=[field("object_name", web1)]),
        Req("DELETE the db host", "DELETE", H(db1), status=200, checks=[field("object_name", db1)]),
        Req("DELETE the template", "DELETE", H(tpl), status=200, checks=[field("object_name", tpl)]),
        Req("DELETE the restricted user", "DELETE", U(ro), status=200,
            checks=[body_is({"object_name": ro, "role": "operator", "restrictions": [glob]})]),
        Req("nothing is left", "GET", hl + "&count=1", status=200, checks=[names([]), field("total", 0)]),
    ]


def activity(P):
    ao = f"{P}act-op"
    pw1, pw2 = f"{P}act-password-1", f"{P}act-password-2"
    AO = (ao, pw1)
    h, hr, s = f"{P}act-h1", f"{P}act-h1-renamed", f"{P}act-s1"
    A = "/director/activity"
    since = A + "?since={{actSince}}"
    H = lambda n: f"/director/host?name={n}"
    rid = lambda n: {"X-Request-Id": "{{actRid}}-" + n}
    HEX = "/^[0-9a-f]{64}$/"

    def entry(action, typ, name, n, author=None, before=True, after=True, chained=True, extra=""):
        """Checks the newest entry B.objects[0]."""
        code = ("var e = B.objects[0]; expect(e).to.be.an('object'); "
                "expect(e.id).to.be.a('number'); "
                "expect(e.time).to.be.a('string').that.matches(/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?(Z|[+-]\\d\\d:\\d\\d)$/); "
                f"expect(e.action).to.equal({js(action)}); expect(e.object_type).to.equal({js(typ)}); "
                f"expect(e.object_name).to.equal({js(name)}); "
                f"expect(e.request_id).to.equal(getv('actRid') + {js('-' + n)}); "
                f"expect(e.checksum).to.match({HEX}); expect(e.parent_checksum).to.match({HEX}); ")
        if author:
            code += f"expect(e.author).to.equal({js(author)}); "
        else:
            code += "expect(e.author).to.be.a('string').and.not.empty; "
        code += ("expect(e).to.have.property('before'); " if before else "expect(e).to.not.have.property('before'); ")
        code += ("expect(e).to.have.property('after'); " if after else "expect(e).to.not.have.property('after'); ")
        checks = [t(f"newest entry: {action} {typ} {name}", code + extra)]
        if chained:
            checks.append(t("chained to the previous entry",
                            "expect(B.objects[0].parent_checksum).to.equal(getv('actChecksum'))"))
        checks.append(t("remember the checksum", "setv('actChecksum', B.objects[0].checksum)"))
        return checks

    def seq(expected):
        return t("entries in order (newest first)",
                 "expect(B.objects.map(function (e) { return [e.action, e.object_type, e.object_name]; }))"
                 f".to.deep.equal({js(expected)})")

    full = [["delete", "user", ao], ["modify", "user", ao], ["modify", "user", ao],
            ["delete", "host", hr], ["delete", "script", s], ["create", "script", s],
            ["rename", "host", hr], ["modify", "host", h], ["create", "host", h], ["create", "user", ao]]
    ids = lambda a, b: f"JSON.parse(getv('actIds')).slice({a}, {b})"
    page_ids = "B.objects.map(function (e) { return e.id; })"
    return [
        cleanup("host", h), cleanup("host", hr), cleanup("script", s), user_cleanup(ao),
        Req("create a user (author: the collection user)", "POST", "/director/user", headers=rid("u1"),
            pre=[f"setv('actRid', {js(P + 'act-')} + Date.now())"],
            body={"object_name": ao, "password": pw1, "role": "operator"}, status=201,
            checks=[field("object_name", ao),
                    t("X-Request-Id echoed", "expect(H('x-request-id')).to.equal(getv('actRid') + '-u1')")]),
        Req("the user create entry", "GET", A + f"?object_type=user&name={ao}&limit=1", status=200,
            checks=[*entry("create", "user", ao, "u1", before=False, chained=False,
                           extra=f"expect(e.after.object_name).to.equal({js(ao)}); "
                                 "expect(e.after.role).to.equal('operator'); "),
                    no_secrets(pw1),
                    t("remember its time and id", "setv('actSince', B.objects[0].time); setv('actFirstId', B.objects[0].id)")]),
        Req("author is the authenticated user", "GET", A + f"?author={{{{user}}}}&name={ao}&limit=1", status=200,
            checks=[t("the same entry", "expect(String(B.objects[0].id)).to.equal(String(getv('actFirstId')))")]),
        Req("create a host as the operator", "POST", "/director/host", auth=AO, headers=rid("1"),
            body={"object_name": h, "address": "127.0.2.1"}, status=201, checks=[field("object_name", h)]),
        Req("the host create entry", "GET", A + f"?name={h}&limit=1", status=200,
            checks=entry("create", "host", h, "1", author=ao, before=False,
                         extra=f"expect(e.after).to.deep.equal({js({'object_name': h, 'object_type': 'object', 'address': '127.0.2.1'})}); ")),
        Req("change the host", "POST", H(h), auth=AO, headers=rid("2"), body={"address": "127.0.2.2"},
            status=200, checks=[field("address", "127.0.2.2")]),
        Req("the modify entry has before and after", "GET", A + f"?name={h}&limit=1", status=200,
            checks=entry("modify", "host", h, "2", author=ao,
                         extra=f"expect(e.before).to.deep.equal({js({'object_name': h, 'object_type': 'object', 'address': '127.0.2.1'})}); "
                               f"expect(e.after).to.deep.equal({js({'object_name': h, 'object_type': 'object', 'address': '127.0.2.2'})}); ")),
        Req("rename the host", "POST", H(h), auth=AO, headers=rid("3"), body={"object_name": hr}, status=200,
            checks=[field("object_name", hr)]),
        Req("the rename entry", "GET", A + f"?name={hr}&limit=1", status=200,
            checks=entry("rename", "host", hr, "3", author=ao,
                         extra=f"expect(e.before.object_name).to.equal({js(h)}); "
                               f"expect(e.after.object_name).to.equal({js(hr)}); ")),
        Req("create a script", "POST", "/director/script", auth=AO, headers=rid("4"),
            body={"object_name": s, "command": "/bin/true"}, status=201, checks=[field("object_name", s)]),
        Req("delete the script", "DELETE", f"/director/script?name={s}", auth=AO, headers=rid("5"), status=200,
            checks=[field("object_name", s)]),
        Req("delete the host", "DELETE", H(hr), auth=AO, headers=rid("6"), status=200,
            checks=[field("object_name", hr)]),
        Req("the delete entry has no after", "GET", A + f"?name={hr}&limit=1", status=200,
            checks=entry("delete", "host", hr, "6", author=ao, after=False, chained=False,
                         extra=f"expect(e.before).to.deep.equal({js({'object_name': hr, 'object_type': 'object', 'address': '127.0.2.2'})}); ")),
        Req("change the user's password", "POST", U(ao), headers=rid("u2"), body={"password": pw2}, status=200,
            checks=[body_is({"object_name": ao, "role": "operator"})]),
        Req("the password change is logged without the password", "GET", A + f"?object_type=user&name={ao}&limit=1",
            status=200,
            checks=[*entry("modify", "user", ao, "u2",
                           extra="expect(e.after.password_changed).to.equal(true); "
                                 "expect(e.before).to.not.have.property('password_changed'); "),
                    no_secrets(pw1, pw2)]),
        Req("change the user's role", "POST", U(ao), headers=rid("u3"), body={"role": "reader"}, status=200,
            checks=[body_is({"object_name": ao, "role": "reader"})]),
        Req("the role change entry", "GET", A + f"?object_type=user&name={ao}&limit=1", status=200,
            checks=entry("modify", "user", ao, "u3",
                         extra="expect(e.before.role).to.equal('operator'); expect(e.after.role).to.equal('reader'); "
                               "expect(e.after).to.not.have.property('password_changed'); ")),
        Req("delete the user", "DELETE", U(ao), headers=rid("u4"), status=200, checks=[field("object_name", ao)]),
        Req("the user delete entry", "GET", A + f"?object_type=user&name={ao}&limit=1", status=200,
            checks=[*entry("delete", "user", ao, "u4", after=False,
                           extra=f"expect(e.before).to.deep.equal({js({'object_name': ao, 'role': 'reader'})}); "),
                    no_secrets(pw1, pw2)]),
        Req("since: this folder's entries, newest first", "GET", since, status=200,
            checks=[seq(full),
                    t("ids descending, each chained to the next older one",
                      "for (var i = 1; i < B.objects.length; i++) { "
                      "expect(B.objects[i].id).to.be.below(B.objects[i - 1].id); "
                      "expect(B.objects[i - 1].parent_checksum).to.equal(B.objects[i].checksum); }"),
                    t("remember the ids", f"setv('actIds', JSON.stringify({page_ids}))"),
                    no_secrets(pw1, pw2), json_ct()]),
        Req("filter object_type=host", "GET", since + "&object_type=host", status=200,
            checks=[seq([e for e in full if e[1] == "host"])]),
        Req("filter object_type=script", "GET", since + "&object_type=script", status=200,
            checks=[seq([e for e in full if e[1] == "script"])]),
        Req("filter object_type=user", "GET", since + "&object_type=user", status=200,
            checks=[seq([e for e in full if e[1] == "user"])]),
        Req("filter action=rename", "GET", since + "&action=rename", status=200,
            checks=[seq([e for e in full if e[0] == "rename"])]),
        Req("filter action=delete", "GET", since + "&action=delete", status=200,
            checks=[seq([e for e in full if e[0] == "delete"])]),
        Req("filter author", "GET", since + f"&author={ao}", status=200,
            checks=[seq([e for e in full if e[1] != "user"]),
                    t("all by the operator", f"B.objects.forEach(function (e) {{ expect(e.author).to.equal({js(ao)}); }})")]),
        Req("filter name", "GET", since + f"&name={h}", status=200,
            checks=[seq([e for e in full if e[2] == h])]),
        Req("filters combine", "GET", since + "&object_type=host&action=delete", status=200,
            checks=[seq([["delete", "host", hr]])]),
        Req("unknown name matches nothing", "GET", A + f"?name={P}act-nothing", status=200, checks=[objects_are([])]),
        Req("since in Unix seconds, in the future", "GET", A + "?since=4102444800", status=200,
            checks=[objects_are([])]),
        Req("since in RFC 3339, in the future", "GET", A + "?since=2100-01-01T00:00:00Z", status=200,
            checks=[objects_are([])]),
        Req("since in RFC 3339 with an offset", "GET", A + "?since=2100-01-01T01:00:00%2B01:00", status=200,
            checks=[objects_are([])]),
        Req("since=0 is the whole log", "GET", A + f"?since=0&name={h}&limit=1", status=200,
            checks=[t("one entry", "expect(B.objects.length).to.equal(1)")]),
        Req("limit=4: first page", "GET", since + "&limit=4", status=200,
            checks=[t("the first four", f"expect({page_ids}).to.deep.equal({ids(0, 4)})"),
                    t("next is a cursor", "expect(B.next).to.be.a('string').and.not.empty; setv('actNext', encodeURIComponent(B.next))")]),
        Req("limit=4: second page", "GET", since + "&limit=4&cursor={{actNext}}", status=200,
            checks=[t("the next four", f"expect({page_ids}).to.deep.equal({ids(4, 8)})"),
                    t("next is a cursor", "expect(B.next).to.be.a('string').and.not.empty; setv('actNext', encodeURIComponent(B.next))")]),
        Req("limit=4: last page", "GET", since + "&limit=4&cursor={{actNext}}", status=200,
            checks=[t("the last two", f"expect({page_ids}).to.deep.equal({ids(8, 10)})"),
                    t("no next on the last page", "expect(B).to.not.have.property('next')")]),
        Req("limit=10 is one page without next", "GET", since + "&limit=10", status=200,
            checks=[seq(full), t("no next", "expect(B).to.not.have.property('next')")]),
        Req("limit=1000 is allowed", "GET", A + "?limit=1000", status=200,
            checks=[t("objects is a list", "expect(B.objects).to.be.an('array').that.is.not.empty")]),
        Req("since=garbage gives 400", "GET", A + "?since=yesterday", status=400, checks=[has_error()]),
        Req("limit=0 gives 400", "GET", A + "?limit=0", status=400, checks=[has_error()]),
        Req("limit=1001 gives 400", "GET", A + "?limit=1001", status=400, checks=[has_error()]),
        Req("limit=abc gives 400", "GET", A + "?limit=abc", status=400, checks=[has_error()]),
        Req("cursor without limit gives every older entry", "GET", since + "&cursor={{actNext}}", status=200,
            checks=[t("the last two", f"expect({page_ids}).to.deep.equal({ids(8, 10)})"),
                    t("no next without limit", "expect(B).to.not.have.property('next')")]),
        Req("cursor=garbage gives 400", "GET", A + "?limit=2&cursor=garbage", status=400, checks=[has_error()]),
    ]


# --------------------------------------------------------------------------
# Self-service: API keys, registration, agent config, tickets (CONTRACT section 7)
#
# Failed key checks are throttled per client address: 10 free, then a wait.
# Each tool sends 2 invalid keys per run (1 in 13-keys, 1 in 14-self-service),
# so both tools run twice against one server stay at 8. Refusals that are
# not key failures (400, 403 "not for agents", 409, 422) do not count.

HEX64 = "/^[0-9a-f]{64}$/"
RFC3339 = "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?(Z|[+-]\\d\\d:\\d\\d)$/"
META = ["created_at", "object_name", "object_type", "uses"]
META_LIMITS = ["created_at", "expires_at", "max_uses", "object_name", "object_type", "uses"]
SELF = "self-service (127.0.0.1)"
REG = "/director/self-service/register-host"
AGENT = "/director/self-service/agent-config"
SELF_TICKET = "/director/self-service/ticket"


def K(name):
    return f"/director/host/api-key?name={name}"


def TK(name):
    return f"/director/host/ticket?name={name}"


def keys_are(lst):
    return t(f"keys are exactly {', '.join(lst)}", f"expect(Object.keys(B).sort()).to.deep.equal({js(sorted(lst))})")


def new_key(var, differs=()):
    code = f"expect(B.api_key).to.be.a('string').that.matches({HEX64}); "
    code += "".join(f"expect(B.api_key).to.not.equal(getv({js(v)})); " for v in differs)
    return t(f"api_key is 64 hex digits, remembered as {var}", code + f"setv({js(var)}, B.api_key)")


def body_key(var, differs=()):
    """The body is a host key (a JSON string, or the bare text)."""
    code = f"expect(B).to.be.a('string').that.matches({HEX64}); "
    code += "".join(f"expect(B).to.not.equal(getv({js(v)})); " for v in differs)
    return t(f"the body is a new host key, remembered as {var}", code + f"setv({js(var)}, B)")


def same_key(var):
    return t(f"the body is the same key {var}", f"expect(B).to.equal(getv({js(var)}))")


def no_key(*vs):
    """None of the remembered keys (nor an api_key property) in the body."""
    code = "var j = typeof B === 'string' ? B : JSON.stringify(B); expect(j).to.not.include('api_key'); "
    code += "".join(f"var k{i} = getv({js(v)}); expect(k{i}).to.be.a('string').that.matches({HEX64}); "
                    f"expect(j).to.not.include(k{i}); " for i, v in enumerate(vs))
    return t("no key in the body: " + ", ".join(vs), code)


def created_at():
    return t("created_at is an RFC 3339 time", f"expect(B.created_at).to.be.a('string').that.matches({RFC3339})")


def text_ct():
    return t("Content-Type is text/plain", "expect(H('content-type')).to.match(/^text\\/plain/)")


def text_error():
    return t("the body is ERROR: message", "expect(B).to.be.a('string'); expect(B.indexOf('ERROR: ')).to.equal(0); "
             "expect(B.trim().length).to.be.above(7)")


def bearer(var):
    return {"Authorization": "Bearer {{" + var + "}}"}


def seq_entries(expected, author=None):
    checks = [t("entries in order (newest first)",
                "expect(B.objects.map(function (e) { return [e.action, e.object_type, e.object_name]; }))"
                f".to.deep.equal({js(expected)})")]
    if author:
        checks.append(t(f"all by {author}", f"B.objects.forEach(function (e) {{ expect(e.author).to.equal({js(author)}); }})"))
    return checks


def keys(P):
    tpl, host, plain, node = f"{P}key-tpl", f"{P}key-host", f"{P}key-plain", f"{P}key-node"
    missing, rd = f"{P}key-missing", f"{P}key-reader"
    RD = (rd, f"{P}key-reader-pw")
    H = lambda n: f"/director/host?name={n}"
    since = "/director/activity?since={{keySince}}"
    tpl_body = {"object_name": tpl, "object_type": "template", "has_agent": True}
    host_body = {"object_name": host, "object_type": "object", "address": "127.0.2.60", "has_agent": True}
    kf = forbidden("keys")
    return [
        cleanup("host", node), cleanup("host", host), cleanup("host", plain), cleanup("host", tpl), user_cleanup(rd),
        Req("template for agents", "POST", "/director/host", body=tpl_body, status=201, checks=[body_is(tpl_body)]),
        Req("remember when the folder started", "GET", f"/director/activity?name={tpl}&limit=1", status=200,
            checks=[t("the create entry", "expect(B.objects[0].action).to.equal('create'); "
                      "setv('keySince', B.objects[0].time)")]),
        Req("host with an agent", "POST", "/director/host", body=host_body, status=201, checks=[body_is(host_body)]),
        Req("host without an agent", "POST", "/director/host", body={"object_name": plain}, status=201,
            checks=[field("object_name", plain)]),
        Req("no key yet gives 404", "GET", K(tpl), status=404, checks=[has_error()]),
        Req("create a template key", "POST", K(tpl), body={}, status=200,
            checks=[keys_are(["api_key", *META]), new_key("keyTpl1"), field("object_name", tpl),
                    field("object_type", "template"), field("uses", 0), created_at(), json_ct(),
                    t("remember created_at", "setv('keyCreated1', B.created_at)")]),
        Req("GET the key's metadata, never the key", "GET", K(tpl), status=200,
            checks=[keys_are(META), field("object_name", tpl), field("object_type", "template"), field("uses", 0),
                    t("the same created_at", "expect(B.created_at).to.equal(getv('keyCreated1'))"),
                    no_key("keyTpl1"), json_ct()]),
        Req("HEAD the key's metadata", "HEAD", K(tpl), status=200, checks=[]),
        Req("the template never shows its key", "GET", H(tpl) + "&withNull=1", status=200,
            checks=[field("object_name", tpl), field("has_agent", True), no_key("keyTpl1")]),
        Req("replace it with limits", "POST", K(tpl), body={"expires_in": 3600, "max_uses": 2}, status=200,
            checks=[keys_are(["api_key", *META_LIMITS]), new_key("keyTpl2", differs=["keyTpl1"]),
                    field("max_uses", 2), field("uses", 0), created_at(),
                    t("expires_at is created_at + 3600 s",
                      "expect(B.expires_at).to.be.a('string'); "
                      "expect(Date.parse(B.expires_at) - Date.parse(B.created_at)).to.be.within(3599000, 3601000)"),
                    t("remember the times", "setv('keyCreated2', B.created_at); setv('keyExpires', B.expires_at)")]),
        Req("GET shows the limits", "GET", K(tpl), status=200,
            checks=[keys_are(META_LIMITS), field("max_uses", 2), field("uses", 0),
                    t("the same times", "expect(B.created_at).to.equal(getv('keyCreated2')); "
                      "expect(B.expires_at).to.equal(getv('keyExpires'))"),
                    no_key("keyTpl1", "keyTpl2")]),
        # invalid key 1 of 2 per tool
        Req("the replaced key no longer registers (403)", "POST", REG + f"?name={node}&key={{{{keyTpl1}}}}",
            auth=NOAUTH, status=403, checks=[error_is("Invalid API key"), no_key("keyTpl1", "keyTpl2")]),
        Req("no host was registered with it", "GET", H(node), status=404, checks=[has_error()]),
        Req("max_uses 0 gives 422", "POST", K(tpl), body={"max_uses": 0}, status=422, checks=[has_error()]),
        Req("max_uses 2.5 gives 422", "POST", K(tpl), body={"max_uses": 2.5}, status=422, checks=[has_error()]),
        Req("expires_in soon gives 422", "POST", K(tpl), body={"expires_in": "soon"}, status=422,
            checks=[has_error()]),
        Req("expires_in -5 gives 422", "POST", K(tpl), body={"expires_in": -5}, status=422, checks=[has_error()]),
        Req("an unknown limit gives 422", "POST", K(tpl), body={"lifetime": 60}, status=422,
            checks=[error_is('Trying to set invalid key "lifetime"')]),
        Req("max_uses on a host key gives 422", "POST", K(host), body={"max_uses": 1}, status=422,
            checks=[has_error()]),
        Req("expires_in on a host key gives 422", "POST", K(host), body={"expires_in": 60}, status=422,
            checks=[has_error()]),
        Req("the refused host key was not created", "GET", K(host), status=404, checks=[has_error()]),
        Req("the refused limits kept the template key", "GET", K(tpl), status=200,
            checks=[keys_are(META_LIMITS), field("max_uses", 2), field("uses", 0),
                    t("the same times", "expect(B.created_at).to.equal(getv('keyCreated2')); "
                      "expect(B.expires_at).to.equal(getv('keyExpires'))")]),
        Req("POST key of an unknown object gives 404", "POST", K(missing), body={}, status=404, checks=[has_error()]),
        Req("GET key of an unknown object gives 404", "GET", K(missing), status=404, checks=[has_error()]),
        Req("DELETE key of an unknown object gives 404", "DELETE", K(missing), status=404, checks=[has_error()]),
        Req("POST key without name gives 400", "POST", "/director/host/api-key", body={}, status=400,
            checks=[has_error()]),
        Req("GET key without name gives 400", "GET", "/director/host/api-key", status=400, checks=[has_error()]),
        Req("DELETE key without name gives 400", "DELETE", "/director/host/api-key", status=400,
            checks=[has_error()]),
        Req("a key needs credentials (401)", "POST", K(tpl), auth=NOAUTH, body={}, status=401,
            checks=unauthorized("Authentication required")),
        Req("a ticket needs credentials (401)", "GET", TK(host), auth=NOAUTH, status=401,
            checks=unauthorized("Authentication required")),
        Req("create a host key", "POST", K(host), body={}, status=200,
            checks=[keys_are(["api_key", *META]), new_key("keyHost1", differs=["keyTpl1", "keyTpl2"]),
                    field("object_name", host), field("object_type", "object"), field("uses", 0)]),
        Req("replace the host key (no body)", "POST", K(host), status=200,
            checks=[keys_are(["api_key", *META]), new_key("keyHost2", differs=["keyHost1"])]),
        Req("the new host key reads the agent config", "GET", AGENT, auth=NOAUTH, headers=bearer("keyHost2"),
            status=200, checks=[field("host", host), field("agent_port", 7446), no_key("keyHost1", "keyHost2")]),
        Req("GET the host key's metadata", "GET", K(host), status=200,
            checks=[keys_are(META), field("object_type", "object"), field("uses", 0), no_key("keyHost1", "keyHost2")]),
        Req("the host never shows its key", "GET", H(host), status=200,
            checks=[body_is(host_body), no_key("keyHost1", "keyHost2")]),
        Req("ticket of the agent host", "GET", TK(host), status=200,
            checks=[t("a 40 hex digit JSON string", "expect(B).to.be.a('string').that.matches(/^[0-9a-f]{40}$/); "
                      "setv('keyTicket', B)"), json_ct()]),
        Req("the ticket is stable", "GET", TK(host), status=200, checks=[same_key("keyTicket")]),
        Req("the host's own ticket with ?key=", "GET", SELF_TICKET + "?key={{keyHost2}}", auth=NOAUTH, status=200,
            checks=[same_key("keyTicket"), json_ct()]),
        Req("the host's own ticket with Bearer", "GET", SELF_TICKET, auth=NOAUTH, headers=bearer("keyHost2"),
            status=200, checks=[same_key("keyTicket")]),
        Req("ticket of a host without agent gives 404", "GET", TK(plain), status=404, checks=[has_error()]),
        Req("ticket of a template gives 404", "GET", TK(tpl), status=404, checks=[has_error()]),
        Req("ticket of an unknown host gives 404", "GET", TK(missing), status=404, checks=[has_error()]),
        Req("ticket without name gives 400", "GET", "/director/host/ticket", status=400, checks=[has_error()]),
        Req("a reader", "POST", "/director/user", body={"object_name": rd, "password": RD[1], "role": "reader"},
            status=201, checks=[field("role", "reader")]),
        Req("reader creating a key gives 403", "POST", K(tpl), auth=RD, body={}, status=403, checks=[kf]),
        Req("reader reading a key gives 403", "GET", K(tpl), auth=RD, status=403, checks=[kf]),
        Req("reader revoking a key gives 403", "DELETE", K(tpl), auth=RD, status=403, checks=[kf]),
        Req("reader reading a ticket gives 403", "GET", TK(host), auth=RD, status=403, checks=[kf]),
        Req("the reader changed no key", "GET", K(tpl), status=200,
            checks=[t("the same key", "expect(B.created_at).to.equal(getv('keyCreated2'))"), field("uses", 0)]),
        Req("revoke the template key", "DELETE", K(tpl), status=200,
            checks=[keys_are(META_LIMITS), field("object_name", tpl), field("max_uses", 2), field("uses", 0),
                    no_key("keyTpl1", "keyTpl2")]),
        Req("a revoked key is gone", "GET", K(tpl), status=404, checks=[has_error()]),
        Req("revoking again gives 404", "DELETE", K(tpl), status=404, checks=[has_error()]),
        Req("activity of the template key", "GET", since + f"&name={tpl}", status=200,
            checks=[*seq_entries([["revoke-key", "host", tpl], ["create-key", "host", tpl],
                                  ["create-key", "host", tpl], ["create", "host", tpl]]),
                    t("revoke-key has before, create-key after",
                      "var o = B.objects; expect(o[0]).to.have.property('before'); "
                      "expect(o[0]).to.not.have.property('after'); expect(o[1]).to.have.property('after'); "
                      "expect(o[1]).to.not.have.property('before'); expect(o[1].after.max_uses).to.equal(2)"),
                    no_key("keyTpl1", "keyTpl2")]),
        Req("the key entries are the collection user's", "GET", since + f"&name={tpl}&author={{{{user}}}}",
            status=200, checks=[t("four entries", "expect(B.objects.length).to.equal(4)")]),
        Req("activity of the host key", "GET", since + f"&name={host}", status=200,
            checks=[*seq_entries([["create-key", "host", host], ["create-key", "host", host],
                                  ["create", "host", host]]), no_key("keyHost1", "keyHost2")]),
        Req("filter action=create-key", "GET", since + "&action=create-key", status=200,
            checks=[*seq_entries([["create-key", "host", host], ["create-key", "host", host],
                                  ["create-key", "host", tpl], ["create-key", "host", tpl]]),
                    no_key("keyTpl1", "keyTpl2", "keyHost1", "keyHost2")]),
        Req("DELETE the reader", "DELETE", U(rd), status=200, checks=[field("object_name", rd)]),
        Req("DELETE the agent host (and its key)", "DELETE", H(host), status=200, checks=[body_is(host_body)]),
        Req("DELETE the host without agent", "DELETE", H(plain), status=200, checks=[field("object_name", plain)]),
        Req("DELETE the template", "DELETE", H(tpl), status=200, checks=[body_is(tpl_body)]),
    ]


def selfservice(P):
    agents, noagent, child = f"{P}ss-agents", f"{P}ss-noagent", f"{P}ss-child"
    n1, n2, adopt, ind = f"{P}ss-node1", f"{P}ss-node2.example.com", f"{P}ss-adopt", f"{P}ss-indirect"
    n1r = f"{P}ss-node1-renamed"
    H = lambda n: f"/director/host?name={n}"
    since = "/director/activity?since={{ssSince}}"
    txt = {"X-Director-Accept": "text/plain"}
    agents_body = {"object_name": agents, "object_type": "template", "has_agent": True, "vars": {"role": "agent"}}
    noagent_body = {"object_name": noagent, "object_type": "template", "vars": {"role": "none"}}
    child_body = {"object_name": child, "object_type": "template", "imports": [agents], "agent_port": 7450}
    adopt_body = {"object_name": adopt, "object_type": "object", "imports": [agents], "address": "127.0.2.110"}
    ind_body = {"object_name": ind, "object_type": "object", "imports": [child]}
    n1_body = {"object_name": n1, "object_type": "object", "imports": [agents], "display_name": "Node One",
               "address": "127.0.2.101"}
    uses = lambda n: t(f"uses is {n}, max_uses 5", f"expect(B.uses).to.equal({n}); expect(B.max_uses).to.equal(5)")
    return [
        cleanup("host", n1), cleanup("host", n1r), cleanup("host", n2), cleanup("host", adopt), cleanup("host", ind),
        cleanup("host", child), cleanup("host", agents), cleanup("host", noagent),
        Req("template for agents", "POST", "/director/host", body=agents_body, status=201,
            checks=[body_is(agents_body)]),
        Req("remember when the folder started", "GET", f"/director/activity?name={agents}&limit=1", status=200,
            checks=[t("the create entry", "expect(B.objects[0].action).to.equal('create'); "
                      "setv('ssSince', B.objects[0].time)")]),
        Req("template not for agents", "POST", "/director/host", body=noagent_body, status=201,
            checks=[body_is(noagent_body)]),
        Req("template importing the agents template", "POST", "/director/host", body=child_body, status=201,
            checks=[body_is(child_body)]),
        Req("host importing the template directly, without key", "POST", "/director/host", body=adopt_body,
            status=201, checks=[body_is(adopt_body)]),
        Req("host importing it indirectly, without key", "POST", "/director/host", body=ind_body, status=201,
            checks=[body_is(ind_body)]),
        Req("template key with limits", "POST", K(agents), body={"expires_in": 600, "max_uses": 5}, status=200,
            checks=[keys_are(["api_key", *META_LIMITS]), new_key("ssKey"), uses(0)]),
        Req("key of the template not for agents", "POST", K(noagent), body={}, status=200,
            checks=[keys_are(["api_key", *META]), new_key("ssNoKey", differs=["ssKey"])]),
        Req("the template never shows its key", "GET", H(agents), status=200,
            checks=[body_is(agents_body), no_key("ssKey")]),
        Req("no name gives 400", "POST", REG + "?key={{ssKey}}", auth=NOAUTH, body={}, status=400,
            checks=[has_error(), no_key("ssKey")]),
        Req("no key gives 400", "POST", REG + f"?name={n1}", auth=NOAUTH, body={}, status=400,
            checks=[has_error()]),
        Req("empty name and key give 400", "POST", REG + "?name=&key=", auth=NOAUTH, status=400,
            checks=[has_error()]),
        Req("a template not for agents gives 403", "POST", REG + f"?name={n1}&key={{{{ssNoKey}}}}", auth=NOAUTH,
            body={}, status=403, checks=[error_contains("is not for agents"), error_contains(noagent)]),
        Req("an invalid host name gives 422", "POST", REG + "?key={{ssKey}}", auth=NOAUTH,
            body={"name": f"{P}ss bad name"}, status=422, checks=[has_error()]),
        Req("a template's name gives 422", "POST", REG + f"?name={child}&key={{{{ssKey}}}}", auth=NOAUTH,
            body={}, status=422, checks=[has_error()]),
        Req("nothing was created", "GET", H(n1), status=404, checks=[has_error()]),
        Req("the refusals used nothing", "GET", K(agents), status=200, checks=[uses(0)]),
        Req("register node1 (others and empty values ignored)", "POST", REG + f"?name={n1}&key={{{{ssKey}}}}",
            auth=NOAUTH,
            body={"display_name": "Node One", "address": "127.0.2.101", "address6": "", "agent_port": None,
                  "vars": {"x": "y"}, "groups": ["g"], "has_agent": False},
            status=200, checks=[body_key("ssN1Key", differs=["ssKey"]), json_ct()]),
        Req("node1 imports the template", "GET", H(n1), status=200,
            checks=[body_is(n1_body), no_key("ssKey", "ssN1Key")]),
        Req("node1 resolved is an agent", "GET", H(n1) + "&resolved=1", status=200,
            checks=[field("has_agent", True), field("vars", {"role": "agent"}), no_key("ssKey", "ssN1Key")]),
        Req("the registration used the template key once", "GET", K(agents), status=200,
            checks=[uses(1), no_key("ssKey", "ssN1Key")]),
        Req("node1 has its own key", "GET", K(n1), status=200,
            checks=[keys_are(META), field("object_type", "object"), field("uses", 0), no_key("ssN1Key")]),
        Req("re-register node1 with its own key (Bearer)", "POST", REG + f"?name={n1}", auth=NOAUTH,
            headers=bearer("ssN1Key"), body={"address": "127.0.2.102"}, status=200, checks=[same_key("ssN1Key")]),
        Req("the re-registration applied the address", "GET", H(n1), status=200,
            checks=[body_is({**n1_body, "address": "127.0.2.102"})]),
        Req("re-register node1 unchanged with ?key=", "POST", REG + f"?name={n1}&key={{{{ssN1Key}}}}",
            auth=NOAUTH, body={"address": "127.0.2.102"}, status=200, checks=[same_key("ssN1Key")]),
        Req("re-registrations used nothing", "GET", K(agents), status=200, checks=[uses(1)]),
        Req("node1 again with the template key gives 409", "POST", REG + f"?name={n1}&key={{{{ssKey}}}}",
            auth=NOAUTH, body={}, status=409, checks=[has_error(), no_key("ssKey")]),
        Req("as text: 409 is ERROR: message", "POST", REG + f"?name={n1}&key={{{{ssKey}}}}", auth=NOAUTH,
            headers=txt, status=409, checks=[text_ct(), text_error()]),
        Req("as text: 400 is ERROR: message", "POST", REG + "?key={{ssKey}}", auth=NOAUTH, headers=txt,
            status=400, checks=[text_ct(), text_error()]),
        Req("register node2 with Bearer, as text", "POST", REG + f"?name={n2}", auth=NOAUTH,
            headers={**bearer("ssKey"), **txt}, body={"address6": "2001:db8::2", "agent_port": "7460"},
            status=200, checks=[text_ct(), body_key("ssN2Key", differs=["ssKey", "ssN1Key"])]),
        Req("node2 was created", "GET", H(n2), status=200,
            checks=[body_is({"object_name": n2, "object_type": "object", "imports": [agents],
                             "address6": "2001:db8::2", "agent_port": 7460}), no_key("ssKey", "ssN2Key")]),
        Req("adopt the host importing the template (name and key in the body)", "POST", REG, auth=NOAUTH,
            body={"name": adopt, "key": "{{ssKey}}", "display_name": "Adopted"}, status=200,
            checks=[body_key("ssAdoptKey", differs=["ssKey", "ssN1Key", "ssN2Key"])]),
        Req("the adopted host kept its imports", "GET", H(adopt), status=200,
            checks=[body_is({**adopt_body, "display_name": "Adopted"})]),
        Req("a host importing the template indirectly gives 409", "POST", REG + f"?name={ind}&key={{{{ssKey}}}}",
            auth=NOAUTH, body={"address": "127.0.2.111"}, status=409, checks=[has_error()]),
        Req("the refused host is unchanged", "GET", H(ind), status=200, checks=[body_is(ind_body)]),
        Req("the refused host has no key", "GET", K(ind), status=404, checks=[has_error()]),
        Req("three registrations, three uses", "GET", K(agents), status=200,
            checks=[uses(3), no_key("ssKey", "ssN1Key", "ssN2Key", "ssAdoptKey")]),
        Req("agent config of node1 (Bearer)", "GET", AGENT, auth=NOAUTH, headers=bearer("ssN1Key"), status=200,
            checks=[keys_are(["agent_port", "delivery", "host", "host_id", "signing_key"]), field("host", n1),
                    field("agent_port", 7446),
                    t("host_id is a number", "expect(B.host_id).to.be.a('number'); setv('ssHostId', String(B.host_id))"),
                    t("signing_key: ed25519, 32 bytes in base64, sha256 fingerprint",
                      "var k = B.signing_key; expect(Object.keys(k).sort()).to.deep.equal(['algorithm', 'fingerprint', 'public_key']); "
                      "expect(k.algorithm).to.equal('ed25519'); "
                      "expect(k.public_key).to.match(/^[A-Za-z0-9+\\/]{43}=$/); "
                      "expect(k.fingerprint).to.match(/^sha256:[0-9a-f]{64}$/); "
                      "setv('ssPublicKey', k.public_key); setv('ssFingerprint', k.fingerprint)"),
                    no_key("ssN1Key"), json_ct()]),
        Req("agent config of node1 (?key=)", "GET", AGENT + "?key={{ssN1Key}}", auth=NOAUTH, status=200,
            checks=[field("host", n1),
                    t("the same host_id and signing key", "expect(String(B.host_id)).to.equal(getv('ssHostId')); "
                      "expect(B.signing_key.public_key).to.equal(getv('ssPublicKey')); "
                      "expect(B.signing_key.fingerprint).to.equal(getv('ssFingerprint'))")]),
        Req("agent config of node2: its own port", "GET", AGENT + "?key={{ssN2Key}}", auth=NOAUTH, status=200,
            checks=[field("host", n2), field("agent_port", 7460),
                    t("another host_id, the same signing key", "expect(String(B.host_id)).to.not.equal(getv('ssHostId')); "
                      "expect(B.signing_key.public_key).to.equal(getv('ssPublicKey')); "
                      "expect(B.signing_key.fingerprint).to.equal(getv('ssFingerprint'))")]),
        # invalid key 2 of 2 per tool
        Req("agent config with the template key gives 403", "GET", AGENT, auth=NOAUTH, headers=bearer("ssKey"),
            status=403, checks=[has_error(), no_key("ssKey")]),
        Req("agent config without key gives 400", "GET", AGENT, auth=NOAUTH, status=400, checks=[has_error()]),
        Req("ticket of node1 (has_agent from the template)", "GET", TK(n1), status=200,
            checks=[t("a 40 hex digit JSON string", "expect(B).to.be.a('string').that.matches(/^[0-9a-f]{40}$/); "
                      "setv('ssTicket', B)")]),
        Req("node1's own ticket", "GET", SELF_TICKET, auth=NOAUTH, headers=bearer("ssN1Key"), status=200,
            checks=[same_key("ssTicket")]),
        Req("activity of node1", "GET", since + f"&name={n1}", status=200,
            checks=[*seq_entries([["register", "host", n1], ["register", "host", n1]], author=SELF),
                    t("the creation, then the address change",
                      "var o = B.objects; expect(o[1]).to.not.have.property('before'); "
                      f"expect(o[1].after).to.deep.equal({js(n1_body)}); "
                      "expect(o[0].before.address).to.equal('127.0.2.101'); "
                      "expect(o[0].after.address).to.equal('127.0.2.102')"),
                    no_key("ssKey", "ssN1Key")]),
        Req("activity of the adopted host", "GET", since + f"&name={adopt}", status=200,
            checks=[*seq_entries([["register", "host", adopt], ["create", "host", adopt]]),
                    t("adopted by self-service", f"expect(B.objects[0].author).to.equal({js(SELF)}); "
                      "expect(B.objects[0].after.display_name).to.equal('Adopted')"),
                    no_key("ssKey", "ssAdoptKey")]),
        Req("filter action=register by self-service", "GET",
            since + "&action=register&author=self-service%20(127.0.0.1)", status=200,
            checks=[*seq_entries([["register", "host", adopt], ["register", "host", n2], ["register", "host", n1],
                                  ["register", "host", n1]], author=SELF),
                    no_key("ssKey", "ssN1Key", "ssN2Key", "ssAdoptKey")]),
        Req("activity of the template key", "GET", since + f"&name={agents}", status=200,
            checks=[*seq_entries([["create-key", "host", agents], ["create", "host", agents]]),
                    no_key("ssKey")]),
        Req("revoke the template key", "DELETE", K(agents), status=200,
            checks=[keys_are(META_LIMITS), uses(3), no_key("ssKey")]),
        Req("node1 re-registers after the template key was revoked", "POST", REG + f"?name={n1}", auth=NOAUTH,
            headers=bearer("ssN1Key"), status=200, checks=[same_key("ssN1Key")]),
        Req("rename node1", "POST", H(n1), body={"object_name": n1r}, status=200,
            checks=[field("object_name", n1r)]),
        Req("node1 re-registers under its old name and learns the new one", "POST", REG + f"?name={n1}",
            auth=NOAUTH, headers=bearer("ssN1Key"), status=200,
            checks=[same_key("ssN1Key"), t("X-Steward-Host is the current name",
                                            f"expect(H('x-steward-host')).to.equal({js(n1r)})")]),
        Req("and under its new name", "POST", REG + f"?name={n1r}", auth=NOAUTH, headers=bearer("ssN1Key"),
            status=200, checks=[same_key("ssN1Key")]),
        Req("no second host under the old name", "GET", H(n1), status=404, checks=[has_error()]),
        Req("rename node1 back", "POST", H(n1r), body={"object_name": n1}, status=200,
            checks=[field("object_name", n1)]),
        Req("revoke the other template key", "DELETE", K(noagent), status=200,
            checks=[keys_are(META), field("object_name", noagent)]),
        Req("DELETE node1", "DELETE", H(n1), status=200, checks=[field("object_name", n1)]),
        Req("DELETE node2", "DELETE", H(n2), status=200, checks=[field("object_name", n2)]),
        Req("DELETE the adopted host", "DELETE", H(adopt), status=200, checks=[field("object_name", adopt)]),
        Req("DELETE the refused host", "DELETE", H(ind), status=200, checks=[body_is(ind_body)]),
        Req("DELETE the child template", "DELETE", H(child), status=200, checks=[body_is(child_body)]),
        Req("DELETE the agents template", "DELETE", H(agents), status=200, checks=[body_is(agents_body)]),
        Req("DELETE the template not for agents", "DELETE", H(noagent), status=200, checks=[body_is(noagent_body)]),
        Req("nothing of this folder is left", "GET", f"/director/hosts?q={P}ss-&count=1", status=200,
            checks=[names([]), field("total", 0)]),
    ]


def allowlists(P):
    st, up, disk, off = f"{P}al-st", f"{P}al-uptime", f"{P}al-disk", f"{P}al-off"
    agents, web, dis, plain = f"{P}al-agents", f"{P}al-web", f"{P}al-disabled", f"{P}al-plain"
    H = lambda n: f"/director/host?name={n}"
    S = lambda n: f"/director/script?name={n}"
    A = lambda n: f"/director/host/allowlist?name={n}"
    keys = ["address", "agent_port", "allowlist", "checksum", "confirmed", "delivery", "host", "host_id",
            "in_deploy_set"]
    web_body = {"object_name": web, "object_type": "object", "imports": [agents], "address": "127.0.0.11",
                "scripts": [disk, off]}
    disk_entry = {"name": disk, "command": "/usr/lib/nagios/plugins/check_disk", "arguments": ["-w", "10%"],
                  "timeout": None}
    up_entry = lambda timeout: {"name": up, "command": "/usr/bin/uptime", "arguments": None, "timeout": timeout}

    def preview(name, in_set, scripts, ck_var=None):
        checks = [
            t("exactly the preview keys", f"expect(Object.keys(B).sort()).to.deep.equal({js(keys)})"),
            field("host", name), field("in_deploy_set", in_set), is_null("confirmed"),
            t("host_id is a number", "expect(B.host_id).to.be.a('number')"),
            t("checksum is 64 hex digits", "expect(B.checksum).to.be.a('string').that.matches(/^[0-9a-f]{64}$/)"),
            t("the allowlist is exact",
              f"expect(B.allowlist).to.deep.equal({{host_id: B.host_id, host: {js(name)}, scripts: {js(scripts)}}})"),
            json_ct(),
        ]
        if ck_var:
            checks.append(t(f"remember the checksum as {ck_var}", f"setv({js(ck_var)}, B.checksum)"))
        return checks

    def pending_is(entries, ck_var):
        exp = js(entries)
        return [
            t("config checksum is 64 hex digits", "expect(B.checksum).to.be.a('string').that.matches(/^[0-9a-f]{64}$/)"),
            t("every entry has the pending keys",
              "B.hosts.forEach(function (h) { expect(Object.keys(h).sort()).to.deep.equal("
              "['added', 'checksum', 'confirmed_checksum', 'host', 'host_id', 'removed']); })"),
            t("this folder's hosts are exactly the agent host",
              f"var mine = B.hosts.filter(function (h) {{ return h.host.indexOf({js(P + 'al-')}) === 0; }}); "
              "expect(mine.map(function (h) { return {host: h.host, confirmed_checksum: h.confirmed_checksum, "
              f"added: h.added, removed: h.removed}}; }})).to.deep.equal({exp}); "
              f"expect(mine[0].checksum).to.equal(getv({js(ck_var)}))"),
        ]

    pend = [{"host": web, "confirmed_checksum": None, "added": [disk, up], "removed": []}]
    return [
        cleanup("host", web), cleanup("host", dis), cleanup("host", plain), cleanup("host", agents),
        cleanup("script", up), cleanup("script", disk), cleanup("script", off), cleanup("script", st),
        Req("script template with a timeout", "POST", "/director/script",
            body={"object_name": st, "object_type": "template", "timeout": 30}, status=201,
            checks=[field("timeout", 30)]),
        Req("script importing the template", "POST", "/director/script",
            body={"object_name": up, "imports": [st], "command": "/usr/bin/uptime"}, status=201,
            checks=[field("imports", [st])]),
        Req("script with arguments", "POST", "/director/script",
            body={"object_name": disk, "command": "/usr/lib/nagios/plugins/check_disk", "arguments": ["-w", "10%"]},
            status=201, checks=[field("arguments", ["-w", "10%"])]),
        Req("disabled script", "POST", "/director/script",
            body={"object_name": off, "command": "/bin/true", "disabled": True}, status=201,
            checks=[field("disabled", True)]),
        Req("agent host template listing one script", "POST", "/director/host",
            body={"object_name": agents, "object_type": "template", "has_agent": True, "scripts": [up]},
            status=201, checks=[field("scripts", [up])]),
        Req("host importing it, listing more scripts", "POST", "/director/host", body=web_body, status=201,
            checks=[body_is(web_body)]),
        Req("disabled host importing it", "POST", "/director/host",
            body={"object_name": dis, "imports": [agents], "disabled": True, "scripts": [disk]}, status=201,
            checks=[field("disabled", True)]),
        Req("host without agent", "POST", "/director/host",
            body={"object_name": plain, "scripts": [up, disk]}, status=201, checks=[field("scripts", [up, disk])]),
        Req("preview of the agent host", "GET", A(web), status=200,
            checks=[*preview(web, True, [disk_entry, up_entry(30)], "alCk"), field("address", "127.0.0.11"),
                    field("agent_port", 7446)]),
        Req("preview of the disabled host is empty", "GET", A(dis), status=200,
            checks=preview(dis, False, [])),
        Req("preview of the host without agent is empty", "GET", A(plain), status=200,
            checks=preview(plain, False, [])),
        Req("preview of a template gives 404", "GET", A(agents), status=404, checks=[has_error()]),
        Req("preview of an unknown host gives 404", "GET", A(f"{P}al-nope"), status=404, checks=[has_error()]),
        Req("preview without name gives 400", "GET", "/director/host/allowlist", status=400, checks=[has_error()]),
        Req("pending lists the agent host only", "GET", "/director/config/pending", status=200,
            checks=[*pending_is(pend, "alCk"), json_ct()]),
        Req("change the script template's timeout", "POST", S(st), body={"timeout": 60}, status=200,
            checks=[field("timeout", 60)]),
        Req("the preview follows, with another checksum", "GET", A(web), status=200,
            checks=[*preview(web, True, [disk_entry, up_entry(60)]),
                    t("checksum differs from alCk", "expect(B.checksum).to.not.equal(getv('alCk'))"),
                    t("remember the checksum as alCk2", "setv('alCk2', B.checksum)")]),
        Req("pending follows", "GET", "/director/config/pending", status=200,
            checks=pending_is(pend, "alCk2")),
        Req("DELETE the agent host", "DELETE", H(web), status=200, checks=[body_is(web_body)]),
        Req("DELETE the disabled host", "DELETE", H(dis), status=200, checks=[field("object_name", dis)]),
        Req("DELETE the host without agent", "DELETE", H(plain), status=200, checks=[field("object_name", plain)]),
        Req("DELETE the host template", "DELETE", H(agents), status=200, checks=[field("object_name", agents)]),
        Req("DELETE the script importing the template", "DELETE", S(up), status=200, checks=[field("object_name", up)]),
        Req("DELETE the script with arguments", "DELETE", S(disk), status=200, checks=[field("object_name", disk)]),
        Req("DELETE the disabled script", "DELETE", S(off), status=200, checks=[field("object_name", off)]),
        Req("DELETE the script template", "DELETE", S(st), status=200, checks=[field("object_name", st)]),
        Req("pending holds nothing of this folder", "GET", "/director/config/pending", status=200,
            checks=[t("no host of this folder",
                      f"expect(B.hosts.filter(function (h) {{ return h.host.indexOf({js(P + 'al-')}) === 0; }})).to.deep.equal([])")]),
        Req("nothing of this folder is left", "GET", f"/director/hosts?q={P}al-&count=1", status=200,
            checks=[names([]), field("total", 0)]),
    ]


def deploy(P):
    sc, host, rd = f"{P}dep-script", f"{P}dep-agent", f"{P}dep-reader"
    RD = (rd, f"{P}dep-reader-pw")
    H = lambda n: f"/director/host?name={n}"
    S = lambda n: f"/director/script?name={n}"
    mine = (f"var mine = B.hosts.filter(function (h) {{ return h.host === {js(host)}; }}); "
            "expect(mine.length).to.equal(1)")
    count_keys = js(["deployed", "failed", "pending", "skipped", "unreachable"])
    return [
        cleanup("host", host), cleanup("script", sc), user_cleanup(rd),
        Req("list of deployments", "GET", "/director/config/deployments", status=200,
            checks=[t("objects is an array", "expect(B.objects).to.be.an('array')"),
                    t("each has id, checksum, author, status",
                      "B.objects.forEach(function (o) { expect(o).to.include.all.keys('id', 'checksum', 'author', 'status'); })"),
                    t("newest first", "for (var i = 1; i < B.objects.length; i++) { expect(B.objects[i - 1].id).to.be.above(B.objects[i].id); }"),
                    json_ct()]),
        Req("deployment status", "GET", "/director/config/deployment-status", status=200,
            checks=[t("the status keys", "expect(B).to.include.all.keys('active_configuration', 'configs', 'activities')"),
                    t("the active configuration keys",
                      "expect(B.active_configuration).to.include.all.keys('config', 'stage_name', 'activity')"),
                    json_ct()]),
        Req("script to deploy", "POST", "/director/script", body={"object_name": sc, "command": "/bin/true"},
            status=201, checks=[field("object_name", sc)]),
        Req("agent host on the discard port", "POST", "/director/host",
            body={"object_name": host, "has_agent": True, "address": "127.0.0.1", "agent_port": 9, "scripts": [sc]},
            status=201, checks=[field("agent_port", 9), field("scripts", [sc])]),
        Req("pending lists the agent host", "GET", "/director/config/pending", status=200,
            checks=[t("the host is listed, its script added",
                      mine + "; expect(mine[0].added).to.deep.equal(" + js([sc]) + ")")]),
        Req("dry run: what a deploy would do", "POST", "/director/config/deploy?dry_run=1", body=[], status=200,
            checks=[t("the dry run keys", "expect(B).to.include.all.keys('checksum', 'status', 'scope', 'counts', 'hosts')"),
                    t("counts per action", "expect(B.counts).to.have.all.keys('update', 'revoke', 'skip')"),
                    t("the host would be updated with its script",
                      mine + "; expect(mine[0].action).to.equal('update'); expect(mine[0].delivery).to.equal('push'); "
                      "expect(mine[0].added).to.deep.equal([{name: " + js(sc) + ", command: '/bin/true', "
                      "arguments: null, timeout: null}]); expect(mine[0].removed).to.deep.equal([])"),
                    json_ct()]),
        Req("dry run of the hosts matching q", "POST", f"/director/config/deploy?dry_run=1&q={host}", body=[],
            status=200, checks=[t("only matching hosts", "expect(B.hosts.length).to.be.above(0); B.hosts.forEach("
                                  "function (h) { expect(h.host.toLowerCase()).to.include(" + js(host.lower()) + "); })")]),
        Req("a mistyped filter gives 400", "POST", f"/director/config/deploy?dry_run=1&var.name={host}", body=[],
            status=400, checks=[has_error()]),
        Req("a filter that matches no host gives 422", "POST", f"/director/config/deploy?dry_run=1&q={host}-none",
            body=[], status=422, checks=[has_error()]),
        Req("deploy to the hosts matching q and wait", "POST", f"/director/config/deploy?q={host}&wait=30", body=[],
            status=200, checks=[t("only matching hosts", "expect(B.hosts.length).to.be.above(0); B.hosts.forEach("
                                  "function (h) { expect(h.host.toLowerCase()).to.include(" + js(host.lower()) + "); })"),
                                t("the scope is the filter, or null when it matched the whole fleet",
                                  "expect(B.scope === null || B.scope === " + js("q=" + host.lower()) + ").to.equal(true)"),
                                t("the host is unreachable", mine + "; expect(mine[0].result).to.equal('unreachable')")]),
        Req("reader user", "POST", "/director/user", body={"object_name": rd, "password": RD[1], "role": "reader"},
            status=201, checks=[field("role", "reader")]),
        Req("reader may not deploy", "POST", "/director/config/deploy", body=[], auth=RD, status=403,
            checks=[forbidden("deploy")]),
        Req("reader may not dry-run a deploy", "POST", "/director/config/deploy?dry_run=1", body=[], auth=RD,
            status=403, checks=[forbidden("deploy")]),
        Req("reader lists deployments", "GET", "/director/config/deployments", auth=RD, status=200,
            checks=[t("objects is an array", "expect(B.objects).to.be.an('array')")]),
        Req("DELETE the reader", "DELETE", U(rd), status=200, checks=[field("object_name", rd)]),
        Req("wait above 600 gives 400", "POST", "/director/config/deploy?wait=601", body=[], status=400,
            checks=[has_error()]),
        Req("deploy and wait", "POST", "/director/config/deploy?wait=30", body=[], status=200,
            checks=[t("status is partial or failed", "expect(['partial', 'failed']).to.include(B.status)"),
                    t("id is a number", "expect(B.id).to.be.a('number')"),
                    t("counts has the result keys", f"expect(B.counts).to.include.all.keys({count_keys})"),
                    t("the host is unreachable after 3 attempts",
                      mine + "; expect(mine[0].result).to.equal('unreachable'); expect(mine[0].attempts).to.equal(3)"),
                    t("remember id and status", "setv('depId', B.id); setv('depStatus', B.status)"),
                    json_ct()]),
        Req("GET the deployment", "GET", "/director/config/deployment?id={{depId}}", status=200,
            checks=[t("same id", "expect(B.id).to.equal(Number(getv('depId')))"),
                    t("same status", "expect(B.status).to.equal(getv('depStatus'))"),
                    t("the host is unreachable", mine + "; expect(mine[0].result).to.equal('unreachable')")]),
        Req("DELETE of a finished deployment gives 409", "DELETE", "/director/config/deployment?id={{depId}}",
            status=409, checks=[has_error()]),
        Req("unknown deployment gives 404", "GET", "/director/config/deployment?id=999999", status=404,
            checks=[has_error()]),
        Req("deployment without id gives 400", "GET", "/director/config/deployment", status=400,
            checks=[has_error()]),
        Req("the deployment is listed first", "GET", "/director/config/deployments", status=200,
            checks=[t("newest is ours", "expect(B.objects[0].id).to.equal(Number(getv('depId')))")]),
        Req("DELETE the agent host", "DELETE", H(host), status=200, checks=[field("object_name", host)]),
        Req("DELETE the script", "DELETE", S(sc), status=200, checks=[field("object_name", sc)]),
    ]


def pull(P):
    sc, tpl, node = f"{P}pl-script", f"{P}pl-agents", f"{P}pl-node"
    PULL = "/director/self-service/allowlist"
    mine = (f"var mine = B.hosts.filter(function (h) {{ return h.host === {js(node)}; }}); "
            "expect(mine.length).to.equal(1)")
    return [
        cleanup("host", node), cleanup("host", tpl), cleanup("script", sc),
        Req("script to pull", "POST", "/director/script", body={"object_name": sc, "command": "/usr/bin/uptime"},
            status=201, checks=[field("command", "/usr/bin/uptime")]),
        Req("template for pulling agents", "POST", "/director/host",
            body={"object_name": tpl, "object_type": "template", "has_agent": True, "scripts": [sc]},
            status=201, checks=[field("scripts", [sc])]),
        Req("template key", "POST", K(tpl), body={}, status=200, checks=[new_key("plKey")]),
        Req("register a node without an address", "POST", REG + f"?name={node}&key={{{{plKey}}}}", auth=NOAUTH,
            body={}, status=200, checks=[body_key("plHostKey", differs=["plKey"])]),
        Req("no key gives 400", "GET", PULL, auth=NOAUTH, status=400, checks=[has_error()]),
        Req("an unknown key gives 403", "GET", PULL, auth=NOAUTH,
            headers={"Authorization": "Bearer " + "0" * 64}, status=403, checks=[has_error()]),
        Req("the template's key is not a host's: 403", "GET", PULL, auth=NOAUTH, headers=bearer("plKey"),
            status=403, checks=[has_error(), no_key("plKey")]),
        Req("wait above 300 gives 400", "GET", PULL + "?wait=301", auth=NOAUTH, headers=bearer("plHostKey"),
            status=400, checks=[has_error()]),
        Req("nothing deployed to it yet: 404", "GET", PULL + "?wait=0", auth=NOAUTH, headers=bearer("plHostKey"),
            status=404, checks=[has_error(), no_key("plHostKey")]),
        Req("deploy (the server cannot reach it)", "POST", "/director/config/deploy?wait=30", body=[], status=200,
            checks=[t("it is unreachable: no address",
                      mine + "; expect(mine[0].result).to.equal('unreachable')"),
                    t("remember the deployment", "setv('plDep', B.id)")]),
        Req("pull the signed allowlist", "GET", PULL, auth=NOAUTH, headers=bearer("plHostKey"), status=200,
            checks=[t("format 1 for this host", f"expect(B.format).to.equal(1); expect(B.host).to.equal({js(node)})"),
                    t("the script, resolved", f"expect(B.scripts).to.deep.equal({js([{'name': sc, 'command': '/usr/bin/uptime', 'arguments': None, 'timeout': None}])})"),
                    t("signed, with serial and checksum",
                      f"expect(B.signature).to.be.a('string'); expect(B.serial).to.be.a('number'); "
                      f"expect(B.checksum).to.match({HEX64}); setv('plChecksum', B.checksum)"),
                    etag_present(), save_etag("plEtag"), json_ct(), no_key("plHostKey")]),
        Req("the same ETag: 304 at once without wait", "GET", PULL + "?wait=0", auth=NOAUTH,
            headers={**bearer("plHostKey"), "If-None-Match": "{{plEtag}}"}, status=304,
            checks=[empty_body()]),
        Req("the same ETag with wait=1: 304 after the wait", "GET", PULL + "?wait=1", auth=NOAUTH,
            headers={**bearer("plHostKey"), "If-None-Match": "{{plEtag}}"}, status=304, checks=[empty_body()]),
        Req("the fetch counts as deployed", "GET", "/director/config/deployment?id={{plDep}}", status=200,
            checks=[t("the node is deployed now", mine + "; expect(mine[0].result).to.equal('deployed')")]),
        Req("the preview shows it confirmed", "GET", f"/director/host/allowlist?name={node}", status=200,
            checks=[t("confirmed is the rendered checksum",
                      "expect(B.confirmed.checksum).to.equal(getv('plChecksum')); "
                      "expect(B.checksum).to.equal(getv('plChecksum'))")]),
        Req("nothing pending for it", "GET", "/director/config/pending", status=200,
            checks=[t("the node is not listed",
                      f"expect(B.hosts.filter(function (h) {{ return h.host === {js(node)}; }}).length).to.equal(0)")]),
        Req("DELETE the node", "DELETE", f"/director/host?name={node}", status=200, checks=[field("object_name", node)]),
        Req("DELETE the template", "DELETE", f"/director/host?name={tpl}", status=200, checks=[field("object_name", tpl)]),
        # The deleted node's key is retired, not revoked: it fetches the
        # empty allowlist that revokes the node's scripts, then nothing.
        Req("deploy its revocation", "POST", "/director/config/deploy", body=[], status=202,
            checks=[t("started", "expect(B.status).to.equal('running'); setv('plRevDep', B.deployment_id)")]),
        Req("the deleted node's key fetches its empty allowlist", "GET", PULL, auth=NOAUTH,
            headers=bearer("plHostKey"), status=200,
            checks=[t("nothing allowed", f"expect(B.host).to.equal({js(node)}); expect(B.scripts).to.deep.equal([])")]),
        Req("then its key is revoked: 403", "GET", PULL, auth=NOAUTH, headers=bearer("plHostKey"), status=403,
            checks=[has_error()]),
        # Its result turns `deployed` within a moment of the fetch (the
        # API tests wait for it); a collection cannot wait, so it checks
        # the deployment holds the node.
        Req("the revocation's deployment holds the node", "GET", "/director/config/deployment?id={{plRevDep}}",
            status=200, checks=[t("the node is in it", mine + "; expect(['pending', 'deployed']).to.include(mine[0].result)")]),
        Req("DELETE the script", "DELETE", f"/director/script?name={sc}", status=200, checks=[field("object_name", sc)]),
    ]


# --------------------------------------------------------------------------
# Undo: POST /director/activity/revert


def revert(P):
    h = f"{P}rv-h1"
    H = f"/director/host?name={h}"
    A = "/director/activity"
    R = A + "/revert"

    def newest(var):
        return t(f"remember the newest entry as {var}",
                 f"expect(B.objects[0].id).to.be.a('number'); setv({js(var)}, String(B.objects[0].id))")

    return [
        cleanup("host", h),
        Req("create a host", "POST", "/director/host", body={"object_name": h, "address": "127.0.3.1"},
            status=201, checks=[field("object_name", h)]),
        Req("its create entry", "GET", A + f"?name={h}&limit=1", status=200, checks=[newest("rvCreate")]),
        Req("change its address", "POST", H, body={"address": "127.0.3.2"}, status=200,
            checks=[field("address", "127.0.3.2")]),
        Req("the modify entry", "GET", A + f"?name={h}&limit=1", status=200, checks=[newest("rvModify")]),
        Req("change its address again", "POST", H, body={"address": "127.0.3.3"}, status=200,
            checks=[field("address", "127.0.3.3")]),
        Req("the newest entry", "GET", A + f"?name={h}&limit=1", status=200, checks=[newest("rvLast")]),
        Req("undoing the older change answers 409 naming what changed since", "POST",
            R + "?id={{rvModify}}", status=409,
            checks=[error_contains("address"), error_contains("changed since")]),
        Req("the 409 changed nothing", "GET", H, status=200, checks=[field("address", "127.0.3.3")]),
        Req("a dry run of undoing the newest change lists it", "POST", R + "?id={{rvLast}}&dry_run=1",
            status=200,
            checks=[field("dry_run", True),
                    t("one modify, back to the address before",
                      "expect(B.changes.length).to.equal(1); expect(B.changes[0].action).to.equal('modify'); "
                      "expect(String(B.changes[0].reverts)).to.equal(getv('rvLast')); "
                      "expect(B.changes[0].after.address).to.equal('127.0.3.2'); "
                      "expect(B).to.not.have.property('activity_id')")]),
        Req("the dry run changed nothing", "GET", H, status=200, checks=[field("address", "127.0.3.3")]),
        Req("undo the newest change", "POST", R + "?id={{rvLast}}", status=200,
            checks=[field("dry_run", False),
                    t("it names the entry undone and the newest entry after it",
                      "expect(String(B.changes[0].reverts)).to.equal(getv('rvLast')); "
                      "expect(B.activity_id).to.be.a('number')")]),
        Req("the address is back", "GET", H, status=200, checks=[field("address", "127.0.3.2")]),
        Req("the revert entry names the entry it undid", "GET", A + f"?name={h}&action=revert&limit=1",
            status=200,
            checks=[t("a revert entry", "expect(B.objects[0].action).to.equal('revert'); "
                                        "expect(String(B.objects[0].reverts)).to.equal(getv('rvLast'))")]),
        Req("a dry run of undoing everything after the create", "POST", R + "?to={{rvCreate}}&dry_run=1",
            status=200,
            checks=[t("the changes, newest first, none made",
                      "expect(B.dry_run).to.equal(true); expect(B.changes.length).to.be.above(0); "
                      "expect(B.changes[0].action).to.equal('modify')")]),
        Req("the dry run changed nothing either", "GET", H, status=200, checks=[field("address", "127.0.3.2")]),
        Req("neither id nor to answers 400", "POST", R, status=400,
            checks=[error_contains("exactly one of id")]),
        Req("a non-numeric id answers 400", "POST", R + "?id=abc", status=400, checks=[error_contains("Invalid id")]),
        Req("an unknown entry answers 404", "POST", R + "?id=2147483647", status=404,
            checks=[error_contains("No activity entry")]),
        Req("delete the host", "DELETE", H, status=200, checks=[field("object_name", h)]),
    ]


def has_error_or_status(status):
    return t(f"an error, or the status {status}",
             f"expect(B.error === undefined ? B.status : 'error').to.be.oneOf(['error', {js(status)}])")


def staged(P):
    sc, a, b = f"{P}st-script", f"{P}st-a", f"{P}st-b"
    DEP = "/director/config/deployment"
    halted = [t("halted after stage 1", "expect(B.status).to.equal('halted'); expect(B.staging.stage).to.equal(1)"),
              t("the stages as asked, and more than one",
                "expect(B.staging.stages).to.equal('1'); expect(B.staging.stage_count).to.be.above(1)"),
              t("why it halted", "expect(B.staging.halted_reason).to.be.a('string')"),
              t("a summary per stage", "expect(B.staging.summary.length).to.equal(B.staging.stage_count); "
                "expect(B.staging.summary[1].state).to.equal('waiting')"),
              t("one host in stage 1", "expect(B.hosts.filter(function (h) { return h.stage === 1; }).length).to.equal(1)")]
    return [
        cleanup("host", a), cleanup("host", b), cleanup("script", sc),
        # A deployment of an earlier folder may still run (it would be the
        # newest): cancelled, so that this folder's deploys may start.
        Req("the newest deployment", "GET", "/director/config/deployments?limit=1", status=200,
            checks=[t("remember it", "setv('stPrev', B.objects.length ? B.objects[0].id : 0)")]),
        Req("cancel it if it still runs", "DELETE", DEP + "?id={{stPrev}}", status=[200, 404, 409],
            checks=[has_error_or_status("cancelled")]),
        Req("script to stage", "POST", "/director/script", body={"object_name": sc, "command": "/bin/true"},
            status=201, checks=[field("object_name", sc)]),
        Req("agent host A on the discard port", "POST", "/director/host",
            body={"object_name": a, "has_agent": True, "address": "127.0.0.1", "agent_port": 9, "scripts": [sc]},
            status=201, checks=[field("agent_port", 9)]),
        Req("agent host B on the discard port", "POST", "/director/host",
            body={"object_name": b, "has_agent": True, "address": "127.0.0.1", "agent_port": 9, "scripts": [sc]},
            status=201, checks=[field("agent_port", 9)]),
        Req("stages not increasing give 400", "POST", "/director/config/deploy?stages=2,1", body=[], status=400,
            checks=[has_error()]),
        Req("stage_wait above 3600 gives 400", "POST", "/director/config/deploy?stages=1&stage_wait=3601", body=[],
            status=400, checks=[has_error()]),
        Req("max_failed without stages gives 400", "POST", "/director/config/deploy?max_failed=5", body=[],
            status=400, checks=[has_error()]),
        Req("a staged deploy halts on an unreachable host", "POST",
            "/director/config/deploy?stages=1&max_failed=0&wait=30", body=[], status=200,
            checks=halted + [t("remember it", "setv('stDep', B.id)"), json_ct()]),
        Req("GET the halted deployment", "GET", DEP + "?id={{stDep}}", status=200, checks=halted),
        Req("POST without resume gives 400", "POST", DEP + "?id={{stDep}}", body=[], status=400,
            checks=[has_error()]),
        Req("resume of an unknown deployment gives 404", "POST", DEP + "?id=999999&resume=1", body=[], status=404,
            checks=[has_error()]),
        Req("DELETE cancels a halted deployment", "DELETE", DEP + "?id={{stDep}}", status=200,
            checks=[field("status", "cancelled")]),
        Req("a cancelled deployment cannot resume: 409", "POST", DEP + "?id={{stDep}}&resume=1", body=[],
            status=409, checks=[has_error()]),
        Req("another staged deploy halts", "POST", "/director/config/deploy?stages=1&max_failed=0&wait=30", body=[],
            status=200, checks=halted + [t("remember it", "setv('stDep2', B.id)")]),
        Req("resume it", "POST", DEP + "?id={{stDep2}}&resume=1", body=[], status=202,
            checks=[t("running again, stage 1 accepted",
                      "expect(B.status).to.equal('running'); expect(B.staging.accepted_failures).to.equal(1)"),
                    t("Location names it", "expect(H('location')).to.match(/deployment\\?id=\\d+$/)")]),
        Req("its end (a deploy of the same configuration joins it)", "POST", "/director/config/deploy?wait=30",
            body=[], status=200, checks=[t("ended", "expect(B.status).to.not.equal('running')")]),
        Req("resume of a deployment that is not halted gives 409", "POST", DEP + "?id={{stDep2}}&resume=1",
            body=[], status=409, checks=[has_error()]),
        Req("DELETE host A", "DELETE", f"/director/host?name={a}", status=200, checks=[field("object_name", a)]),
        Req("DELETE host B", "DELETE", f"/director/host?name={b}", status=200, checks=[field("object_name", b)]),
        Req("DELETE the script", "DELETE", f"/director/script?name={sc}", status=200, checks=[field("object_name", sc)]),
    ]


def console(P):
    """The web console's pages: HTML under the API's Basic auth, its own
    Content-Security-Policy, 404 pages, and an action refused without the
    form's token (tests/console_browser.rs drives it in a browser)."""
    html = {"Accept": "text/html"}
    missing = f"{P}console-missing"

    def html_ct():
        return t("Content-Type is text/html", "expect(H('content-type')).to.match(/^text\\/html/)")

    def csp():
        return t("only its own scripts and styles",
                 "expect(H('content-security-policy')).to.include(\"script-src 'self'\")"
                 ".and.include(\"default-src 'none'\")")

    def page(name, path, heading):
        return Req(name, "GET", path, headers=html, status=200,
                   checks=[html_ct(), csp(), t("the page", f"expect(B).to.include({js(heading)})")])

    return [
        page("GET /ui/ is the fleet", "/ui/", "Fleet"),
        page("GET /ui/deployments", "/ui/deployments", "Deployments"),
        page("GET /ui/activity", "/ui/activity", "Activity"),
        page("GET /ui/pending", "/ui/pending", "Pending"),
        Req("GET /ui/static/console.css", "GET", "/ui/static/console.css", status=200,
            checks=[t("a stylesheet", "expect(H('content-type')).to.match(/^text\\/css/)")]),
        Req("GET /ui/static/console.js", "GET", "/ui/static/console.js", status=200,
            checks=[t("a script", "expect(H('content-type')).to.match(/^text\\/javascript/)")]),
        Req("an unknown host's page is 404", "GET", f"/ui/host?name={missing}", headers=html, status=404,
            checks=[html_ct(), csp()]),
        Req("an unknown template's page is 404", "GET", f"/ui/template?name={missing}", headers=html, status=404,
            checks=[html_ct()]),
        Req("an unknown deployment's page is 404", "GET", "/ui/deployment?id=999999999", headers=html, status=404,
            checks=[html_ct()]),
        Req("an unknown deployment's progress is 404", "GET", "/ui/deployment/progress?id=999999999",
            status=404, checks=[]),
        Req("without credentials: 401 and the challenge", "GET", "/ui/", headers=html, auth=NOAUTH, status=401,
            checks=[challenge()]),
        Req("a deploy without the form's token is 403", "POST", "/ui/deploy",
            headers={"Content-Type": "application/x-www-form-urlencoded", **html}, var_body="console_form",
            pre=["setv('console_form', 'force=1')"], status=403, checks=[html_ct(), csp()]),
    ]


FOLDERS = [
    ("01-scenario", "Director sample scenario (CONTRACT section 11)", lambda P: scenario()),
    ("02-hosts", "One host: GET/POST/PUT/PATCH/DELETE, ETags, renames", hosts),
    ("03-scripts", "One script: writes, command validation, host references", scripts),
    ("04-templates", "Templates, imports and the resolved view", templates),
    ("05-lists", "Lists, filters and pagination", lists),
    ("06-errors", "Bad input", errors),
    ("07-health", "Operational endpoints", health),
    ("08-auth", "HTTP Basic authentication: 401, the challenge, open operational endpoints", auth),
    ("09-users", "Users: CRUD, 304, 422s, password changes and disabling at once, the last-admin 409", users),
    ("10-permissions", "Roles and extra permissions: 403 for what a user may not do", permissions),
    ("11-restrictions", "Host restrictions: invisible hosts, refused creates, renames and template writes", restrictions),
    ("12-activity", "The activity log: entries, request ids, chained checksums, filters, paging", activity),
    ("13-keys", "API keys of hosts and templates, limits, replacement, revocation, tickets", keys),
    ("14-self-service", "Registration at boot, adoption, agent config, own tickets, text answers", selfservice),
    ("15-allowlists", "Allowlist preview of hosts and pending config: the deploy set, resolved scripts, checksums", allowlists),
    ("16-deploy", "Deploying: deployments, status, an unreachable agent, 409/404/400/403", deploy),
    ("17-pull", "Pulling agents: the signed allowlist by host key, ETag, long poll, a fetch counts as deployed", pull),
    ("18-staged", "Staged deploys: halting after a stage, resume, cancel, 400/404/409", staged),
    ("19-revert", "Undo: one entry, a dry run, everything after an entry, the 409 of a changed object, 400/404", revert),
    ("20-console", "The web console: pages, its Content-Security-Policy, 404 and 401 pages, a deploy refused without its token", console),
]

# --------------------------------------------------------------------------
# Bruno


STANDARD = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "CONNECT", "TRACE"}


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")[:60]


def indent(text, n=2):
    pad = " " * n
    return "\n".join(pad + line if line else line for line in text.split("\n"))


def bru_preamble(code):
    lines = ["const S = res.getStatus();", "const B = res.getBody();"]
    if "H(" in code:
        lines.append("const H = (name) => res.getHeader(name);")
    if "setv(" in code:
        lines.append("const setv = (k, v) => bru.setVar(k, v);")
    if "getv(" in code:
        lines.append("const getv = (k) => bru.getVar(k);")
    return lines


def status_check(status):
    if isinstance(status, list):
        if status == list(range(400, 500)):
            return t("status is 4xx", "expect(S).to.be.within(400, 499)")
        return t(f"status is one of {status}", f"expect({js(status)}).to.include(S)")
    return t(f"status is {status}", f"expect(S).to.equal({status})")


def bru_request(r, seq):
    method = r.method.upper()
    if r.var_body:
        mode = "text"
    elif r.text is not None:
        mode = "text"
    elif r.body is not None:
        mode = "json"
    else:
        mode = "none"
    if r.auth is None:
        auth = "inherit"
    elif r.auth == NOAUTH:
        auth = "none"
    else:
        auth = "basic"
    out = [f"meta {{\n  name: {r.name}\n  type: http\n  seq: {seq}\n}}\n"]
    if method in STANDARD:
        out.append(f"{method.lower()} {{\n  url: {{{{baseUrl}}}}{r.path}\n  body: {mode}\n  auth: {auth}\n}}\n")
    else:
        out.append(f"http {{\n  method: {method}\n  url: {{{{baseUrl}}}}{r.path}\n  body: {mode}\n  auth: {auth}\n}}\n")
    if auth == "basic":
        user, password = r.auth
        out.append(f"auth:basic {{\n  username: {user}\n  password: {password}\n}}\n")
    headers = dict(r.headers)
    if r.var_body and "Content-Type" not in headers:
        headers["Content-Type"] = "text/plain"
    if headers:
        out.append("headers {\n" + "\n".join(f"  {k}: {v}" for k, v in headers.items()) + "\n}\n")
    if mode == "json":
        out.append("body:json {\n" + indent(json.dumps(r.body, indent=2, ensure_ascii=False)) + "\n}\n")
    elif mode == "text":
        raw = "{{" + r.var_body + "}}" if r.var_body else r.text
        out.append("body:text {\n" + indent(raw) + "\n}\n")
    if isinstance(r.status, int):
        out.append(f"assert {{\n  res.status: eq {r.status}\n}}\n")
    if r.pre:
        code = "\n".join(r.pre)
        lines = []
        if "setv(" in code:
            lines.append("const setv = (k, v) => bru.setVar(k, v);")
        out.append("script:pre-request {\n" + indent("\n".join(lines + r.pre)) + "\n}\n")
    checks = ([] if isinstance(r.status, int) else [status_check(r.status)]) + r.checks
    if checks:
        code = "\n".join(checks)
        out.append("tests {\n" + indent("\n".join(bru_preamble(code) + checks)) + "\n}\n")
    return "\n".join(out)


def write_bruno(root, prefix):
    if os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(os.path.join(root, "environments"))
    with open(os.path.join(root, "bruno.json"), "w") as f:
        json.dump({"version": "1", "name": "steward", "type": "collection",
                   "ignore": ["node_modules", ".git"]}, f, indent=2)
        f.write("\n")
    with open(os.path.join(root, "collection.bru"), "w") as f:
        f.write("headers {\n  Accept: application/json\n}\n\nauth {\n  mode: basic\n}\n\n"
                "auth:basic {\n  username: {{user}}\n  password: {{password}}\n}\n\n"
                "docs {\n  Steward HTTP contract checks. Generated by ../generate.py; run with\n"
                "  bru run --env local --env-var password=...\n}\n")
    with open(os.path.join(root, "environments", "local.bru"), "w") as f:
        f.write("vars {\n  baseUrl: http://127.0.0.1:7440\n  user: admin\n}\n"
                "vars:secret [\n  password\n]\n")
    for fi, (folder, doc, build) in enumerate(FOLDERS, 1):
        d = os.path.join(root, folder)
        os.makedirs(d)
        with open(os.path.join(d, "folder.bru"), "w") as f:
            f.write(f"meta {{\n  name: {folder}\n  seq: {fi}\n}}\n\ndocs {{\n  {doc}\n}}\n")
        for i, r in enumerate(build(prefix), 1):
            base = re.sub(r"^\d+ ", "", r.name)
            fname = f"{i:02d}-{slug(base)}.bru"
            with open(os.path.join(d, fname), "w") as f:
                f.write(bru_request(r, i))


# --------------------------------------------------------------------------
# Postman


PM_PREAMBLE = [
    "const test = (name, fn) => pm.test(name, fn);",
    "const expect = pm.expect;",
    "const S = pm.response.code;",
    "const B = (function () { const t = pm.response.text(); try { return JSON.parse(t); } catch (e) { return t; } })();",
    "const H = (name) => pm.response.headers.get(name);",
    "const setv = (k, v) => pm.collectionVariables.set(k, v);",
    "const getv = (k) => pm.collectionVariables.get(k);",
]


def pm_request(r):
    headers = {"Accept": "application/json"}
    headers.update(r.headers)
    req = {"method": r.method.upper(), "header": [], "url": "{{baseUrl}}" + r.path}
    if r.var_body:
        req["body"] = {"mode": "raw", "raw": "{{" + r.var_body + "}}"}
        headers.setdefault("Content-Type", "text/plain")
    elif r.text is not None:
        req["body"] = {"mode": "raw", "raw": r.text}
        headers.setdefault("Content-Type", "text/plain")
    elif r.body is not None:
        req["body"] = {"mode": "raw", "raw": json.dumps(r.body, indent=2, ensure_ascii=False),
                       "options": {"raw": {"language": "json"}}}
        headers.setdefault("Content-Type", "application/json")
    req["header"] = [{"key": k, "value": v} for k, v in headers.items()]
    if r.auth == NOAUTH:
        req["auth"] = {"type": "noauth"}
    elif r.auth is not None:
        user, password = r.auth
        req["auth"] = {"type": "basic", "basic": [{"key": "username", "value": user, "type": "string"},
                                                  {"key": "password", "value": password, "type": "string"}]}
    checks = [status_check(r.status)] + r.checks
    events = []
    if r.pre:
        events.append({"listen": "prerequest", "script": {"type": "text/javascript", "exec":
                       ["(function () {", "const setv = (k, v) => pm.collectionVariables.set(k, v);",
                        *r.pre, "})();"]}})
    events.append({"listen": "test", "script": {"type": "text/javascript", "exec":
                   ["(function () {", *PM_PREAMBLE, *checks, "})();"]}})
    return {"name": r.name, "event": events, "request": req}


def write_postman(root, prefix):
    os.makedirs(root, exist_ok=True)
    items = []
    for folder, doc, build in FOLDERS:
        items.append({"name": folder, "description": doc,
                      "item": [pm_request(r) for r in build(prefix)]})
    coll = {
        "info": {"name": "steward", "description": "Steward HTTP contract checks. Generated by ../generate.py.",
                 "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
        "auth": {"type": "basic", "basic": [{"key": "username", "value": "{{user}}", "type": "string"},
                                            {"key": "password", "value": "{{password}}", "type": "string"}]},
        "item": items,
        "variable": [{"key": "etag", "value": ""}, {"key": "next", "value": ""}],
    }
    with open(os.path.join(root, "steward.postman_collection.json"), "w") as f:
        json.dump(coll, f, indent=2, ensure_ascii=False)
        f.write("\n")
    env = {"name": "local", "values": [
        {"key": "baseUrl", "value": "http://127.0.0.1:7440", "type": "default", "enabled": True},
        {"key": "user", "value": "admin", "type": "default", "enabled": True},
        {"key": "password", "value": "", "type": "secret", "enabled": True}],
        "_postman_variable_scope": "environment"}
    with open(os.path.join(root, "local.postman_environment.json"), "w") as f:
        json.dump(env, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    write_bruno(os.path.join(HERE, "bruno"), "bru-")
    write_postman(os.path.join(HERE, "postman"), "pm-")
    n = sum(len(b("x-")) for _, _, b in FOLDERS)
    print(f"wrote {n} requests to bruno/ and postman/")

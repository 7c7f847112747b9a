"""Audit: who changed what and when — newest first, one admin's or everyone's, a page at a time.

The entries are recorded by the domain (audit.py: slot saves, settings, templates, jobs cancelled,
purges, sign-ins and failed sign-ins, sessions ended …); this page only shows them in words: the
action, where it came from, the fields by their labels with before → after, templates by their
label instead of their id (a deleted one by the label it had), secrets as "changed", never shown."""
from __future__ import annotations

import datetime as dt

from aiohttp import web
from markupsafe import Markup

from photoslot import audit, templates
from photoslot.web import render, words
from photoslot.web.session import page

routes = web.RouteTableDef()
PAGE_SIZE = 50
PURGE_SCOPES = {"media_objects": "Temporary provider links only",
                "full": "Those and every processed result (downloads answer 410)"}


def data(value) -> Markup:
    """Something typed or named by someone (a prompt, a label, an address): shown as it is."""
    return Markup('<span translate="no" class="value">{}</span>').format(value)


class EntryView:
    """One audit entry in words, for one page language."""

    def __init__(self, _, when, labels: dict[str, str]) -> None:
        self._ = _
        self.when = when
        self.labels = labels  # template id → its label

    def template(self, tid) -> Markup:
        label = self.labels.get(str(tid))
        if label:
            return data(label)
        return Markup('<span title="{}">{}</span>').format(tid, self._("a deleted template"))

    def value(self, key: str, v, context: dict) -> Markup | str:
        _ = self._
        if v is None:
            return _("(the default)") if key in ("public_base_url", "time_zone") else "—"
        if v == "<changed>":
            return _("changed (never shown)")
        if isinstance(v, bool):
            return _("yes") if v else _("no")
        if key == "provider_id":
            return words.provider(v)
        if key == "operation_id":
            return Markup('<span title="{}">{}</span>').format(v, words.operation(context.get("provider_id"), v, _))
        if key in ("template_id",) or key.startswith("settings_json.templates."):
            return self.template(v)
        if key == "size_bytes" and isinstance(v, int):
            return _("{n} KB", n=round(v / 1024))
        if key == "mime":
            return words.kind(v)
        if key == "output_format":
            return words.kind(f"image/{v}")
        if isinstance(v, str) and len(v) >= 19 and v[4:5] == "-" and v[10:11] == "T":
            try:
                return self.when(dt.datetime.fromisoformat(v), "%Y-%m-%d %H:%M:%S")
            except ValueError:
                pass
        if isinstance(v, (int, float)):
            return f"{v:g}"
        return data(v)

    def lines(self, entry: dict) -> list[dict]:
        """[{label, before, after}] (before None: no earlier value recorded)."""
        _ = self._
        details = dict(entry["details"] or {})
        was = details.pop("was", None)
        if entry["action"] == "template.rename":  # its `was` is the old label itself
            was, details = {"label": was}, {"label": details.get("label")}
        was = was if isinstance(was, dict) else {}
        now_flat, was_flat = flatten(details), flatten(was)
        context = {**was_flat, **now_flat}
        out = []
        for key, after in now_flat.items():
            if entry["action"] == "settings.update" and key.startswith("provider_key."):
                after = "<changed>"
            item = {"label": words.field(key, _), "after": self.value(key, after, context), "before": None}
            if key in was_flat:
                item["before"] = self.value(key, was_flat[key], {**context, "provider_id": was_flat.get("provider_id")})
            out.append(item)
        for key in was_flat.keys() - now_flat.keys():  # a value taken away (a parameter emptied)
            out.append({"label": words.field(key, _), "before": self.value(key, was_flat[key], context),
                        "after": _("(removed)")})
        return out

    def target(self, entry: dict) -> Markup | str:
        action, target = entry["action"], entry["target"]
        if not target or target in ("settings", "provider_keys"):
            return ""
        if action.startswith("template.") and action != "template.unbind":
            return self.template(target)
        if action == "media.purge":
            return self._(PURGE_SCOPES[target]) if target in PURGE_SCOPES else data(target)
        if action == "job.cancel":
            return Markup('<a href="/admin/jobs/{0}" title="{0}">{1}</a>').format(target, self._("the job"))
        return data(target)


def flatten(details: dict) -> dict:
    """A slot's settings_json spread into its fields (prompt, each parameter, each template,
    output format), so a change shows field by field."""
    out = {}
    for key, value in details.items():
        if key == "settings_json" and isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, dict):
                    out.update({f"settings_json.{k}.{name}": item for name, item in v.items()})
                else:
                    out[f"settings_json.{k}"] = v
        else:
            out[key] = value
    return out


@routes.get("/admin/audit")
@page("settings:read")
async def audit_page(request, ctx, session):
    _ = render.translate(request)
    user = request.query.get("user", "").strip() or None
    try:
        page_no = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page_no = 1
    rows, total = await audit.page(ctx.db, actor=user, page=page_no, page_size=PAGE_SIZE)
    labels = {t["id"]: t["label"] for t in await templates.list_all(ctx.db) if t["label"]}
    for r in await audit.entries(ctx.db, limit=500, action="template.add"):  # a deleted one: the label it had
        if r["target"] and r["target"] not in labels and (r["details"] or {}).get("label"):
            labels[r["target"]] = r["details"]["label"]
    zone = request[render.ZONE]

    def when(t, fmt="%Y-%m-%d %H:%M"):
        return zone.local(t).strftime(fmt) if t is not None else "—"

    view = EntryView(_, when, labels)
    entries = [{**r, "lines": view.lines(r), "target_shown": view.target(r)} for r in rows]
    return render.page(request, "audit.html", session, active="audit", title="Audit", rows=entries, user=user or "",
                       actors=await audit.actors(ctx.db), total=total, page_no=page_no,
                       pages=max(1, -(-total // PAGE_SIZE)), action_words=lambda a: words.action(a, _),
                       source_words=lambda s: words.source(s, _))

// strata's web UI script. The pages carry no inline script (their CSP allows only
// files from /ui/assets/), so what little behaviour they need lives here.
//
// `strata-json`: an htmx extension for forms that talk to /api/v1 directly. The
// form's fields go out as one JSON object (number inputs as numbers, empty fields
// left out); the answer (JSON, problem+json or text) comes back as a short message
// built from escaped text, never as markup from the server.
(function () {
  "use strict";

  var ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function esc(value) {
    return String(value).replace(/[&<>"']/g, function (c) {
      return ESCAPES[c];
    });
  }

  function toJson(parameters, elt) {
    var form = elt.closest("form") || elt;
    var out = {};
    var entries = parameters.entries();
    for (var it = entries.next(); !it.done; it = entries.next()) {
      var name = it.value[0];
      var value = it.value[1];
      if (typeof value !== "string" || value === "") {
        continue;
      }
      var input = form.elements ? form.elements.namedItem(name) : null;
      if (input instanceof HTMLInputElement && input.type === "number") {
        var n = Number(value);
        out[name] = Number.isFinite(n) ? n : value;
      } else {
        out[name] = value;
      }
    }
    return JSON.stringify(out);
  }

  function message(text, status) {
    var body = null;
    try {
      body = JSON.parse(text);
    } catch (e) {
      body = null;
    }
    var ok = status >= 200 && status < 300;
    var html = '<div class="result ' + (ok ? "ok" : "refused") + '" data-status="' + esc(status) + '">';
    if (ok) {
      html += "<p><strong>Accepted</strong> (HTTP " + esc(status) + ")</p>";
      if (body !== null) {
        html += "<pre>" + esc(JSON.stringify(body, null, 2)) + "</pre>";
      }
    } else if (body && typeof body === "object") {
      html += "<p><strong>Refused</strong> (HTTP " + esc(status);
      if (body.code) {
        html += ", " + esc(body.code);
      }
      html += ")</p>";
      if (body.detail) {
        html += "<p>" + esc(body.detail) + "</p>";
      }
    } else {
      html += "<p><strong>Refused</strong> (HTTP " + esc(status) + ")</p>";
      if (text) {
        html += "<pre>" + esc(String(text).slice(0, 2000)) + "</pre>";
      }
    }
    return html + "</div>";
  }

  htmx.defineExtension("strata-json", {
    onEvent: function (name, evt) {
      if (name === "htmx:configRequest") {
        evt.detail.headers["Content-Type"] = "application/json";
        evt.detail.headers["Accept"] = "application/json";
      }
      return true;
    },
    encodeParameters: function (xhr, parameters, elt) {
      xhr.overrideMimeType("text/json");
      return toJson(parameters, elt);
    },
    transformResponse: function (text, xhr) {
      return message(text, xhr.status);
    },
  });
})();

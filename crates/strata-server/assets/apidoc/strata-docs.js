// strata's API page: Swagger UI over this server's OpenAPI document, which sits beside
// the page (/api/v1/openapi.json). A file of its own, not an inline script, so the page's
// Content-Security-Policy can allow scripts from this origin only. No validator badge:
// Swagger UI would fetch it from validator.swagger.io.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});

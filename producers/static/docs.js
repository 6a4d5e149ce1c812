// The ingest API's docs page: Swagger UI from the vendored bundle, reading this server's spec.
// validatorUrl null: no badge fetched from the internet.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});

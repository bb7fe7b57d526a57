import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Hono } from 'hono';

/**
 * The interactive API docs at `/docs`: Swagger UI from the `swagger-ui-dist` npm package, served
 * by the API itself so the page loads nothing from another origin (an air-gapped DR site has no
 * CDN). The assets are read from node_modules once, on first request.
 */
const ASSETS = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'init.js': 'text/javascript; charset=utf-8',
} as const;
type Asset = keyof typeof ASSETS;

const distDir = () => path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

// Swagger UI's options: the validator badge would call validator.swagger.io, so it is off.
const INIT_JS = `window.ui = SwaggerUIBundle({
  url: document.getElementById('swagger-ui').dataset.url,
  dom_id: '#swagger-ui',
  deepLinking: true,
  displayOperationId: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
`;

const HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Lifeboat API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
  </head>
  <body>
    <div id="swagger-ui" data-url="/openapi.json"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/init.js"></script>
  </body>
</html>
`;

export function docsRoutes() {
  const cache = new Map<Asset, string>();
  const asset = (name: Asset) => {
    let text = cache.get(name);
    if (text === undefined) {
      text = name === 'init.js' ? INIT_JS : readFileSync(path.join(distDir(), name), 'utf8');
      cache.set(name, text);
    }
    return text;
  };
  const app = new Hono();
  app.get('/docs', (c) => c.html(HTML));
  for (const name of Object.keys(ASSETS) as Asset[]) {
    app.get(`/docs/${name}`, (c) =>
      c.body(asset(name), 200, { 'content-type': ASSETS[name], 'cache-control': 'public, max-age=3600' }),
    );
  }
  return app;
}

// Builds the console into the Python package, where `podium serve --http-address` serves it
// at `/` (package data of the podium wheel; not committed: `make console` builds it).
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "../server/podium/server/http/static",
    emptyOutDir: true,
    // No source maps in the wheel; the sources are in console/.
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a server started with --http-cors-origin http://localhost:5173.
    port: 5173,
  },
});

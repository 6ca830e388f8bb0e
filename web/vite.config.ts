import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The build goes inside the Python package, which serves it at / (tactful.api.web).
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../src/tactful/web/dist",
    emptyOutDir: true,
    // One small app: no source maps shipped in the wheel.
    sourcemap: false,
  },
  server: {
    // `npm run dev`: the API of a `tactful serve` on the default port, same origin.
    proxy: Object.fromEntries(
      ["/agents", "/customers", "/tags", "/guidelines", "/relationships", "/terms", "/journeys",
        "/context-variables", "/canned_responses", "/sessions", "/traces", "/services", "/flags",
        "/healthz"].map((p) => [p, "http://127.0.0.1:8800"]),
    ),
  },
  test: {
    include: ["src/**/*.test.ts"],
  },
});
